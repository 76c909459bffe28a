#!/usr/bin/env python3
"""Context switches and CPU per request of each server at 4 KiB x 64
connections (ferry-load, --http for nginx), from `perf stat` on the
server's processes; ROUNDS rounds in a random order, medians.

usage: switches.py IMPLS ROUNDS [SHARE]   (SHARE holds four-k.bin)"""
import json, os, random, socket, statistics, subprocess, sys, time
IMPLS = sys.argv[1].split(","); ROUNDS = int(sys.argv[2]); SHARE = sys.argv[3] if len(sys.argv) > 3 else "/tmp/abroot"
BIN = os.environ.get("BIN", "/work/main/target/release")
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
np = port()
os.makedirs("/tmp/ngx/tmp", exist_ok=True)
open("/tmp/ngx/nginx.conf", "w").write(f"""worker_processes auto; daemon off; error_log /tmp/ngx/error.log; pid /tmp/ngx/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000; keepalive_timeout 60s;
client_body_temp_path /tmp/ngx/tmp; proxy_temp_path /tmp/ngx/tmp; fastcgi_temp_path /tmp/ngx/tmp; uwsgi_temp_path /tmp/ngx/tmp; scgi_temp_path /tmp/ngx/tmp;
server {{ listen 127.0.0.1:{np}; root {SHARE}; }} }}""")
ng = subprocess.Popen(["/usr/sbin/nginx", "-c", "/tmp/ngx/nginx.conf", "-p", "/tmp/ngx"])
time.sleep(0.5)
servers = {"nginx": (ng, f"127.0.0.1:{np}", True)}
for i in IMPLS:
    p = subprocess.Popen([f"{BIN}/ferry-{i}", "serve", SHARE, "--listen", "127.0.0.1:0", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    servers[i] = (p, p.stdout.readline().split()[-1], False)
def pids(pid):
    try:
        return [pid] + [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return [pid]
res = {}
try:
    for _ in range(ROUNDS):
        order = list(servers); random.shuffle(order)
        for name in order:
            p, addr, http = servers[name]
            out = f"/tmp/perf-{name}.txt"
            perf = subprocess.Popen(["perf", "stat", "-e", "context-switches,task-clock", "-x", ",", "-o", out,
                                     "-p", ",".join(map(str, pids(p.pid)))])
            time.sleep(0.3)
            j = json.loads(subprocess.run([f"{BIN}/ferry-load", addr, "four-k.bin", "-c", "64", "-d", "3", "--json"]
                                          + (["--http"] if http else []), capture_output=True, text=True,
                                          check=True).stdout)
            perf.send_signal(2); perf.wait()
            st = {l.split(",")[2]: float(l.split(",")[0]) for l in open(out) if l[:1].isdigit()}
            n = j["requests"]
            res.setdefault(name, []).append((j["requests_per_sec"], st["context-switches"] / n,
                                             st["task-clock"] * 1000 / n))
finally:
    for p, _, _ in servers.values():
        p.terminate()
for name, v in res.items():
    med = lambda k: statistics.median(x[k] for x in v)
    print(f"{name:10} {med(0):8.0f} req/s  {med(1):5.2f} context switches/request  {med(2):5.1f} us CPU/request"
          f"  (rounds: {[round(x[0]) for x in v]})")
