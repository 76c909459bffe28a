//! Server processes under test: started over the fixture, ready once they
//! print `listening on <addr>` (or, for a command template, once they
//! accept connections), stopped by signal or killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::implementation::Launch;
use crate::wire::WAIT;

/// Where a server's log (its stderr) goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Nowhere (`/dev/null`): every write succeeds.
    Discarded,
    /// Into a pipe whose reader has already gone, as under
    /// `ferry serve DIR 2>&1 | grep ...` once `grep` has exited: every write
    /// fails with EPIPE.
    DeadPipe,
}

/// A server under test.
#[derive(Debug)]
pub struct Server {
    /// The process, unless the server was already running.
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// A TLS server's fingerprint, from its second line (`fingerprint
    /// SHA256:...`).
    pub fingerprint: Option<String>,
}

/// The config folder (`XDG_CONFIG_HOME`) of every server the suite starts:
/// where a TLS server keeps its identity, one for every run on this
/// machine, never the user's own.
pub fn config_home() -> PathBuf {
    std::env::temp_dir().join(format!("ferry-conformance-{}", rustix::process::getuid().as_raw()))
}

/// A file holding [`crate::tls::TOKEN`], for `--token-file`.
pub fn token_file() -> Result<PathBuf, String> {
    let file = config_home().join("token");
    if !file.exists() {
        std::fs::create_dir_all(config_home()).map_err(|e| format!("{}: {e}", config_home().display()))?;
        // Written whole under another name, then renamed: cases in
        // parallel may read it at any moment.
        let partial = file.with_extension(format!("{}", std::process::id()));
        std::fs::write(&partial, format!("{}\n", crate::tls::TOKEN)).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &file).map_err(|e| e.to_string())?;
    }
    Ok(file)
}

impl Server {
    /// Starts a server sharing `root` on loopback with `options` (ferry's
    /// form, e.g. `--idle-timeout 1`), and waits until it is ready.
    pub fn start(launch: &Launch, root: &Path, options: &[&str]) -> Result<Server, String> {
        Server::start_logging(launch, root, options, Log::Discarded)
    }

    /// [`Server::start`], with its log going to `log`.
    pub fn start_logging(launch: &Launch, root: &Path, options: &[&str], log: Log) -> Result<Server, String> {
        let spawn = |mut command: Command, what: &str| {
            command.env("XDG_CONFIG_HOME", config_home());
            spawn(command, what, log)
        };
        let tls = options.contains(&"--tls");
        match launch {
            Launch::Ferry(binary) => {
                let mut command = Command::new(binary);
                command.arg("serve").arg(root).args(["--listen", "127.0.0.1:0"]).args(options);
                let child = spawn(command, &binary.display().to_string())?;
                Server::ready(child, None, tls)
            }
            Launch::Template(template) => {
                let port = free_port()?;
                let line = template
                    .replace("{root}", &shell_quote(&root.display().to_string()))
                    .replace("{port}", &port.to_string())
                    .replace("{options}", &options.join(" "));
                let mut command = Command::new("sh");
                // `exec`, so that signals reach the server, not the shell.
                command.arg("-c").arg(format!("exec {line}"));
                let child = spawn(command, &line)?;
                Server::ready(child, Some(SocketAddr::from(([127, 0, 0, 1], port))), tls)
            }
            Launch::Running(addr) if options.is_empty() => Ok(Server { child: None, addr: *addr, fingerprint: None }),
            Launch::Running(addr) => Err(format!("the server at {addr} is already running; cannot pass {options:?}")),
        }
    }

    /// The server's process id, when this started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the `listening on` line (and, for a TLS server, the
    /// `fingerprint` line after it), or for `port` to accept.
    fn ready(mut child: Child, port: Option<SocketAddr>, tls: bool) -> Result<Server, String> {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (lines, line) = mpsc::channel();
        let (fingerprints, fingerprint) = mpsc::channel();
        // The reader ends by itself when the server closes stdout.
        thread::spawn(move || {
            let mut lines_read = BufReader::new(stdout).lines();
            for text in lines_read.by_ref() {
                let Ok(text) = text else { break };
                if let Some(addr) = text.trim_end().strip_prefix("listening on ") {
                    let _ = lines.send(addr.parse::<SocketAddr>().map_err(|_| text.clone()));
                    break;
                }
            }
            if tls && let Some(Ok(text)) = lines_read.next() {
                let _ = fingerprints.send(text.trim_end().strip_prefix("fingerprint ").map(str::to_owned));
            }
        });
        let mut server = Server { child: Some(child), addr: SocketAddr::from(([127, 0, 0, 1], 0)), fingerprint: None };
        let deadline = Instant::now() + WAIT;
        loop {
            match line.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(addr)) if tls => {
                    server.addr = addr;
                    server.fingerprint = fingerprint.recv_timeout(WAIT).ok().flatten();
                    return match server.fingerprint {
                        Some(_) => Ok(server),
                        None => Err("no `fingerprint SHA256:...` line after `listening on`".to_owned()),
                    };
                }
                Ok(Ok(addr)) => {
                    server.addr = addr;
                    return Ok(server);
                }
                Ok(Err(text)) => return Err(format!("{text:?} is not `listening on <ip:port>`")),
                Err(_) => {}
            }
            if let Some(addr) = port
                && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            {
                server.addr = addr;
                return Ok(server);
            }
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("the server exited with {status} before it was ready"));
            }
            if Instant::now() >= deadline {
                return Err(format!("the server was not ready within {WAIT:?} (no `listening on` line)"));
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> Result<(), String> {
        self.signal(Signal::TERM)
    }

    /// Sends `signal` (SIGINT is what Ctrl-C sends).
    pub fn signal(&self, signal: Signal) -> Result<(), String> {
        let child = self.child.as_ref().ok_or("the server was not started here; cannot signal it")?;
        kill_process(Pid::from_child(child), signal).map_err(|e| format!("kill: {e}"))
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let child = self.child.as_mut().ok_or("the server was not started here")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
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
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(mut command: Command, what: &str, log: Log) -> Result<Child, String> {
    let stderr = match log {
        Log::Discarded => Stdio::null(),
        Log::DeadPipe => Stdio::piped(),
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    // The reader goes before the server has written anything.
    drop(child.stderr.take());
    Ok(child)
}

/// A port that was free a moment ago, for a command that needs one.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Quotes a word for `sh`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
