//! The application: everything a ferry binary does that no runtime changes.
//!
//! **Layer:** above the engine (`ferry-engine`: the protocol without I/O)
//! and the share (`ferry-share`: the folder on disk); below the drivers
//! (`impl-*`), which depend on it. It depends on no driver.
//!
//! Every implementation has exactly one command line, one set of messages
//! and one way of saving files: each only supplies a [`Runtime`] (how to
//! serve, how to fetch, how to list), and its `main` is a single call to
//! [`main`].
//!
//! - [`args`]: the command line (clap derive); [`run`]: the program.
//! - [`runtime`]: the [`Runtime`] trait and the server's configuration.
//! - [`serve`]: what a server decides the same on every runtime: where a
//!   batch is answered (on the event loop or the blocking pool), the
//!   shutdown's grace period and what it logs.
//! - [`link`]: a driver's connection as the shared code sees it, and the
//!   client's steps done with it.
//! - [`futures`]: what smol and async-std share through futures-io's
//!   traits.
//! - [`hint`]: what to try next when a server refuses a path.
//! - [`dial`]: how a client reaches a server: resolve, then each address.
//! - [`net`]: listening sockets, the ready line, thread names, accept errors.
//! - [`copy`]: `get -r`, whole folders: the tree listed and checked, then
//!   fetched on several connections.
//! - [`save`]: where downloads go, `.part` files, atomic commits, `--verify`;
//!   [`tally`] and [`progress`]: a body's bytes counted and shown.
//! - [`spool`]: received bytes on their way to a file through a blocking
//!   pool, 1 MiB at a time (the tokio and smol clients).
//! - [`signals`]: Ctrl-C and SIGTERM, the same for every runtime;
//!   [`switch`]: the shutdown switch and the connections in flight, for the
//!   runtimes whose futures run on any executor.
//! - [`tls`]: FERRY/1 over TLS: the rustls configuration, a server's
//!   identity and fingerprint, a client's trust (pins, `known_servers`).
//! - [`say`]: messages on stderr that cannot fail the program.
//! - [`chat`]: the chat examples' shared rules.

pub mod args;
pub mod chat;
pub mod copy;
pub mod dial;
pub mod futures;
pub mod hint;
pub mod link;
pub mod net;
pub mod progress;
pub mod run;
pub mod runtime;
pub mod save;
pub mod say;
pub mod serve;
pub mod signals;
pub mod spool;
pub mod switch;
pub mod tally;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use run::main;
pub use runtime::{Runtime, ServeConfig};
pub use save::{Dest, Item, Plan, Report};
pub use tally::Tally;
