//! Server processes under test: started on port 0 over the fixture, ready
//! once they print `listening on <addr>`, stopped by signal or killed when
//! dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::implementation::Implementation;
use crate::wire::WAIT;

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `implementation` serving `root` on `127.0.0.1:0` with `extra`
    /// arguments, and waits for its `listening on` line.
    pub fn start(implementation: &Implementation, root: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(&implementation.binary)
            .arg("serve")
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", implementation.binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (lines, line) = mpsc::channel();
        // The reader ends by itself when the server closes stdout.
        thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = lines.send(first);
        });
        let mut server = Server { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
        let first = line
            .recv_timeout(WAIT)
            .map_err(|_| format!("{} printed no `listening on` line within {WAIT:?}", implementation.name))?;
        let addr = first
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| format!("first line of stdout is {first:?}, not `listening on <ip:port>`"))?;
        server.addr = addr;
        Ok(server)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> Result<(), String> {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, Signal::TERM).map_err(|e| format!("kill: {e}"))
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("the server did not exit within {limit:?}"));
            }
            // Polling a child's exit status: a bounded wait for a condition.
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
