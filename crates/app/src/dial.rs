//! How a client reaches a server, the same on every runtime: the address
//! as the user wrote it is resolved, and each address it resolves to is
//! tried in turn, each within the client's `--timeout`, until one accepts;
//! if none does, the error is the last address's, in the user's words
//! ([`connect`], [`connect_blocking`]). A driver only says how its runtime
//! resolves, and connects within a timeout.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use ferry_engine::client::{ClientConfig, ClientError};

use crate::tls::ClientTls;

/// A server to reach and how: the protocol's settings (the address, the
/// timeout, the token), and TLS when the user asked for it.
#[derive(Debug)]
pub struct Remote {
    /// What the session needs.
    pub config: ClientConfig,
    /// TLS, and the trust in the server's identity; `None` for plain TCP.
    pub tls: Option<ClientTls>,
}

impl Remote {
    /// A plain FERRY/1 server.
    pub fn plain(config: ClientConfig) -> Remote {
        Remote { config, tls: None }
    }
}

/// Connects to the first address `config.addr` resolves to that accepts:
/// `resolve` is the runtime's name lookup, `attempt` its connect within a
/// timeout (the client's; `None` when it ran out). The stream comes with
/// `TCP_NODELAY` set ([`Dial::made`]).
pub async fn connect<S: AsFd, A: IntoIterator<Item = SocketAddr>>(
    config: &ClientConfig,
    resolve: impl AsyncFnOnce(&str) -> io::Result<A>,
    mut attempt: impl AsyncFnMut(SocketAddr, Duration) -> Option<io::Result<S>>,
) -> Result<S, ClientError> {
    let mut dial = Dial::new(&config.addr);
    for resolved in resolve(&config.addr).await.map_err(|e| dial.unresolved(e))? {
        if let Some(stream) = dial.attempt(attempt(resolved, config.timeout).await) {
            return dial.made(stream);
        }
    }
    Err(dial.failed())
}

/// [`connect`], for a blocking driver.
pub fn connect_blocking<S: AsFd, A: IntoIterator<Item = SocketAddr>>(
    config: &ClientConfig,
    resolve: impl FnOnce(&str) -> io::Result<A>,
    mut attempt: impl FnMut(SocketAddr, Duration) -> Option<io::Result<S>>,
) -> Result<S, ClientError> {
    let mut dial = Dial::new(&config.addr);
    for resolved in resolve(&config.addr).map_err(|e| dial.unresolved(e))? {
        if let Some(stream) = dial.attempt(attempt(resolved, config.timeout)) {
            return dial.made(stream);
        }
    }
    Err(dial.failed())
}

/// One attempt to reach `addr`, address after address.
#[derive(Debug)]
pub struct Dial<'a> {
    addr: &'a str,
    last: io::Error,
}

impl<'a> Dial<'a> {
    /// Starts reaching `addr` (`host:port`, as the user wrote it).
    pub fn new(addr: &'a str) -> Dial<'a> {
        Dial { addr, last: io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address") }
    }

    /// The name could not be resolved.
    pub fn unresolved(&self, error: io::Error) -> ClientError {
        ClientError::Connect { addr: self.addr.to_owned(), source: error }
    }

    /// What one address gave: the connection (then use it), an error, or
    /// `None` when the timeout ran out first (then try the next).
    pub fn attempt<S>(&mut self, connected: Option<io::Result<S>>) -> Option<S> {
        match connected {
            Some(Ok(stream)) => Some(stream),
            Some(Err(error)) => {
                self.last = error;
                None
            }
            None => {
                self.last = io::Error::new(io::ErrorKind::TimedOut, "connecting timed out");
                None
            }
        }
    }

    /// The stream that accepted, ready for requests: they are written
    /// whole, so Nagle's algorithm would only hold them back.
    pub fn made<S: AsFd>(self, stream: S) -> Result<S, ClientError> {
        match rustix::net::sockopt::set_tcp_nodelay(&stream, true) {
            Ok(()) => Ok(stream),
            Err(error) => Err(ClientError::Io { addr: self.addr.to_owned(), source: error.into() }),
        }
    }

    /// No address accepted: why, as the last one said.
    pub fn failed(self) -> ClientError {
        ClientError::Connect { addr: self.addr.to_owned(), source: self.last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_address_that_accepts_wins_and_otherwise_the_last_error_is_told() {
        let mut dial = Dial::new("example:7878");
        assert!(dial.attempt::<()>(Some(Err(io::Error::from(io::ErrorKind::ConnectionRefused)))).is_none());
        assert!(dial.attempt::<()>(None).is_none());
        let error = dial.failed().to_string();
        assert_eq!(error, "cannot connect to example:7878: connecting timed out");
        let mut dial = Dial::new("h:1");
        assert_eq!(dial.attempt(Some(Ok(7))), Some(7));
        assert_eq!(Dial::new("h:1").failed().to_string(), "cannot connect to h:1: the name resolved to no address");
    }
}
