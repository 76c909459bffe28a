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

use ferry_app::dial;
use ferry_app::futures::{self, FuturesLink};

use crate::Smol;
use ferry_engine::client::{ClientConfig, ClientError};
use ferry_engine::frame::LINE_READ;
use ferry_share::FileBody;
use smol::{Async, Timer, future};

/// A stream and the bytes received on it but not yet used.
#[derive(Debug)]
pub struct Connection {
    stream: Async<TcpStream>,
    buffer: Vec<u8>,
}

impl FuturesLink for Connection {
    type Runtime = Smol;
    type Stream = Async<TcpStream>;

    fn parts(&mut self) -> (&mut Async<TcpStream>, &mut Vec<u8>) {
        (&mut self.stream, &mut self.buffer)
    }

    fn into_stream(self) -> Async<TcpStream> {
        self.stream
    }

    /// The socket is smol's `Async`, registered with async-io's reactor
    /// already, so it drives `sendfile` itself
    /// ([`ferry_app::futures::send_body`]).
    async fn send_file(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()> {
        futures::send_body::<Smol>(&self.stream, body, idle, sent).await
    }
}

impl Connection {
    /// Connects to the first address `config.addr` resolves to that
    /// accepts (client side), each within the client's timeout.
    pub async fn connect(config: &ClientConfig) -> Result<Connection, ClientError> {
        let resolve = |addr: &str| smol::net::resolve(addr.to_owned());
        let attempt = |to, within| until(Instant::now() + within, Async::<TcpStream>::connect(to));
        dial::connect(config, resolve, attempt).await.map(Connection::new)
    }

    /// Wraps a connected stream; its `TCP_NODELAY` is already set (by the
    /// listener it was accepted from, or by `Dial::made`).
    pub fn new(stream: Async<TcpStream>) -> Connection {
        Connection { stream, buffer: Vec::with_capacity(LINE_READ) }
    }
}

/// The socket's descriptor, for a check on the peer from a blocking
/// thread while heavy work runs (`ferry_app::serve` duplicates it).
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.get_ref().as_fd()
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
