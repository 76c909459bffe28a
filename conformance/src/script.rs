//! Scripted servers for client cases: a listener on loopback that accepts
//! one connection and plays a script, which may break FERRY/1 on purpose.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;

use crate::Check;
use crate::wire::{WAIT, Wire};

/// A scripted server, accepting one connection.
#[derive(Debug)]
pub struct Script {
    /// Where it listens.
    pub addr: SocketAddr,
    verdict: mpsc::Receiver<Check>,
}

impl Script {
    /// Listens on `127.0.0.1:0` and plays `play` on the first connection.
    pub fn start(play: impl FnOnce(&mut Wire) -> Check + Send + 'static) -> Result<Script, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("scripted server: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (sender, verdict) = mpsc::channel();
        // The thread ends once the client connects and the script has run;
        // if the client never connects it ends with the test process.
        thread::spawn(move || {
            let check = listener
                .accept()
                .map_err(|e| format!("scripted server: accept: {e}"))
                .and_then(|(stream, _)| Wire::accepted(stream))
                .and_then(|mut wire| play(&mut wire));
            let _ = sender.send(check);
        });
        Ok(Script { addr, verdict })
    }

    /// Listens on `127.0.0.1:0` and plays `play` on each of the first
    /// `connections` connections, one after another; the verdict is the
    /// first failure, if any.
    pub fn start_each(
        connections: usize,
        play: impl Fn(&mut Wire) -> Check + Send + 'static,
    ) -> Result<Script, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("scripted server: bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (sender, verdict) = mpsc::channel();
        thread::spawn(move || {
            let check = (0..connections).try_for_each(|n| {
                listener
                    .accept()
                    .map_err(|e| format!("scripted server: accept: {e}"))
                    .and_then(|(stream, _)| Wire::accepted(stream))
                    .and_then(|mut wire| play(&mut wire))
                    .map_err(|e| format!("connection {}: {e}", n + 1))
            });
            let _ = sender.send(check);
        });
        Ok(Script { addr, verdict })
    }

    /// The script's own verdict (did the client send what it should?),
    /// waiting at most [`WAIT`] for it to end.
    pub fn verdict(&self) -> Check {
        self.verdict.recv_timeout(WAIT).map_err(|_| "the scripted server did not finish".to_owned())?
    }
}

/// Reads one request line and checks it starts with `prefix`.
pub fn expect_request(wire: &mut Wire, prefix: &str) -> Result<String, String> {
    let line = String::from_utf8(wire.line()?).map_err(|_| "request line is not UTF-8".to_owned())?;
    if line.starts_with(prefix) { Ok(line) } else { Err(format!("expected a request {prefix:?}..., got {line:?}")) }
}
