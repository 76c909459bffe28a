"""What the bench scripts share: progress on stderr, the commit measured,
the open-file limit, starting a ferry server, a server's memory from /proc, and idle
connections held against it."""

import re
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(*words):
    print(*words, file=sys.stderr, flush=True)


def git_commit():
    """The commit the benchmarked tree is at, or None outside git."""
    out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or None


def raise_fd_limit():
    """Raises this process's (and its children's) open-file limit to the
    hard limit, and returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextmanager
def serving(impl, share, *options):
    """Runs the release build of ferry-`impl` serving `share` on a free
    loopback port with `options`, quietly; yields the process and its
    address once it says `listening on`, and stops it (SIGTERM, then kill
    after 15 s) afterwards."""
    server = subprocess.Popen([str(ROOT / "target/release" / f"ferry-{impl}"), "serve", str(share),
                               "--listen", "127.0.0.1:0", "-q", *options],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        match = re.match(r"listening on (\S+)", line)
        if not match:
            raise RuntimeError(f"ferry-{impl} printed {line!r}, not `listening on`")
        yield server, match.group(1)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def status(pid, field):
    """A memory field of /proc/PID/status (VmRSS, VmHWM), in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def hold_idle(pid, host, port, n):
    """Opens up to `n` connections to the server `pid` that each read the
    greeting and then wait, stopping at the first that is refused or not
    greeted. Returns the connections still open, and the server's RSS
    before and with them."""
    time.sleep(0.2)
    before = status(pid, "VmRSS")
    held = []
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), timeout=10)
            greeting = s.recv(64)
            if not greeting.startswith(b"FERRY/1 "):
                s.close()
                break
            held.append(s)
        except OSError:
            break
    time.sleep(0.5)
    return held, before, status(pid, "VmRSS")
