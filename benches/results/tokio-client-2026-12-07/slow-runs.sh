#!/bin/sh
# ferry-tokio's own client, 1 GiB to /dev/null from one ferry-std server, run
# after run: GB/s beside what `perf stat` counts in the client (receives,
# epoll waits, context switches, page faults, CPU milliseconds).
# usage: slow-runs.sh SHARE RUNS [ENV...]   (SHARE holds big.bin, 1 GiB)
set -eu
share=$1 runs=$2; shift 2
bin=${BIN:-target/release}
"$bin/ferry-std" serve "$share" --listen 127.0.0.1:0 -q > /tmp/slow-runs.addr 2>/dev/null &
server=$!
trap 'kill $server' EXIT
while ! [ -s /tmp/slow-runs.addr ]; do sleep 0.1; done
addr=$(awk '{print $NF; exit}' /tmp/slow-runs.addr)
for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    env "$@" perf stat -x, -o /tmp/slow-runs.perf \
        -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,context-switches,page-faults,task-clock' \
        "$bin/ferry-tokio" get "$addr" big.bin -o - > /dev/null 2>&1
    end=$(date +%s.%N)
    python3 - "$start" "$end" <<'PY'
import sys
start, end = map(float, sys.argv[1:])
counts = {l.split(",")[2].split(":")[-1]: int(float(l.split(",")[0])) for l in open("/tmp/slow-runs.perf") if l[:1].isdigit()}
print(f"{(1 << 30) / (end - start) / 1e9:5.2f} GB/s", counts)
PY
done
