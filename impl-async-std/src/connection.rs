//! A TCP stream and its receive buffer, used by both server and client:
//! a [`FuturesLink`], so what async-std does as smol does (reading lines
//! and bodies, writing, closing) is `ferry_app::futures`'s, written once for
//! futures-io's traits. What is async-std's own is here: the socket is an
//! `async_std::net::TcpStream`, which exposes no readiness, so `sendfile`
//! is driven on a duplicate of it; a deadline is `future::timeout` around
//! the work ([`until`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use async_io::Async;
use async_std::net::{TcpStream, ToSocketAddrs};
use ferry_app::dial::{self, Remote};
use ferry_app::futures::{self, FuturesLink, Wire};
use ferry_app::tls::ServerTls;

use crate::AsyncStd;
use ferry_engine::client::ClientError;
use ferry_engine::frame::LINE_READ;
use ferry_share::FileBody;

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: Wire<TcpStream>,
    buffer: Vec<u8>,
}

impl FuturesLink for Connection {
    type Runtime = AsyncStd;
    type Socket = TcpStream;

    fn parts(&mut self) -> (&mut Wire<TcpStream>, &mut Vec<u8>) {
        (&mut self.stream, &mut self.buffer)
    }

    fn into_stream(self) -> Wire<TcpStream> {
        self.stream
    }

    /// An async-std socket does not expose its readiness (there is no
    /// `write_with`), so the body is sent on a duplicate of its descriptor
    /// registered with async-io, the reactor async-std itself runs on
    /// ([`ferry_app::futures::send_body`]): one more descriptor while a
    /// body is in flight. (On smol, `Async` is the socket itself.)
    async fn send_file(socket: &TcpStream, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        let socket = Async::new(std::net::TcpStream::from(socket.as_fd().try_clone_to_owned()?))?;
        futures::send_body::<AsyncStd>(&socket, body, idle, sent).await
    }
}

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub async fn connect(remote: &Remote) -> Result<Connection, ClientError> {
        let resolve = async |addr: &str| addr.to_socket_addrs().await;
        let attempt = |to, within| until(Instant::now() + within, TcpStream::connect(to));
        let socket = dial::connect(&remote.config, resolve, attempt).await?;
        futures::connected::<AsyncStd, _>(socket, remote).await.map(Connection::with)
    }

    /// A connection just accepted: with TLS, once its handshake is done
    /// within `within` (`None` if it failed, and was logged).
    pub async fn accepted(socket: TcpStream, tls: Option<ServerTls>, within: Duration) -> Option<Connection> {
        let peer = socket.peer_addr().ok()?;
        futures::accepted::<AsyncStd, _>(socket, tls, within, peer).await.map(Connection::with)
    }

    /// Wraps a connected stream; its `TCP_NODELAY` is already set (by the
    /// listener it was accepted from, or by `Dial::made`).
    pub fn new(socket: TcpStream) -> Connection {
        Connection::with(Wire::Plain(socket))
    }

    fn with(stream: Wire<TcpStream>) -> Connection {
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

/// Runs `work` until `deadline`: `None` if it did not finish by then.
pub async fn until<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    async_std::future::timeout(deadline.saturating_duration_since(Instant::now()), work).await.ok()
}
