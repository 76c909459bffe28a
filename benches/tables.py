"""The Markdown tables of ferry's benchmarks, made from their JSON files.

Every table that a script prints, every table in benches/README.md's
results, and README.md's one summary table come from here:
`benches/compare`, `scale`, `cost` and `slowdisk` write JSON into
target/ferry-report/ and print these tables of it; `benches/report
--readme` copies the JSON into benches/results/ and puts the same tables
into those pages, between `<!-- table:NAME:start -->` and `<!--
table:NAME:end -->`; and a test (benches/tests/readme.rs) checks that they
are what these functions make of benches/results/. So a figure in them is
always one some run measured, with the run's record beside it.
"""

import statistics

ONE_CORE = " on 1 core"


def _median(values, field=None):
    return statistics.median(v[field] if field else v for v in values)


def compare(results):
    """`benches/compare`'s tables: speed against nginx and iperf3, then the
    servers' CPU per unit of work, then their peak memory."""
    env = results["environment"]
    impls = results["validation"]["passed"]
    samples = {(s["party"], s["test"]): s["runs"] for s in results["samples"]}
    iperf = _median(samples[("iperf3", "stream")])
    rows = []
    # Since ferry-load speaks HTTP, nginx is loaded by the same program as
    # ferry (wrk is the cross-check, party nginx+wrk); older runs used wrk.
    loader = "nginx" if "load_generator" in results else "nginx+wrk"

    def gb(bps):
        return f"{bps / 1e9:.2f} GB/s"

    def rate(v):
        return f"{v:,.0f} req/s"

    def micros(v):
        return f"{v:.0f} µs"

    def spread(key, field, fmt):
        values = [v[field] if field else v for v in samples[key]]
        return f"{fmt(min(values))} – {fmt(max(values))}"

    for name, label in [("one-g.bin", "1 GiB download"), ("sixty-four-m.bin", "64 MiB download")]:
        ref = _median(samples[("nginx", name)])
        for impl in impls:
            v = _median(samples[(impl, name)])
            rows.append((label, f"ferry-{impl}", gb(v), spread((impl, name), None, gb), f"nginx+curl {gb(ref)}",
                         f"{v / ref:.2f}", f"{v / iperf:.2f}"))
    for name, label in [("one-g.bin", "1 GiB download, one reader for both"),
                        ("sixty-four-m.bin", "64 MiB download, one reader for both")]:
        key = f"reader {name}"
        if ("nginx", key) not in samples:
            continue  # a run from before the common reader
        ref = _median(samples[("nginx", key)], "bps")
        in_a_row = samples[("nginx", key)][0]["requests"]
        if in_a_row > 1:  # several downloads a sample, one after another
            label = label.replace(" download,", f" download × {in_a_row} in a row,")
        for impl in impls:
            v = _median(samples[(impl, key)], "bps")
            rows.append((label, f"ferry-{impl}", gb(v), spread((impl, key), "bps", gb), f"nginx {gb(ref)}",
                         f"{v / ref:.2f}", f"{v / iperf:.2f}"))
    for name, label, field, fmt in [("c64 four-k.bin", "4 KiB, 64 conns", "rps", rate),
                                    ("c64 one-m.bin", "1 MiB, 64 conns", "bps", gb)]:
        ref = _median(samples[("nginx", name)], field)
        for impl in impls:
            v = _median(samples[(impl, name)], field)
            rows.append((label, f"ferry-{impl}", fmt(v), spread((impl, name), field, fmt), f"{loader} {fmt(ref)}",
                         f"{v / ref:.2f}", ""))
    # Runs since ferry-load speaks HTTP measure nginx at depth 32 too; older
    # ones, with wrk (which does not pipeline), only at depth 1: another
    # test, and the ratio says so.
    like = ("nginx", "c64 depth32 four-k.bin") in samples
    ref = _median(samples[("nginx", "c64 depth32 four-k.bin" if like else "c64 four-k.bin")], "rps")
    for impl in impls:
        key = (impl, "c64 depth32 four-k.bin")
        v = _median(samples[key], "rps")
        rows.append(("4 KiB, 64 conns, depth 32", f"ferry-{impl}", rate(v), spread(key, "rps", rate),
                     f"nginx {rate(ref)}" if like else f"nginx+wrk at depth 1 {rate(ref)}",
                     f"{v / ref:.2f}" if like else f"{v / ref:.2f} (unlike tests)", ""))
    for impl in impls:
        key, all_cores = (impl, "c64 depth32 four-k.bin" + ONE_CORE), (impl, "c64 depth32 four-k.bin")
        if key in samples:
            v, ref_all = _median(samples[key], "rps"), _median(samples[all_cores], "rps")
            rows.append(("4 KiB, depth 32, server on 1 core", f"ferry-{impl}", rate(v), spread(key, "rps", rate),
                         f"itself on all cores {rate(ref_all)}", f"{v / ref_all:.2f}", ""))
    if ("nginx", "c1 four-k.bin" + ONE_CORE) in samples:
        ref = _median(samples[("nginx", "c1 four-k.bin" + ONE_CORE)], "p50_us")
        for impl in impls:
            key = (impl, "c1 four-k.bin" + ONE_CORE)
            if key in samples:
                v = _median(samples[key], "p50_us")
                rows.append(("4 KiB, 1 conn, p50, server and client each on one CPU", f"ferry-{impl}", micros(v),
                             spread(key, "p50_us", micros), f"nginx (1 worker) {micros(ref)}",
                             f"{v / ref:.2f} (lower is better)", ""))
    for field, label in [("p50_us", "p50"), ("p99_us", "p99")]:
        ref = _median(samples[("nginx", "c1 four-k.bin")], field)
        for impl in impls:
            key = (impl, "c1 four-k.bin")
            v = _median(samples[key], field)
            rows.append((f"4 KiB, 1 conn, {label} latency", f"ferry-{impl}", micros(v), spread(key, field, micros),
                         f"{loader} {micros(ref)}", f"{v / ref:.2f} (lower is better)", ""))
    # Over TLS (runs since TLS was measured): the same client for both
    # protocols where the protocols allow.
    tls_rows = [("tls one-g.bin", "TLS: 1 GiB download", "bps", gb, "nginx+curl"),
                ("tls c64 four-k.bin", "TLS: 4 KiB, 64 conns", "rps", rate, "nginx"),
                ("tls new four-k.bin", "TLS: new connections (a 4 KiB request each)", "rps",
                 lambda v: f"{v:,.0f} conn/s", "nginx")]
    for key, label, field, fmt, reference in tls_rows:
        if ("nginx", key) not in samples:
            continue
        ref = _median(samples[("nginx", key)], field)
        for impl in impls:
            v = _median(samples[(impl, key)], field)
            rows.append((label, f"ferry-{impl}", fmt(v), spread((impl, key), field, fmt), f"{reference} {fmt(ref)}",
                         f"{v / ref:.2f}", f"{v / iperf:.2f}" if field == "bps" else ""))
    rounds = env["rounds"]
    out = [f"iperf3, one TCP stream over loopback: {gb(iperf)} (median of {rounds}).", "",
           "| test | ferry | median | min – max | reference (median) | ferry ÷ reference | ferry ÷ iperf3 |",
           "|---|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", f"{rounds} rounds after a warm-up round, each in a random order (seed {env['seed']}); "
                f"{env['seconds_per_load_test']:g} s per load test; {env['date'][:10]}, commit "
                f"{str(env.get('git_commit'))[:7]}, {env['cores']} cores, {env['cpu']}."]
    out += ["", "Server CPU time (user + system, from /proc/PID/stat, nginx's workers included) per unit of work, "
                "measured around the same load tests: it compares the servers alone, whatever the load generator "
                "costs; two rows add the reader's own CPU (ferry-load's), and the sum. Lower is better.", "",
            "| test | " + " | ".join(["nginx"] + [f"ferry-{i}" for i in impls]) + " |",
            "|---|" + "---|" * (1 + len(impls))]
    for key, label, unit, scale, fmt, *spent in [
            ("c64 four-k.bin", "4 KiB, 64 conns: CPU per request", "requests", 1e6, "{:.1f} µs"),
            ("c64 depth32 four-k.bin", "4 KiB, depth 32: CPU per request", "requests", 1e6, "{:.1f} µs"),
            ("c64 depth32 four-k.bin" + ONE_CORE, "4 KiB, depth 32, server on 1 core: CPU per request",
             "requests", 1e6, "{:.1f} µs"),
            ("c64 one-m.bin", "1 MiB, 64 conns: CPU per GB sent", "bytes", 1e9 * 1e3, "{:.0f} ms"),
            ("reader one-g.bin", "1 GiB download, one reader: CPU per GB sent", "bytes", 1e9 * 1e3, "{:.0f} ms"),
            # On loopback, the kernel's work for one stream lands on either
            # side (the reader's reads and acknowledgements send what the
            # server queued): the reader's share and the sum beside it.
            ("reader one-g.bin", "1 GiB download, one reader: the reader's CPU per GB", "bytes", 1e9 * 1e3,
             "{:.0f} ms", "client_cpu_s"),
            ("reader one-g.bin", "1 GiB download, one reader: server and reader together, CPU per GB", "bytes",
             1e9 * 1e3, "{:.0f} ms", ("cpu_s", "client_cpu_s")),
            ("tls c64 four-k.bin", "TLS, 4 KiB, 64 conns: CPU per request", "requests", 1e6, "{:.1f} µs"),
            ("tls new four-k.bin", "TLS, new connections: CPU per connection", "requests", 1e6, "{:.1f} µs"),
            ("tls one-g.bin", "TLS, 1 GiB download: CPU per GB sent", "bytes", 1e9 * 1e3, "{:.0f} ms")]:
        if key.startswith(("tls ", "reader ")) and ("nginx", key) not in samples:
            continue  # a run from before TLS was measured
        fields = spent[0] if spent else "cpu_s"
        fields = (fields,) if isinstance(fields, str) else fields
        if any(f not in v for f in fields for v in samples.get(("nginx", key), [])):
            continue  # a run from before the reader's CPU was kept
        cells = []
        for server in ["nginx"] + impls:
            runs = samples.get((server, key))
            cells.append(fmt.format(_median([sum(v[f] for f in fields) / v[unit] * scale for v in runs]))
                         if runs else "–")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    if ("rsync -a", "tree-small") in samples:
        # Runs from before the references' flush was timed have no on-disk column.
        on_disk = all("flushed_s" in v for v in samples[("rsync -a", "tree-small")])
        out += ["", "Copying a folder, into a fresh folder, each copy checked with `diff -r`: ferry's `get -r` "
                    "(its own client, 4 connections) from each server, `rsync -a` from an rsync daemon, `wget -r -np` "
                    "from the same nginx (autoindex), and `tar c | nc` into `nc | tar x`. Seconds, lower is faster."
                    + (" ferry's `get -r` flushes its copy to disk before it exits, the others do not: \"÷ rsync -a "
                       "on disk\" compares with rsync's time until its copy was on disk too (a `sync -f` after it)."
                       if on_disk else ""), "",
                "| tree | party | median | min – max | ÷ rsync -a |" + (" ÷ rsync -a on disk |" if on_disk else "")
                + " ÷ wget -r | ÷ tar \\| nc |",
                "|---|---|---|---|---|---|---|" + ("---|" if on_disk else "")]
        for tree, label in [("tree-small", "10,000 × 4 KiB in 100 folders"), ("tree-large", "100 × 10 MiB")]:
            refs = {ref: _median(samples[(ref, tree)], "s") for ref in ["rsync -a", "wget -r", "tar | nc"]}
            if on_disk:
                refs = {"rsync -a": refs["rsync -a"], "rsync on disk": _median(samples[("rsync -a", tree)], "flushed_s"),
                        "wget -r": refs["wget -r"], "tar | nc": refs["tar | nc"]}
            for party in [f"{i}" for i in impls] + ["rsync -a", "wget -r", "tar | nc"]:
                runs = [v["s"] for v in samples[(party, tree)]]
                name = f"ferry-{party} get -r" if party in impls else party.replace("|", "\\|")
                v = statistics.median(runs)
                out.append(f"| {label} | {name} | {v:.2f} s | {min(runs):.2f} – {max(runs):.2f} s | "
                           + " | ".join(f"{v / ref:.2f}" for ref in refs.values()) + " |")
    peaks = results.get("peak_rss_bytes", {})
    if peaks:
        out += ["", "Server peak RSS over the whole run (VmHWM; nginx: master and workers): " + ", ".join(
            f"{party} {value / 2**20:.0f} MiB" for party, value in peaks.items()) + "."]
    failed = results["validation"].get("failed", {})
    for impl, cases in failed.items():
        out += ["", f"ferry-{impl} failed the validation gate ({', '.join(cases[:5])}) and was not timed."]
    return "\n".join(out)


def scale(data):
    """`benches/scale`'s table."""
    n = data["connections"]
    out = [f"| implementation | idle: connections held | RSS per idle connection | busy: {n} downloads of 1 MiB "
           "| errors | server peak RSS | wall time |", "|---|---|---|---|---|---|---|"]
    for impl, r in data["implementations"].items():
        out.append(f"| ferry-{impl} | {r['held']} of {n} | {r['per_idle'] / 1024:.1f} KiB | {r['completed']} completed "
                   f"| {r['errors']} | {r['peak'] / 2**20:.0f} MiB | {r['secs']:.1f} s |")
    for impl, r in data["implementations"].items():
        for cause, count in r.get("causes", {}).items():
            out += ["", f"ferry-{impl}: {count} × {cause}"]
    out += ["", f"{data['date']}, {data['cores']} cores, open-file limit {data['open_file_limit']}; one run "
                "(`benches/scale`)."]
    return "\n".join(out)


def cost(data):
    """`benches/cost`'s table."""
    out = ["| implementation | driver code (lines) | dependencies (direct, total) | clean release build | "
           "stripped binary | idle RSS | RSS per idle connection |", "|---|---|---|---|---|---|---|"]
    for impl, r in data["implementations"].items():
        out.append(f"| ferry-{impl} | {r['code_lines']:,} | {r['direct_dependencies']}, {r['total_dependencies']} | "
                   f"{r['clean_build_s']:.1f} s | {r['stripped_binary_bytes'] / 2**20:.2f} MiB | "
                   f"{r['idle_rss_bytes'] / 2**20:.1f} MiB | {r['rss_per_idle_connection_bytes'] / 1024:.1f} KiB |")
    out += ["", f"{data['date']}, {data['cores']} cores; `benches/cost`. Driver code is impl-X/src without blank "
                "lines and comments; the shared crates (`crates/engine`, `crates/share`, `crates/app`) are the same for all."]
    return "\n".join(out)


def slowdisk(data):
    """`benches/slowdisk`'s tables: the hot file's latency, then the longest
    system calls by kind of thread (when the traced pass ran)."""
    streams, secs = data["streams"], data["seconds"]

    def ms(us):
        return f"{us / 1000:.2f} ms"

    def failed(result):
        if not result["failed"]:
            return "0"
        causes = ", ".join(f"{count} × {cause}" for cause, count in result["causes"].items())
        return f"{result['failed']} ({causes})"

    out = [f"| implementation | hot 4 KiB GET alone: p50 / p99 / max | beside {streams} slow streams: p50 / p99 / "
           "p99.9 / max | hot requests/s alone → beside | hot requests failed beside | slow streams' bytes |",
           "|---|---|---|---|---|---|"]
    for impl, r in data["implementations"].items():
        alone, under, slow = r["alone"], r["beside"], r["slow"]
        latencies = (f"{ms(under['p50_us'])} / {ms(under['p99_us'])} / {ms(under['p999_us'])} / {ms(under['max_us'])}"
                     if under["requests"] else f"no answer in {secs:g} s")
        out.append(f"| ferry-{impl} | {ms(alone['p50_us'])} / {ms(alone['p99_us'])} / {ms(alone['max_us'])} | "
                   f"{latencies} | {alone['requests_per_sec']:,.0f} → {under['requests_per_sec']:,.0f} | "
                   f"{failed(under)} | {slow['bytes'] / 2**20:.0f} MiB |")
    out += ["", f"{data['date']}, {data['cores']} cores, commit {str(data.get('git_commit'))[:7]}; every read of the "
                f"FUSE folder sleeps {data['delay_ms']} ms (direct_io, so the page cache never answers); {secs:g} s "
                "per measurement; one run (`benches/slowdisk`)."]
    calls = {impl: r["longest_calls"] for impl, r in data["implementations"].items() if "longest_calls" in r}
    if calls:
        out += ["", "| implementation | longest system call on an event loop | longest in the blocking pool |",
                "|---|---|---|"]
        for impl, longest in calls.items():
            out.append(f"| ferry-{impl} | " + " | ".join(longest_cells(impl, longest)) + " |")
        out += ["", f"The same scenario again under `strace -f -T -e trace={data['traced']}`, a pass of its own "
                    "(tracing slows a server down); waits for events (`epoll_wait`, `io_uring_enter`, `futex`) are "
                    "not traced. A thread is an event loop if it is the main thread or its name says so "
                    "(`*-loop*`, `async-std/runti`, `async-io`)."]
    return "\n".join(out)


def longest_cells(impl, longest):
    """The longest traced call on an event loop and in the blocking pool, as
    two table cells: ferry-std has neither, only a thread a connection."""
    def cell(which):
        return f"{longest[which]['ms']:.1f} ms ({longest[which]['call']})" if which in longest else "none"
    if impl == "std":
        return [f"none: a thread a connection, whose longest was {cell('thread')}", "–"]
    return [cell("loop"), cell("pool")]


# What each README block is made of: (block, JSON file, table function).
def summary(results):
    """README's one table: each implementation's median as a ratio to
    nginx's in the same run, for the main tests, with the run named."""
    env = results["environment"]
    impls = results["validation"]["passed"]
    samples = {(s["party"], s["test"]): s["runs"] for s in results["samples"]}
    out = ["| test (ferry ÷ nginx, higher is faster) | " + " | ".join(f"ferry-{i}" for i in impls) + " |",
           "|---|" + "---|" * len(impls)]
    for test, label, field in [("one-g.bin", "1 GiB download (each its own client)", None),
                               ("c64 four-k.bin", "4 KiB files, 64 connections", "rps"),
                               ("c64 one-m.bin", "1 MiB files, 64 connections", "bps")]:
        ref = _median(samples[("nginx", test)], field)
        out.append(f"| {label} | " + " | ".join(f"{_median(samples[(i, test)], field) / ref:.2f}" for i in impls) + " |")
    for test, label, field in [("reader one-g.bin", "1 GiB download, one reader for both (ferry-load)", "bps"),
                               ("tls one-g.bin", "TLS: 1 GiB download (curl for nginx)", "bps"),
                               ("tls c64 four-k.bin", "TLS: 4 KiB files, 64 connections", "rps"),
                               ("tls new four-k.bin", "TLS: new connections a second", "rps")]:
        if ("nginx", test) in samples:
            ref = _median(samples[("nginx", test)], field)
            out.append(f"| {label} | " + " | ".join(f"{_median(samples[(i, test)], field) / ref:.2f}" for i in impls)
                       + " |")
    for tree, label in [("tree-small", "a folder of 10,000 × 4 KiB: rsync's time ÷ ferry's get -r"),
                        ("tree-large", "a folder of 100 × 10 MiB: rsync's time ÷ ferry's get -r")]:
        if ("rsync -a", tree) in samples:
            for field, said in [("s", ""), ("flushed_s", ", both until the copy is on disk")]:
                if not all(field in v for v in samples[("rsync -a", tree)]):
                    continue
                ref = _median(samples[("rsync -a", tree)], field)
                out.append(f"| {label}{said} | "
                           + " | ".join(f"{ref / _median(samples[(i, tree)], 's'):.2f}" for i in impls) + " |")
    ref = _median(samples[("nginx", "c1 four-k.bin")], "p50_us")
    out.append("| 4 KiB, one connection: nginx's p50 ÷ ferry's | "
               + " | ".join(f"{ref / _median(samples[(i, 'c1 four-k.bin')], 'p50_us'):.2f}" for i in impls) + " |")
    clients = ("the load rows through one load generator for both (ferry-load, HTTP/1.1 for nginx), the download "
               "with each side's own client (curl for nginx)" if "load_generator" in results else
               "each side with its own load generator or client (nginx with wrk and curl)")
    out += ["", f"{env['date'][:10]}, {env['rounds']} rounds, {env['cores']} cores, {env['cpu']}; {clients}, "
                "on the same cores."]
    return "\n".join(out)


BLOCKS = [("compare", "results.json", compare), ("scale", "scale.json", scale), ("cost", "cost.json", cost),
          ("slowdisk", "slowdisk.json", slowdisk), ("summary", "results.json", summary)]
