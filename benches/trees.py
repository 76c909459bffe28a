"""Copying a folder, for benches/compare and benches/tree: the two trees
every party copies, and how each party copies one (ferry's `get -r`,
`rsync -a` from an rsync daemon, `wget -r` from nginx with autoindex, and
`tar c | nc` into `nc | tar x`), each into a fresh destination, checked
with `diff -r` after it is timed."""

import random
import shutil
import subprocess
import time
from pathlib import Path

from ferrybench import ROOT

# The trees, by the name a row gives them: the folder's name under the share.
TREES = {"tree-small": "10,000 × 4 KiB in 100 folders", "tree-large": "100 × 10 MiB"}

# The reference parties, by the name their rows give them.
RSYNC, WGET, TAR = "rsync -a", "wget -r", "tar | nc"


def make_trees(share):
    """Writes both trees under `share`, readable by nginx's workers."""
    rng = random.Random(7)
    small, large = share / "tree-small", share / "tree-large"
    for folder in range(100):
        d = small / f"folder-{folder:03}"
        d.mkdir(parents=True)
        for n in range(100):
            (d / f"file-{n:03}.bin").write_bytes(rng.randbytes(4096))
    large.mkdir(parents=True)
    block = rng.randbytes(1 << 20)
    for n in range(100):
        with open(large / f"big-{n:03}.bin", "wb") as f:
            for k in range(10):
                f.write(block[k:] + block[:k])
    for path in [small, large, *small.rglob("*"), *large.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def listening(port, timeout=10.0):
    """Waits until something listens on 127.0.0.1:`port`, from the kernel's
    table rather than by connecting (nc -l takes one connection only)."""
    want = f"0100007F:{port:04X}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open("/proc/net/tcp") as table:
            if any(line.split()[1] == want and line.split()[3] == "0A" for line in list(table)[1:]):
                return
        time.sleep(0.005)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def rsync_daemon(share, work, port):
    """`rsync --daemon` on 127.0.0.1:`port`, sharing `share` as module
    `share`, in the foreground; the caller stops it."""
    conf = work / "rsyncd.conf"
    conf.write_text(f"use chroot = no\nmax connections = 64\n[share]\npath = {share}\nread only = yes\n")
    return ["rsync", "--daemon", "--no-detach", f"--config={conf}", f"--port={port}", "--address=127.0.0.1"]


def copy(party, tree, dest, *, share, addr=None):
    """Copies `tree` (a folder of `share`) into the empty folder `dest` as
    `party` (a ferry implementation's name, or one of the references;
    `addr` is the server's, where it has one). Returns the seconds it took
    (`s`: until the party exits) and until the copy was on disk
    (`flushed_s`): ferry's `get -r` flushes its copy before it exits
    (`syncfs`), the references do not, so theirs is timed on, through a
    `sync -f` of DEST, for the same work."""
    started = time.perf_counter()
    if party == RSYNC:
        subprocess.run(["rsync", "-a", f"rsync://{addr}/share/{tree}/", str(dest / tree)], check=True)
    elif party == WGET:
        subprocess.run(["wget", "-q", "-r", "-np", "-nH", "-l", "inf", "-R", "index.html*", "-P", str(dest),
                        f"http://{addr}/{tree}/"], check=True)
    elif party == TAR:
        port = _free_port()
        sender = subprocess.Popen(f"tar -C '{share}' -cf - '{tree}' | nc -N -l 127.0.0.1 {port}", shell=True)
        listening(port)
        subprocess.run(f"nc 127.0.0.1 {port} < /dev/null | tar -C '{dest}' -xf -", shell=True, check=True)
        if sender.wait() != 0:
            raise RuntimeError("tar | nc failed")
    else:
        binary = ROOT / "target/release" / f"ferry-{party}"
        subprocess.run([str(binary), "get", "-r", addr, tree, "-o", str(dest), "-q", "--no-progress"], check=True)
    took = time.perf_counter() - started
    if party in (RSYNC, WGET, TAR):
        subprocess.run(["sync", "-f", str(dest)], check=True)
    flushed = time.perf_counter() - started
    if subprocess.run(["diff", "-rq", str(share / tree), str(dest / tree)], capture_output=True).returncode != 0:
        raise RuntimeError(f"{party}: the copy of {tree} differs from it")
    return {"s": took, "flushed_s": flushed}


def fresh(dest):
    """An empty `dest`, with what was written before on disk, not in the
    way of the next copy's writes."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    return dest


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
