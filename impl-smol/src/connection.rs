//! A TCP stream and its receive buffer, used by both server and client:
//! a [`FuturesLink`], so what smol does as async-std does (reading lines and
//! bodies, writing, closing) is `ferry_app::futures`'s, written once for
//! futures-io's traits. What is smol's own is here: the socket is an
//! `Async<TcpStream>`, a plain std socket made non-blocking and registered
//! with the reactor, so every wait is a future, and `sendfile` is driven
//! on the socket itself; a deadline is a `Timer` raced with `future::or`
//! ([`until`]).

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use ferry_app::dial::{self, Remote};
use ferry_app::futures::{self, FuturesLink, Wire};
use ferry_app::tls::ServerTls;

use crate::Smol;
use ferry_engine::client::ClientError;
use ferry_engine::frame::LINE_READ;
use ferry_share::FileBody;
use smol::{Async, Timer, future};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: Wire<Async<TcpStream>>,
    buffer: Vec<u8>,
}

impl FuturesLink for Connection {
    type Runtime = Smol;
    type Socket = Async<TcpStream>;

    fn parts(&mut self) -> (&mut Wire<Async<TcpStream>>, &mut Vec<u8>) {
        (&mut self.stream, &mut self.buffer)
    }

    fn into_stream(self) -> Wire<Async<TcpStream>> {
        self.stream
    }

    /// The socket is smol's `Async`, registered with async-io's reactor
    /// already, so it drives `sendfile` itself
    /// ([`ferry_app::futures::send_body`]).
    async fn send_file(socket: &Async<TcpStream>, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        futures::send_body::<Smol>(socket, body, idle, sent).await
    }
}

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub async fn connect(remote: &Remote) -> Result<Connection, ClientError> {
        let resolve = |addr: &str| smol::net::resolve(addr.to_owned());
        let attempt = |to, within| until(Instant::now() + within, Async::<TcpStream>::connect(to));
        let socket = dial::connect(&remote.config, resolve, attempt).await?;
        futures::connected::<Smol, _>(socket, remote).await.map(Connection::with)
    }

    /// A connection just accepted: with TLS, once its handshake is done
    /// within `within` (`None` if it failed, and was logged).
    pub async fn accepted(socket: Async<TcpStream>, tls: Option<ServerTls>, within: Duration) -> Option<Connection> {
        let peer = socket.get_ref().peer_addr().ok()?;
        futures::accepted::<Smol, _>(socket, tls, within, peer).await.map(Connection::with)
    }

    /// Wraps a connected stream; its `TCP_NODELAY` is already set (by the
    /// listener it was accepted from, or by `Dial::made`).
    pub fn new(socket: Async<TcpStream>) -> Connection {
        Connection::with(Wire::Plain(socket))
    }

    fn with(stream: Wire<Async<TcpStream>>) -> Connection {
        Connection { stream, buffer: Vec::with_capacity(LINE_READ) }
    }
}

/// The socket's descriptor, for a check on the peer from a blocking
/// thread while heavy work runs (`ferry_app::serve` duplicates it).
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// Runs `work` until `deadline`: `None` if the timer fired first.
pub async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(work.await) }, async {
        Timer::at(deadline).await;
        None
    })
    .await
}
