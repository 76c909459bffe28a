//! The async servers name their event-loop threads apart from their
//! blocking pools' threads, which is how `benches/slowdisk` (and anyone
//! with `top -H` or `strace -f`) tells a loop that waits for a disk, a bug,
//! from a pool thread that does, its job. A loop thread a core: tokio's
//! workers, and beside the calling thread (a loop too) smol's executor
//! threads and compio's server threads. A pool thread put to work by a
//! LIST must not carry a loop's name.

use std::time::{Duration, Instant};

use ferry_conformance::implementation::{Implementation, Launch};
use ferry_conformance::process::Server;

/// The names of the threads of process `pid`.
fn names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

fn loops(pid: u32, prefix: &str) -> usize {
    names(pid).iter().filter(|name| name.starts_with(prefix)).count()
}

#[test]
fn event_loop_threads_are_named_apart_from_the_pool() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("a.txt"), b"a").expect("file");
    for (name, prefix, expected) in
        [("tokio", "tokio-loop", cores), ("smol", "smol-loop-", cores - 1), ("compio", "compio-loop-", cores - 1)]
    {
        let package = format!("ferry-{name}");
        let implementation = Implementation::workspace(name, &package).expect("builds");
        let Some(launch @ Launch::Ferry(binary)) = &implementation.server else { unreachable!() };
        let server = Server::start(launch, root.path(), &[]).expect("server starts");
        let pid = server.pid().expect("a process of its own");
        // tokio's workers take their name when they first park, just after
        // the server starts: wait for that, within a bound.
        let deadline = Instant::now() + Duration::from_secs(10);
        while loops(pid, prefix) != expected {
            assert!(Instant::now() < deadline, "{package}: not {expected} threads named {prefix}*: {:?}", names(pid));
            std::thread::sleep(Duration::from_millis(10));
        }
        // A LIST is heavy work, answered on the blocking pool; several, on
        // as many connections, so that every thread of a thread-per-core
        // server (the kernel spreads connections over them) starts a pool
        // thread, which would otherwise inherit its name.
        for _ in 0..8 {
            let listed = std::process::Command::new(binary)
                .args(["ls", &server.addr.to_string(), "/", "--timeout", "10"])
                .output()
                .expect("ls runs");
            assert!(listed.status.success(), "{package} ls: {}", String::from_utf8_lossy(&listed.stderr));
            assert!(String::from_utf8_lossy(&listed.stdout).contains("a.txt"));
        }
        // A thread takes its name from inside itself once it runs (std
        // names it at its start): one just spawned carries its parent's
        // for a moment. Only a name that stays is a pool thread named wrong.
        let deadline = Instant::now() + Duration::from_secs(5);
        while loops(pid, prefix) != expected {
            assert!(Instant::now() < deadline, "{package}: a pool thread has a loop's name: {:?}", names(pid));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
