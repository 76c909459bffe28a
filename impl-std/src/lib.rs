//! FERRY/1 on blocking std I/O: one thread per connection.
//!
//! **Layer:** a driver, the top of the house: it depends on `ferry-engine`,
//! `ferry-share` and `ferry-app`, and nothing depends on it but its binary,
//! its tests and the benches.
//!
//! The reference implementation, and the plainest: every wait is a blocking
//! system call on the thread that needs the answer. Compare it with
//! `ferry-tokio` and `ferry-smol`, whose files and functions have the same
//! names in the same order.
//!
//! - [`connection`]: a socket with its receive buffer: connecting, reading
//!   lines and bodies under deadlines, writing answers and file bodies,
//!   closing gracefully.
//! - [`server`]: the accept loop, the connection limit, and [`server`]'s
//!   `handle`, which does the steps of [`ferry_engine::server::Serving`].
//! - [`client`]: the steps of a [`ferry_engine::client::Session`] (greeting, requests,
//!   answers, bodies into files, commits).
//! - [`shutdown`]: the shutdown switch, which Ctrl-C and SIGTERM turn on
//!   (`ferry_app::signals`).
//! - `runtime.rs`: plugs this runtime into the shared command line.
//! - `sync.rs` (std only): the registry of open connections and the heavy
//!   permits, from a `Mutex` and a `Condvar`.
//!
//! The protocol's decisions live in `ferry-engine` (`Session`, `Serving`),
//! the share's in `ferry-share` (answers, batches, the limits on heavy
//! work), and the policies every server and client keep in `ferry-app`
//! (where a batch is answered, the dialer, signals, the grace period); this
//! crate only moves bytes, waits, times out and shuts down. docs/runtimes.md's concept index
//! names the function that shows each concept here and on the other
//! runtimes, and its benchmarks section has the measurements.
//!
//! What std changes:
//! - **Timeouts.** `set_read_timeout` bounds one `read` call, but the idle
//!   timeout is a deadline for a whole request line, so the time left is
//!   recomputed before every read: a client dribbling a byte at a time
//!   still runs out of time.
//! - **Body path.** `sendfile(2)` from the file to the socket, so file
//!   pages never pass through user space. Not `std::io::copy`: on Linux it
//!   reads and writes 8 KiB at a time between a `File` and a `TcpStream`
//!   (`strace` shows `read`/`sendto`, no `sendfile`). A blocking `sendfile`
//!   ignores the socket's write timeout, so the socket is made non-blocking
//!   for the body and the thread waits in `poll(2)` with the time left.
//! - **Blocking work** needs no pool: the connection's own thread opens,
//!   reads and hashes. Heavy work (SUM, LIST) still takes one of the
//!   server's permits, a counting semaphore built from a mutex and a
//!   condition variable.
//! - **Shutdown.** A blocked `accept` or `read` cannot be cancelled; a
//!   watcher thread wakes `accept` with a connection to the listener and
//!   shuts the read side of every open connection.

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;
mod sync;

pub use runtime::Std;
