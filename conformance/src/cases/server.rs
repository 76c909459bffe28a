//! Server cases: raw bytes to a server binary, answers checked against
//! SPEC.md and the fixture's bytes.

use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{Case, Needs, Run, ServerContext, encode, ensure, tls, tree};
use crate::Check;
use crate::fixture::{HUGE, MANY, MANY_COUNT, SECRET, many_name};
use crate::process::Log;
use crate::wire::{Header, WAIT, Wire, same_bytes, shown};

macro_rules! case {
    ($id:literal, $spec:literal, $description:literal, $run:expr) => {
        case!($id, $spec, $description, Needs::Nothing, $run)
    };
    ($id:literal, $spec:literal, $description:literal, $needs:expr, $run:expr) => {
        Case { id: $id, spec: $spec, description: $description, needs: $needs, run: Run::Server($run) }
    };
}

/// The server cases, in the order they are reported.
pub const CASES: &[Case] = &[
    case!(
        "tls.get",
        "§8",
        "over TLS 1.3 (ALPN ferry/1, the printed fingerprint pinned): greeting, a file, BYE, close",
        Needs::ServerOptions,
        tls::tls_get
    ),
    case!(
        "tls.identity-kept",
        "§8",
        "the fingerprint is SHA256: and 43 base64 characters, and the same after a restart",
        Needs::ServerOptions,
        tls::tls_identity_kept
    ),
    case!(
        "tls.alpn",
        "§8",
        "a handshake that offers another ALPN protocol is refused",
        Needs::ServerOptions,
        tls::tls_alpn
    ),
    case!("tls.1.3-only", "§8", "a TLS 1.2 handshake is refused", Needs::ServerOptions, tls::tls_13_only),
    case!(
        "tls.silent",
        "§8",
        "a client that never starts the handshake is cut at the idle timeout; others are served",
        Needs::ServerOptions,
        tls::tls_silent
    ),
    case!(
        "tls.plain-request",
        "§8",
        "a plain request to a TLS server is not answered in FERRY/1; others are served",
        Needs::ServerOptions,
        tls::tls_plain_request
    ),
    case!(
        "auth.required",
        "§2",
        "a request before AUTH is refused UNAUTHORIZED, after about a second, and closed",
        Needs::ServerOptions,
        tls::auth_required
    ),
    case!(
        "auth.wrong",
        "§2",
        "a wrong or malformed token is refused UNAUTHORIZED, late, even with the right one behind it",
        Needs::ServerOptions,
        tls::auth_wrong
    ),
    case!(
        "auth.right",
        "§2",
        "AUTH with the token is OK 0, and what is pipelined behind it answered",
        Needs::ServerOptions,
        tls::auth_right
    ),
    case!(
        "auth.tls",
        "§8",
        "over TLS, the token is required and accepted the same way",
        Needs::ServerOptions,
        tls::auth_tls
    ),
    case!(
        "greeting.names-implementation",
        "§1",
        "the first line is `FERRY/1 <impl>` naming the implementation",
        greeting
    ),
    case!("get.size.0", "§3", "a 0-byte file comes back as `OK 0`", |c| get_whole(c, "empty")),
    case!("get.size.1", "§3", "a 1-byte file comes back byte-identical", |c| get_whole(c, "one-byte")),
    case!("get.size.8k", "§3", "an 8 KiB file comes back byte-identical", |c| get_whole(c, "eight-k.bin")),
    case!("get.size.1m", "§3", "a 1 MiB file comes back byte-identical", |c| get_whole(c, "one-m.bin")),
    case!("get.size.64m", "§3", "a 64 MiB file comes back byte-identical", |c| get_whole(c, "sixty-four-m.bin")),
    case!("get.name.encoded", "§2", "a name with spaces and non-ASCII letters, percent-encoded", |c| {
        get_whole(c, "with space/naïve café.txt")
    }),
    case!("get.name.raw-utf8", "§2", "bytes other than escapes are taken as they are (raw UTF-8)", get_raw_utf8),
    case!("get.nested", "§5", "a path three folders deep", |c| get_whole(c, "a/b/c/nested.txt")),
    case!("get.leading-slash", "§5", "a leading `/` and `.`/empty components mean the same file", get_normalised),
    case!("get.crlf", "§1", "a request line ending in CR LF is accepted", get_crlf),
    case!("get.missing", "§4", "a missing file gives NOT_FOUND naming it; the connection goes on", get_missing),
    case!(
        "err.bidi-escaped",
        "§3",
        "an ERR message naming a path with a right-to-left override shows it escaped, never raw",
        err_bidi
    ),
    case!("get.range.inside", "§2", "`GET p offset` sends from offset to the end", range_inside),
    case!("get.range.length", "§2", "`GET p offset length` sends at most length bytes", range_length),
    case!("get.range.at-end", "§3", "offset equal to the size gives `OK 0`", range_at_end),
    case!("get.range.past-end", "§4", "offset past the size gives RANGE; the connection goes on", range_past_end),
    case!("get.range.length-past-end", "§3", "a length past the end is cut to the end", range_length_past_end),
    case!("pipeline.100", "§2", "100 requests in one write are answered completely and in order", pipeline_100),
    case!(
        "pipeline.mixed",
        "§2",
        "small and large files, refusals and QUIT in one write: answered in order, nothing after BYE",
        pipeline_mixed
    ),
    case!("list.root", "§3", "LIST / lists the root, sorted, encoded, links outside left out", list_root),
    case!("list.subfolder", "§3", "LIST of a folder follows links inside the root only", list_subfolder),
    case!(
        "list.large",
        "§3",
        "a listing of 12,000 entries (3 MB) arrives whole, sorted, each line as in §3",
        list_large
    ),
    case!(
        "list.slow-reader.kept",
        "§6",
        "a client that reads large listings slowly but steadily (0.75 MiB/s, for many idle timeouts) gets all of them",
        Needs::ServerOptions,
        list_slow_reader
    ),
    case!(
        "list.trickle.dropped",
        "§6",
        "a client that trickles large listings in (16 KiB/s, below 1 MiB per idle timeout) is dropped, as from a body",
        Needs::ServerOptions,
        list_trickle
    ),
    case!(
        "list.unread.dropped",
        "§6",
        "large LISTs pipelined and never read: the client is dropped after the idle timeout, like a stalled body",
        Needs::ServerOptions,
        list_unread
    ),
    case!(
        "tree.folder",
        "§3",
        "TREE of a folder: every entry below, name by name, with times; a link to a folder as l, one outside left out",
        tree::tree_folder
    ),
    case!(
        "tree.refused",
        "§4",
        "TREE of a file, of a path outside the root, of nothing: each refused",
        tree::tree_refused
    ),
    case!("list.file", "§4", "LIST of a file gives NOT_A_DIRECTORY", |c| refused(
        c,
        "LIST one-byte",
        "NOT_A_DIRECTORY"
    )),
    case!("get.folder", "§4", "GET of a folder gives NOT_A_FILE", |c| refused(c, "GET sub", "NOT_A_FILE")),
    case!("sum.folder", "§4", "SUM of a folder gives NOT_A_FILE", |c| refused(c, "SUM sub", "NOT_A_FILE")),
    case!("sum.file", "§3", "SUM is the BLAKE3 of the file's bytes, 64 lower-case hex digits", sum_file),
    case!("quit", "§2", "QUIT is answered BYE and the server closes", quit),
    case!("path.traversal.dotdot", "§5", "a `..` component is FORBIDDEN", |c| {
        forbidden(c, "GET ../outside/secret.txt")
    }),
    case!("path.traversal.encoded-dotdot", "§2", "`%2e%2e` decodes to `..`: FORBIDDEN", |c| {
        forbidden(c, "GET %2e%2e/outside/secret.txt")
    }),
    case!("path.traversal.inner-dotdot", "§5", "`a/../../x` is FORBIDDEN, not resolved", |c| {
        forbidden(c, "GET a/../../outside/secret.txt")
    }),
    case!("path.symlink.file-outside", "§5", "a symlink to a file outside the root is FORBIDDEN", |c| {
        forbidden(c, "GET out-file")?;
        forbidden(c, "SUM out-file")
    }),
    case!("path.symlink.folder-outside", "§5", "a symlink to a folder outside the root is FORBIDDEN", |c| {
        forbidden(c, "GET out-dir/secret.txt")?;
        forbidden(c, "LIST out-dir")
    }),
    case!("path.symlink.inside", "§5", "a symlink that stays inside the root is followed", symlink_inside),
    case!(
        "path.symlink.absolute-inside",
        "§5",
        "an absolute symlink is FORBIDDEN and not listed, even one that points inside the root",
        symlink_absolute_inside
    ),
    case!("path.absolute", "§5", "`/etc/passwd` is looked up under the root: NOT_FOUND", |c| {
        refused(c, "GET /etc/passwd", "NOT_FOUND")
    }),
    case!("bad.unknown-command", "§4", "an unknown command is BAD_REQUEST", |c| bad(c, b"FETCH one-byte\n")),
    case!("bad.lowercase", "§2", "commands are case-sensitive", |c| bad(c, b"get one-byte\n")),
    case!("bad.missing-token", "§4", "GET without a path is BAD_REQUEST", |c| bad(c, b"GET\n")),
    case!("bad.extra-token", "§4", "too many tokens is BAD_REQUEST", |c| bad(c, b"GET one-byte 1 2 3\n")),
    case!("bad.double-space", "§2", "tokens are separated by exactly one space", |c| bad(c, b"GET  one-byte\n")),
    case!("bad.non-digit", "§2", "a number with a non-digit is BAD_REQUEST", |c| bad(c, b"GET one-byte 1x\n")),
    case!("bad.signed", "§2", "a number with a sign is BAD_REQUEST", |c| bad(c, b"GET one-byte +1\n")),
    case!("bad.overflow", "§2", "a number past u64 is BAD_REQUEST", |c| {
        bad(c, b"GET one-byte 18446744073709551616\n")
    }),
    case!("bad.percent-zz", "§2", "a malformed `%` escape is BAD_REQUEST", |c| bad(c, b"GET %zz\n")),
    case!("bad.percent-truncated", "§2", "a `%` at the end is BAD_REQUEST", |c| bad(c, b"GET one%\n")),
    case!("bad.percent-00", "§4", "a decoded NUL is BAD_REQUEST", |c| bad(c, b"GET a%00b\n")),
    case!("bad.backslash", "§4", "a decoded backslash is BAD_REQUEST", |c| bad(c, b"GET a%5Cb\n")),
    case!("bad.not-utf8", "§2", "a decoded path that is not UTF-8 is BAD_REQUEST", |c| bad(c, b"GET %ff%fe\n")),
    case!("bad.empty-line", "§4", "an empty line is BAD_REQUEST", |c| bad(c, b"\n")),
    case!("bad.binary-junk", "§4", "binary junk is BAD_REQUEST and harms no one else", |c| {
        bad(c, b"\x00\xff\xfe\x01\x02junk\x7f\n")
    }),
    case!("bad.too-long", "§1", "a 9000-byte line gives TOO_LONG and the server closes", too_long),
    case!("limit.exact-line", "§1", "a request line of exactly 8192 bytes is accepted", exact_line),
    case!(
        "limit.answer-line",
        "§3",
        "the longest legal GET, LIST and SUM lines, in ASCII and in multi-byte characters, get answer lines of at most 8192 bytes",
        answer_line
    ),
    case!(
        "timeout.silent",
        "§4",
        "a client that says nothing gets TIMEOUT after the idle timeout",
        Needs::ServerOptions,
        timeout_silent
    ),
    case!(
        "timeout.dribble",
        "§4",
        "a line dribbled a byte at a time still times out as a whole",
        Needs::ServerOptions,
        timeout_dribble
    ),
    case!(
        "sum.deadline",
        "§4",
        "a SUM that cannot finish within the idle timeout is answered TIMEOUT and the server closes",
        Needs::ServerOptions,
        sum_deadline
    ),
    case!(
        "sum.disconnect-frees-slot",
        "§4",
        "a client that leaves during a long SUM frees its place: at --max-connections 1 the next is served",
        Needs::ServerOptions,
        sum_disconnect
    ),
    case!(
        "busy.limit",
        "§1",
        "at --max-connections 2 a third client gets ERR BUSY instead of the greeting",
        Needs::ServerOptions,
        busy
    ),
    case!("disconnect.mid-body", "§6", "a client leaving mid-body does not disturb a concurrent download", disconnect),
    case!(
        "slow-reader.dropped",
        "§4",
        "a client that stops reading is dropped after the idle timeout",
        Needs::ServerOptions,
        slow_reader
    ),
    case!(
        "sum.mapped-write",
        "§3",
        "a file rewritten through a shared memory mapping after its SUM is summed anew, never from a stale cache",
        Needs::Python,
        sum_mapped_write
    ),
    case!(
        "shutdown.in-flight",
        "§7",
        "on SIGTERM a download in flight completes and the server exits 0",
        Needs::ServerOptions,
        shutdown
    ),
    case!(
        "shutdown.dead-log.sigterm",
        "§7",
        "with its log going to a pipe whose reader has exited, the server still stops on SIGTERM and exits 0",
        Needs::ServerOptions,
        |c| shutdown_without_log(c, Signal::TERM)
    ),
    case!(
        "shutdown.dead-log.sigint",
        "§7",
        "with its log going to a pipe whose reader has exited, the server still stops on Ctrl-C's SIGINT and exits 0",
        Needs::ServerOptions,
        |c| shutdown_without_log(c, Signal::INT)
    ),
];

fn request(context: &ServerContext<'_>, line: &str) -> Result<Wire, String> {
    let mut wire = context.connect()?;
    wire.send(format!("{line}\n").as_bytes())?;
    Ok(wire)
}

fn greeting(context: &ServerContext<'_>) -> Check {
    context.connect().map(drop)
}

fn get_whole(context: &ServerContext<'_>, name: &str) -> Check {
    let mut wire = request(context, &format!("GET {}", encode(name)))?;
    same_bytes(name, &wire.ok_body()?, context.fixture.bytes(name))
}

fn get_raw_utf8(context: &ServerContext<'_>) -> Check {
    let mut wire = context.connect()?;
    wire.send("GET sub/é.txt\n".as_bytes())?;
    same_bytes("sub/é.txt", &wire.ok_body()?, context.fixture.bytes("sub/é.txt"))
}

fn get_normalised(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET /a//./b/c/nested.txt")?;
    same_bytes("a/b/c/nested.txt", &wire.ok_body()?, context.fixture.bytes("a/b/c/nested.txt"))
}

fn get_crlf(context: &ServerContext<'_>) -> Check {
    let mut wire = context.connect()?;
    wire.send(b"GET one-byte\r\n")?;
    same_bytes("one-byte", &wire.ok_body()?, context.fixture.bytes("one-byte"))
}

/// Checks that `wire` still answers after a refusal.
fn still_serving(wire: &mut Wire, context: &ServerContext<'_>) -> Check {
    wire.send(b"GET one-byte\n")?;
    let body = wire.ok_body().map_err(|e| format!("the connection did not go on after the refusal: {e}"))?;
    same_bytes("one-byte", &body, context.fixture.bytes("one-byte"))
}

fn get_missing(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET docs/x.pdf")?;
    let message = wire.expect_err("NOT_FOUND")?;
    ensure(message.contains("docs/x.pdf"), || format!("message {message:?} does not name docs/x.pdf"))?;
    still_serving(&mut wire, context)
}

fn range_inside(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET one-m.bin 1000")?;
    same_bytes("one-m.bin from 1000", &wire.ok_body()?, &context.fixture.bytes("one-m.bin")[1000..])
}

fn range_length(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET one-m.bin 1000 24")?;
    same_bytes("one-m.bin 1000..1024", &wire.ok_body()?, &context.fixture.bytes("one-m.bin")[1000..1024])
}

fn range_at_end(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, &format!("GET one-m.bin {}", 1 << 20))?;
    let header = wire.header()?;
    ensure(header == Header::Ok(0), || format!("expected OK 0, got {header}"))?;
    still_serving(&mut wire, context)
}

fn range_past_end(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, &format!("GET one-m.bin {}", (1 << 20) + 1))?;
    wire.expect_err("RANGE")?;
    still_serving(&mut wire, context)
}

fn range_length_past_end(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET eight-k.bin 8000 1000")?;
    same_bytes("eight-k.bin 8000..", &wire.ok_body()?, &context.fixture.bytes("eight-k.bin")[8000..])
}

fn pipeline_100(context: &ServerContext<'_>) -> Check {
    let names = ["eight-k.bin", "one-byte", "empty", "sub/x.txt", "missing"];
    let mut wire = context.connect()?;
    let mut requests = Vec::new();
    for i in 0..100 {
        requests.extend_from_slice(format!("GET {}\n", names[i % names.len()]).as_bytes());
    }
    wire.send(&requests)?;
    for i in 0..100 {
        let name = names[i % names.len()];
        if name == "missing" {
            wire.expect_err("NOT_FOUND").map_err(|e| format!("answer {i}: {e}"))?;
        } else {
            let body = wire.ok_body().map_err(|e| format!("answer {i}: {e}"))?;
            same_bytes(&format!("answer {i} ({name})"), &body, context.fixture.bytes(name))?;
        }
    }
    Ok(())
}

fn pipeline_mixed(context: &ServerContext<'_>) -> Check {
    let mut wire = context.connect()?;
    wire.send(b"GET one-byte\nGET missing\nGET one-m.bin\nFETCH x\nGET eight-k.bin\nQUIT\nGET one-byte\n")?;
    let small = wire.ok_body().map_err(|e| format!("answer 1: {e}"))?;
    same_bytes("answer 1 (one-byte)", &small, context.fixture.bytes("one-byte"))?;
    wire.expect_err("NOT_FOUND").map_err(|e| format!("answer 2: {e}"))?;
    let large = wire.ok_body().map_err(|e| format!("answer 3: {e}"))?;
    same_bytes("answer 3 (one-m.bin)", &large, context.fixture.bytes("one-m.bin"))?;
    wire.expect_err("BAD_REQUEST").map_err(|e| format!("answer 4: {e}"))?;
    let eight = wire.ok_body().map_err(|e| format!("answer 5: {e}"))?;
    same_bytes("answer 5 (eight-k.bin)", &eight, context.fixture.bytes("eight-k.bin"))?;
    let header = wire.header()?;
    ensure(header == Header::Bye, || format!("answer 6: expected BYE, got {header}"))?;
    wire.expect_closed().map_err(|e| format!("after BYE: {e}"))
}

fn listing(context: &ServerContext<'_>, path: &str) -> Result<String, String> {
    let mut wire = request(context, &format!("LIST {path}"))?;
    String::from_utf8(wire.ok_body()?).map_err(|e| format!("listing is not UTF-8: {e}"))
}

fn err_bidi(context: &ServerContext<'_>) -> Check {
    // U+202E, percent-encoded: a name that would display reversed.
    let mut wire = request(context, "GET evil%E2%80%AEtxt.exe")?;
    let message = wire.expect_err("NOT_FOUND")?;
    ensure(!message.contains('\u{202e}'), || format!("the message holds a raw U+202E: {}", shown(message.as_bytes())))
}

fn list_root(context: &ServerContext<'_>) -> Check {
    let got = listing(context, "/")?;
    let size = |name: &str| context.fixture.bytes(name).len();
    let expected = format!(
        "d 0 a\nd 0 big\nf {} eight-k.bin\nf 0 empty\nf 1 one-byte\nf {} one-m.bin\nf {} sixty-four-m.bin\nd 0 sub\nd 0 tree\nd 0 with%20space\n",
        size("eight-k.bin"),
        size("one-m.bin"),
        size("sixty-four-m.bin"),
    );
    ensure(got == expected, || format!("LIST / gave\n{got}expected\n{expected}"))
}

fn list_large(context: &ServerContext<'_>) -> Check {
    let got = listing(context, MANY)?;
    let expected: String = (0..MANY_COUNT).map(|n| format!("f 0 {}\n", many_name(n))).collect();
    ensure(got == expected, || {
        let first = got.lines().zip(expected.lines()).position(|(a, b)| a != b);
        format!("LIST {MANY} gave {} bytes, expected {}; first difference at line {first:?}", got.len(), expected.len())
    })
}

fn list_slow_reader(context: &ServerContext<'_>) -> Check {
    // Two seconds: time for a busy server to make each listing, too.
    let server = context.start(&["--idle-timeout", "2"])?;
    let mut wire = context.connect_to(server.addr)?;
    // Little kept in flight, as on a slow link: the server's writes wait for
    // the reader, and two listings (6 MB) outlast what it buffers.
    wire.small_receive_buffer(64 << 10)?;
    let listings = 2;
    wire.send(format!("LIST {MANY}\n").repeat(listings).as_bytes())?;
    // 0.75 MiB a second: above what a body must bring (1 MiB per idle
    // timeout of 2 s), below what it would take to send a listing in one.
    let (rate, started) = (0.75 * f64::from(1 << 20), Instant::now());
    let expected: String = (0..MANY_COUNT).map(|n| format!("f 0 {}\n", many_name(n))).collect();
    let mut read = 0;
    for listing in 1..=listings {
        let Header::Ok(len) = wire.header()? else { return Err(format!("listing {listing}: expected OK")) };
        let mut got = Vec::new();
        while (got.len() as u64) < len {
            got.extend(wire.body((len - got.len() as u64).min(64 << 10))?);
            let due = started + Duration::from_secs_f64((read + got.len()) as f64 / rate);
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        read += got.len();
        ensure(got == expected.as_bytes(), || {
            format!("listing {listing}: {} bytes, expected {}", got.len(), expected.len())
        })?;
    }
    Ok(())
}

fn list_trickle(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--idle-timeout", SHORT_IDLE])?;
    let mut wire = context.connect_to(server.addr)?;
    wire.small_receive_buffer(64 << 10)?;
    // More than the kernel buffers on both sides, so the server must wait
    // on this reader.
    let listings = 3;
    wire.send(format!("LIST {MANY}\n").repeat(listings).as_bytes())?;
    // Four idle timeouts at 16 KiB/s: every write makes a little progress,
    // far below the 1 MiB per idle timeout a body must make.
    let (rate, started) = (16.0 * 1024.0, Instant::now());
    let mut got = 0u64;
    while started.elapsed() < Duration::from_secs(4) {
        let Ok(bytes) = wire.body(4 << 10) else { return Ok(()) };
        got += bytes.len() as u64;
        let due = started + Duration::from_secs_f64(got as f64 / rate);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let whole = listings as u64 * (MANY_COUNT as u64) * (many_name(0).len() as u64 + 5);
    let received = got + wire.drain(whole + (1 << 20))?;
    ensure(received < whole, || "every listing arrived: a trickling reader kept the server waiting on it".into())
}

fn list_unread(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--idle-timeout", SHORT_IDLE])?;
    let mut wire = context.connect_to(server.addr)?;
    // Far more than socket buffers hold: the server's writes must stall.
    let pipelined = 48;
    wire.send(format!("LIST {MANY}\n").repeat(pipelined).as_bytes())?;
    // Stop reading for three idle timeouts: the server must give up on this
    // client as it would on one that stopped reading a file's body.
    thread::sleep(Duration::from_secs(3));
    let whole = pipelined as u64 * (MANY_COUNT as u64) * (many_name(0).len() as u64 + 5);
    let received = wire.drain(whole + (1 << 20))?;
    ensure(received < whole, || "every listing arrived: the server never gave up on the stalled reader".into())?;
    // It serves others meanwhile and afterwards.
    let mut other = context.connect_to(server.addr)?;
    other.send(b"GET one-byte\n")?;
    same_bytes("one-byte", &other.ok_body()?, context.fixture.bytes("one-byte"))
}

fn list_subfolder(context: &ServerContext<'_>) -> Check {
    let got = listing(context, "sub")?;
    let expected = format!(
        "f {} Z.txt\nd 0 dir\nf 1 link-in\nf {} x.txt\nf {} %C3%A9.txt\n",
        context.fixture.bytes("sub/Z.txt").len(),
        context.fixture.bytes("sub/x.txt").len(),
        context.fixture.bytes("sub/é.txt").len(),
    );
    ensure(got == expected, || format!("LIST sub gave\n{got}expected\n{expected}"))
}

fn refused(context: &ServerContext<'_>, line: &str, code: &str) -> Check {
    let mut wire = request(context, line)?;
    let message = wire.expect_err(code)?;
    ensure(!message.as_bytes().windows(24).any(|w| SECRET.windows(24).any(|s| s == w)), || {
        format!("the message {message:?} quotes the secret file")
    })?;
    still_serving(&mut wire, context)
}

fn forbidden(context: &ServerContext<'_>, line: &str) -> Check {
    refused(context, line, "FORBIDDEN").map_err(|e| format!("{line}: {e}"))
}

fn sum_file(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "SUM one-m.bin")?;
    let body = wire.ok_body()?;
    let expected = blake3::hash(context.fixture.bytes("one-m.bin")).to_hex();
    ensure(body == expected.as_bytes(), || format!("expected the 64 digits \"{expected}\"; got {}", shown(&body)))
}

fn quit(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "QUIT")?;
    let header = wire.header()?;
    ensure(header == Header::Bye, || format!("expected BYE, got {header}"))?;
    wire.expect_closed()
}

fn symlink_inside(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET sub/link-in")?;
    same_bytes("sub/link-in", &wire.ok_body()?, context.fixture.bytes("one-byte"))
}

fn symlink_absolute_inside(context: &ServerContext<'_>) -> Check {
    let mut wire = request(context, "GET sub/abs-in")?;
    wire.expect_err("FORBIDDEN")?;
    let listed = listing(context, "sub")?;
    ensure(!listed.contains("abs-in"), || format!("LIST sub shows the absolute link:\n{listed}"))
}

fn bad(context: &ServerContext<'_>, line: &[u8]) -> Check {
    let mut wire = context.connect()?;
    wire.send(line)?;
    wire.expect_err("BAD_REQUEST")?;
    still_serving(&mut wire, context)?;
    // And everyone else is still served.
    let mut other = request(context, "GET one-byte")?;
    same_bytes("one-byte on another connection", &other.ok_body()?, context.fixture.bytes("one-byte"))
}

fn too_long(context: &ServerContext<'_>) -> Check {
    let mut wire = context.connect()?;
    let mut line = vec![b'A'; 9000];
    line.push(b'\n');
    wire.send(&line)?;
    wire.expect_err("TOO_LONG")?;
    wire.expect_closed()?;
    let mut other = request(context, "GET one-byte")?;
    same_bytes("one-byte after TOO_LONG", &other.ok_body()?, context.fixture.bytes("one-byte"))
}

fn exact_line(context: &ServerContext<'_>) -> Check {
    // "GET " + path + LF = 8192 bytes; the path is long but well-formed.
    let path = format!("/{}one-byte", "./".repeat((8192 - 4 - 1 - 9) / 2));
    let line = format!("GET {path}\n");
    ensure(line.len() == 8192, || format!("test bug: line is {} bytes", line.len()))?;
    let mut wire = context.connect()?;
    wire.send(line.as_bytes())?;
    same_bytes("one-byte", &wire.ok_body()?, context.fixture.bytes("one-byte"))
}

/// Request lines of exactly 8192 bytes that the server must refuse, quoting
/// their paths: ASCII, raw U+0080 (which a server shows as `%C2%80`, three
/// times as long) and a `..` that makes the refusal FORBIDDEN.
fn longest_lines() -> Vec<(String, Vec<u8>)> {
    let mut lines = Vec::new();
    for verb in ["GET", "LIST", "SUM"] {
        let room = 8192 - verb.len() - 2;
        let wide = "\u{80}".repeat(room / 2);
        let wide = if wide.len() < room { format!("{wide}a") } else { wide };
        let dotdot = format!("{}/..", "b".repeat(room - 3));
        for (kind, path) in [("ASCII", "a".repeat(room)), ("U+0080", wide), ("..", dotdot)] {
            let line = format!("{verb} {path}\n").into_bytes();
            lines.push((format!("{verb} of an {kind} path"), line));
        }
    }
    lines
}

fn answer_line(context: &ServerContext<'_>) -> Check {
    for (what, line) in longest_lines() {
        ensure(line.len() == 8192, || format!("test bug: {what} is {} bytes", line.len()))?;
        let mut wire = context.connect()?;
        wire.send(&line)?;
        let answer = wire.line()?;
        // `line` strips the LF: the line on the wire is one byte longer.
        ensure(answer.len() < 8192, || {
            format!("{what}: an answer line of {} bytes, over the 8192 clients accept", answer.len() + 1)
        })?;
        ensure(answer.starts_with(b"ERR "), || format!("{what}: expected \"ERR ...\\n\"; got {}", shown(&answer)))?;
        still_serving(&mut wire, context).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

const SHORT_IDLE: &str = "1";

fn timeout_silent(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--idle-timeout", SHORT_IDLE])?;
    let started = Instant::now();
    let mut wire = context.connect_to(server.addr)?;
    wire.expect_err("TIMEOUT")?;
    let waited = started.elapsed();
    ensure(waited >= Duration::from_millis(900), || format!("TIMEOUT came after {waited:?}, before the idle timeout"))?;
    wire.expect_closed()
}

fn timeout_dribble(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--idle-timeout", SHORT_IDLE])?;
    let mut wire = context.connect_to(server.addr)?;
    // One byte every 200 ms, never an LF: each read makes progress, but the
    // line as a whole must still be cut off after about one second.
    wire.stream().set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for byte in b"GET aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().take(50) {
        if wire.send(&[*byte]).is_err() {
            break;
        }
        if let Ok(line) = wire.line() {
            let line = String::from_utf8_lossy(&line).into_owned();
            ensure(line.starts_with("ERR TIMEOUT"), || {
                format!("expected \"ERR TIMEOUT ...\\n\"; got {}", shown(line.as_bytes()))
            })?;
            let waited = started.elapsed();
            return ensure(waited < Duration::from_secs(5), || format!("TIMEOUT only after {waited:?}"));
        }
    }
    Err(format!("no ERR TIMEOUT after dribbling for {:?}", started.elapsed()))
}

fn sum_deadline(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--idle-timeout", SHORT_IDLE])?;
    let mut wire = context.connect_to(server.addr)?;
    let started = Instant::now();
    wire.send(format!("SUM {HUGE}\n").as_bytes())?;
    let message = wire.expect_err("TIMEOUT")?;
    let waited = started.elapsed();
    ensure(waited < Duration::from_secs(5), || format!("TIMEOUT ({message}) came only after {waited:?}"))?;
    wire.expect_closed()?;
    // The server still answers, SUM included.
    let mut other = context.connect_to(server.addr)?;
    other.send(b"SUM one-byte\n")?;
    let digest = other.ok_body()?;
    let expected = blake3::hash(context.fixture.bytes("one-byte")).to_hex();
    ensure(digest == expected.as_bytes(), || "SUM after a timed-out SUM is wrong".into())
}

fn sum_disconnect(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--max-connections", "1"])?;
    let mut leaving = context.connect_to(server.addr)?;
    leaving.send(format!("SUM {HUGE}\n").as_bytes())?;
    // Let the server start hashing, then leave.
    thread::sleep(Duration::from_millis(100));
    drop(leaving);
    let started = Instant::now();
    loop {
        match context.connect_to(server.addr) {
            Ok(mut wire) => {
                wire.send(b"GET one-byte\n")?;
                same_bytes("one-byte", &wire.ok_body()?, context.fixture.bytes("one-byte"))?;
                let waited = started.elapsed();
                return ensure(waited < Duration::from_secs(2), || {
                    format!("served only {waited:?} after the hashing client left")
                });
            }
            Err(e) if started.elapsed() >= Duration::from_secs(2) => {
                return Err(format!("the place was not freed within 2 s of the client leaving: {e}"));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn busy(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--max-connections", "2"])?;
    let first = context.connect_to(server.addr)?;
    let _second = context.connect_to(server.addr)?;
    let mut third = Wire::connect(server.addr)?;
    let line = String::from_utf8_lossy(&third.line()?).into_owned();
    ensure(line.starts_with("ERR BUSY "), || {
        format!("expected \"ERR BUSY ...\\n\" instead of a greeting; got {}", shown(line.as_bytes()))
    })?;
    third.expect_closed()?;
    // Once a client leaves, its place is free again (the server notices
    // the close asynchronously, so retry for a bounded time).
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        match Wire::greeted(server.addr) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(format!("no place freed after a client left: {e}")),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn disconnect(context: &ServerContext<'_>) -> Check {
    let name = "sixty-four-m.bin";
    thread::scope(|scope| {
        let whole = scope.spawn(|| get_whole(context, name));
        let mut leaving = request(context, &format!("GET {name}"))?;
        let header = leaving.header()?;
        ensure(matches!(header, Header::Ok(_)), || format!("expected OK, got {header}"))?;
        leaving.body(1 << 20)?;
        drop(leaving);
        whole.join().map_err(|_| "the concurrent download panicked".to_owned())?
    })?;
    // The server survived: a new client is served.
    get_whole(context, "one-byte")
}

fn slow_reader(context: &ServerContext<'_>) -> Check {
    let server = context.start(&["--idle-timeout", SHORT_IDLE])?;
    let mut wire = context.connect_to(server.addr)?;
    wire.send(b"GET sixty-four-m.bin\n")?;
    // Stop reading for three idle timeouts: the server's writes stall once
    // the socket buffers are full, and it must give up on this client.
    thread::sleep(Duration::from_secs(3));
    let received = wire.drain(64 << 20)?;
    ensure(received < 64 << 20, || "the whole body arrived: the server never gave up on the stalled reader".into())?;
    // It serves others meanwhile and afterwards.
    let mut other = context.connect_to(server.addr)?;
    other.send(b"GET one-byte\n")?;
    same_bytes("one-byte", &other.ok_body()?, context.fixture.bytes("one-byte"))
}

fn shutdown(context: &ServerContext<'_>) -> Check {
    let name = "sixty-four-m.bin";
    let mut server = context.start(&[])?;
    let mut wire = context.connect_to(server.addr)?;
    wire.send(format!("GET {name}\n").as_bytes())?;
    let Header::Ok(len) = wire.header()? else { return Err("expected OK".into()) };
    let mut body = wire.body(1)?;
    server.terminate()?;
    body.extend(wire.body(len - 1)?);
    same_bytes(&format!("{name} across SIGTERM"), &body, context.fixture.bytes(name))?;
    let status = server.wait(WAIT)?;
    ensure(status.success(), || format!("the server exited with {status} after SIGTERM"))
}

/// A failed log write must not cost the server anything: it serves (each
/// request logs a line that cannot be written) and stops on one `signal`.
fn shutdown_without_log(context: &ServerContext<'_>, signal: Signal) -> Check {
    let mut server = context.start_logging(&[], Log::DeadPipe)?;
    let mut wire = context.connect_to(server.addr)?;
    wire.send(b"GET one-byte\n")?;
    same_bytes("one-byte", &wire.ok_body()?, context.fixture.bytes("one-byte"))?;
    drop(wire);
    server.signal(signal)?;
    let status = server.wait(WAIT)?;
    ensure(status.success(), || format!("the server exited with {status} after {signal:?}, its log unwritable"))
}

/// Writes to a file through one mapping held open: `first` and `second`
/// each put five bytes at its start; `second` then flushes and syncs.
const MAPPER: &str = r#"
import mmap, os, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    for line in sys.stdin:
        if line.strip() == "first":
            m[0:5] = b"FIRST"
        else:
            m[0:5] = b"SECND"
            m.flush()
            os.sync()
        print("done", flush=True)
"#;

/// A write through a mapping to a page that is already dirty changes no
/// time of the file: a server that cached its digest by metadata alone
/// would answer the old one. The file is new in the shared folder, 2 MiB,
/// and its times are left to settle for 2.2 s, so that a server that caches
/// digests may cache this one before the second write.
fn sum_mapped_write(context: &ServerContext<'_>) -> Check {
    use std::io::{BufRead, BufReader, Write};
    let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("big/mapped-{}-{unique}.bin", std::process::id());
    let path = context.fixture.root().join(&name);
    let len = 2 << 20;
    std::fs::write(&path, vec![0u8; len]).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut mapper = std::process::Command::new("python3")
        .args(["-c", MAPPER])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let (mut to, from) = (mapper.stdin.take().ok_or("stdin")?, mapper.stdout.take().ok_or("stdout")?);
    let mut from = BufReader::new(from);
    let mut write = |what: &str| -> Check {
        writeln!(to, "{what}").map_err(|e| e.to_string())?;
        let mut done = String::new();
        from.read_line(&mut done).map_err(|e| e.to_string())?;
        ensure(done.trim() == "done", || format!("the mapper said {done:?}"))
    };
    let expected = |start: &[u8]| {
        let mut bytes = vec![0u8; len];
        bytes[..start.len()].copy_from_slice(start);
        blake3::hash(&bytes).to_hex().to_string()
    };
    let sum = || -> Result<String, String> {
        let mut wire = request(context, &format!("SUM {name}"))?;
        String::from_utf8(wire.ok_body()?).map_err(|e| e.to_string())
    };
    write("first")?;
    let settled = Instant::now() + Duration::from_millis(2200);
    while Instant::now() < settled {
        thread::sleep(settled - Instant::now());
    }
    ensure(sum()? == expected(b"FIRST"), || "the first SUM is not of the file's bytes".into())?;
    ensure(sum()? == expected(b"FIRST"), || "a repeated SUM is not of the file's bytes".into())?;
    write("second")?;
    let after = sum()?;
    let _ = mapper.kill();
    let _ = mapper.wait();
    let _ = std::fs::remove_file(&path);
    ensure(after == expected(b"SECND"), || {
        "after a write through the mapping, SUM gave the digest of the old bytes".into()
    })
}
