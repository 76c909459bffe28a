//! The network and threads as a server's drivers set them up, the same on
//! every runtime: listening sockets with a deep accept queue, the line that
//! says a server is ready, thread names, accept errors, and whether a peer
//! has left.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::runtime::ServeConfig;
use crate::tls::ServerTls;

/// Prints the line on stdout that says the server is ready, with the real
/// port, and flushes it: scripts and tests wait for this line. A TLS
/// server's fingerprint follows on a line of its own, to be read out to the
/// people who fetch.
pub fn announce(addr: SocketAddr, fingerprint: Option<&str>) {
    let mut out = io::stdout().lock();
    let mut text = format!("listening on {addr}\n");
    if let Some(fingerprint) = fingerprint {
        text.push_str(&format!("fingerprint {fingerprint}\n"));
    }
    // If stdout is gone there is no one to tell; serving goes on.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The last steps before a server of `config` accepts on `listening`:
/// Ctrl-C and SIGTERM turn `shutdown` on ([`crate::signals::on_signals`]),
/// then the ready line ([`announce`]).
pub fn ready(config: &ServeConfig, listening: SocketAddr, shutdown: impl Fn() + Send + 'static) -> anyhow::Result<()> {
    crate::signals::on_signals(shutdown).context("cannot install signal handlers")?;
    announce(listening, config.tls.as_ref().map(ServerTls::fingerprint));
    Ok(())
}

/// How many connections the kernel may hold ready before the server
/// accepts them (Linux caps it at `net.core.somaxconn`). The runtimes'
/// `bind` asks for 128: a burst of a few thousand connects then overflows the
/// queue, and the kernel drops handshakes that it retries only after seconds
/// (`benches/scale` shows it; README has the figures).
pub const BACKLOG: i32 = 4096;

/// A listening socket on `addr` with a [`BACKLOG`]-deep accept queue, for
/// each runtime to adopt. `SO_REUSEADDR` is set, as the runtimes' own `bind`
/// does on Unix, so a restarted server need not wait out `TIME_WAIT`.
pub fn listen(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // Every accepted socket inherits it (Linux copies the listener's
    // options): answers are written whole, and Nagle would only delay them.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `count` listening sockets on one address, for a server with a thread
/// per core that gives each thread its own accept queue: `SO_REUSEPORT`
/// makes the kernel spread new connections over them. The first binds
/// `addr` (port 0 picks a free port); the others bind the address it got.
/// Only sockets of the same user can join such a group.
pub fn listen_group(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        let listener = std::net::TcpListener::from(socket);
        bound = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Names the calling thread `name` (what `top -H`, `strace -f` and
/// `/proc/PID/task/*/comm` show; at most 15 bytes), once: later calls on the
/// same thread do nothing, so a runtime hook that runs often may call it.
pub fn name_this_thread(name: &'static str) {
    thread_local! {
        static NAMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !NAMED.replace(true) {
        let name = std::ffi::CString::new(name).unwrap_or_default();
        // A thread without a new name works the same; nothing to report.
        let _ = rustix::thread::set_name(&name);
    }
}

/// Whether the peer on `socket` has left: it closed its sending side or
/// reset the connection. Asked between chunks of heavy work (a SUM of a
/// large file), so that work for a client that disconnected stops within a
/// chunk instead of holding its connection's slot. Does not wait.
///
/// A client that half-closes its sending side while a heavy answer is
/// computed is taken to have left, as nginx treats a client that closes
/// mid-request; FERRY/1 clients end a session with QUIT, not with a
/// half-close (SPEC.md §7).
pub fn peer_left(socket: impl std::os::fd::AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&socket, PollFlags::RDHUP)];
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(0) | Err(_) => false,
        Ok(_) => fds[0].revents().intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR),
    }
}

/// Logs accept errors at most once a second, with a count of the ones it
/// held back: running out of descriptors fails every accept at once.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    last: Option<Instant>,
    held_back: u64,
}
impl AcceptErrors {
    /// The connection an accept gave, or, when it failed, how long the
    /// accept loop should pause before trying again: none for a connection
    /// that was simply reset, 100 ms otherwise (running out of descriptors
    /// fails every accept at once). Logs a failure at most once a second,
    /// with a count of the ones it held back.
    pub fn check<T>(&mut self, accepted: io::Result<T>) -> Result<T, Duration> {
        let error = match accepted {
            Ok(accepted) => return Ok(accepted),
            Err(error) => error,
        };
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
        ) {
            tracing::debug!(%error, "accept");
            return Err(Duration::ZERO);
        }
        let now = Instant::now();
        if self.last.is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1)) {
            let held_back = std::mem::take(&mut self.held_back);
            tracing::warn!(%error, held_back, "accept failed; pausing 100 ms");
            self.last = Some(now);
        } else {
            self.held_back += 1;
        }
        Err(Duration::from_millis(100))
    }
}

/// Where a server connects to itself to wake its own blocked `accept`: its
/// address, with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
pub fn wake_addr(local: SocketAddr) -> SocketAddr {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn accepted_sockets_inherit_no_delay_from_the_listener() {
        let alone = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let _client = TcpStream::connect(alone.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = alone.accept().expect("accept");
        assert!(accepted.nodelay().expect("nodelay"), "an accepted socket would hold back small answers");
        // In a group the kernel picks the listener: take it from whichever.
        let group = listen_group("127.0.0.1:0".parse().expect("addr"), 2).expect("group");
        for listener in &group {
            listener.set_nonblocking(true).expect("nonblocking");
        }
        let _client = TcpStream::connect(group[0].local_addr().expect("addr")).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(5);
        let accepted = loop {
            if let Some((accepted, _)) = group.iter().find_map(|listener| listener.accept().ok()) {
                break accepted;
            }
            assert!(Instant::now() < deadline, "no listener of the group accepted");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(accepted.nodelay().expect("nodelay"), "an accepted socket would hold back small answers");
    }

    #[test]
    fn a_peer_that_closes_has_left_one_that_sends_has_not() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        assert!(!peer_left(&server));
        client.write_all(b"GET a\n").expect("write");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!peer_left(&server), "pipelined bytes are not a departure");
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !peer_left(&server) {
            assert!(std::time::Instant::now() < deadline, "the close was never seen");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
