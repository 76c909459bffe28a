//! What an implementation supplies ([`Runtime`]: how its runtime serves,
//! fetches and lists) and what a server is told ([`ServeConfig`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::client::{ClientError, Outcomes};
use ferry_engine::{Request, Token};
use ferry_share::Root;

use crate::dial::Remote;
use crate::save::{Item, Plan, Report};
use crate::tls::ServerTls;

/// Everything a server needs, decided from the command line.
#[derive(Debug)]
pub struct ServeConfig {
    /// The shared folder, already opened.
    pub root: Root,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Connections served at once; further ones are answered `ERR BUSY`.
    pub max_connections: usize,
    /// How long a connection may take to send a whole request line, and how
    /// long a client may stop reading before it is dropped.
    pub idle_timeout: Duration,
    /// How long transfers in flight may continue after a shutdown signal.
    pub grace: Duration,
    /// TLS: every connection's handshake, before the greeting.
    pub tls: Option<ServerTls>,
    /// The access token every connection must give first.
    pub token: Option<Arc<Token>>,
}

/// One implementation of ferry: how its runtime serves and fetches.
pub trait Runtime {
    /// The implementation's name: the token in its greeting (`std`, ...).
    const NAME: &'static str;

    /// The binary's name (`ferry-std`, ...), for `--help` and messages.
    const BINARY: &'static str;

    /// How many descriptors a connection may hold at once: its socket and
    /// the file it sends, on most runtimes. The server lowers
    /// `--max-connections` to what the open-file limit allows at this rate.
    const DESCRIPTORS_PER_CONNECTION: u64 = 2;

    /// Descriptors the runtime keeps besides its connections' (a pool of
    /// pipes, say), set aside before connections are fitted under the
    /// open-file limit.
    fn reserved_descriptors() -> u64 {
        0
    }

    /// Serves `config.root` until Ctrl-C or SIGTERM. Calls [`crate::net::announce`] once
    /// it listens.
    fn serve(config: ServeConfig) -> anyhow::Result<()>;

    /// Fetches every item of `plan` over one connection, pipelined.
    /// Refusals of single items go to `report`; an error that ends the
    /// connection is returned.
    fn get(remote: &Remote, plan: &Plan, report: &mut Report) -> Result<(), ClientError>;

    /// Lists a directory (`request` is a LIST) or a tree (a TREE), telling
    /// `out` each entry as soon as it arrives ([`Outcomes::listed`],
    /// [`Outcomes::found`]), so that no listing is held whole.
    fn ls(remote: &Remote, request: &Request, out: &mut impl Outcomes<Item>) -> Result<(), ClientError>;
}
