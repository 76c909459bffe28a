//! FERRY/1 on smol: one task per connection on an executor run by one
//! thread a core.
//!
//! The same program as `ferry-std` and `ferry-tokio`, file for file and
//! function for function; `diff` them to see what the runtime changes.
//!
//! - [`connection`]: a socket with its receive buffer; reads lines under a
//!   deadline and writes replies.
//! - [`server`]: the accept loop, the connection limit, and the loop that
//!   answers one connection's requests.
//! - [`client`]: connect, pipeline GETs, save bodies; and LIST.
//! - [`shutdown`]: Ctrl-C and SIGTERM (via `async-signal`) close a channel
//!   that every task can await.
//!
//! What smol changes:
//! - **Building blocks, not a framework.** There is no runtime object: an
//!   `Executor`, threads that run it, a reactor behind `Async<T>`, and a
//!   thread pool behind `unblock`. `cli.rs` assembles them.
//! - **Sockets.** `Async<TcpStream>` is a std socket registered with the
//!   reactor; `write_with` runs any non-blocking call (here `sendfile`)
//!   and waits for readiness when it would block.
//! - **Timeouts.** A deadline is an `async-io` `Timer` raced against the
//!   work with `future::or` ([`connection::until`]).
//! - **Blocking work.** Resolving a path and opening a file run under
//!   `smol::unblock`, once per batch of pipelined requests
//!   ([`ferry_fs::Batch`]) rather than once per request: 4 KiB files at 64
//!   connections went from 23,000 requests/s at depth 1 to 119,000 at depth
//!   32. The client writes through `Unblock<File>`.
//! - **Body path.** `sendfile(2)` driven by readiness through
//!   `Async::write_with`, so file pages go to the socket without a copy
//!   through this process. Bodies up to [`ferry_fs::INLINE_BODY`] are sent
//!   with their header in one write. Measured (`cargo bench -p
//!   ferry-benches`, group `server`, one std client): 64 MiB at 5.3 GiB/s;
//!   a 4 KiB request in 116 µs, most of it the `unblock` round trip to the
//!   blocking pool and back.
//! - **Shutdown.** A channel closed by the signal task; tasks race its
//!   `recv` against `accept` and against each wait for a request, and the
//!   server waits for connections by waiting for a second channel, whose
//!   senders they hold, to close.

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;

pub use runtime::Smol;
