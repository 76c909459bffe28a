//! FERRY/1 on blocking std I/O: one thread per connection.
//!
//! This is the reference implementation, and the plainest: every wait is a
//! blocking system call on the thread that needs the answer. Compare it
//! with `ferry-tokio` and `ferry-smol`, whose files and functions have the
//! same names in the same order.
//!
//! - [`connection`]: a socket with its receive buffer; reads lines under a
//!   deadline and writes replies.
//! - [`server`]: the accept loop, the connection limit, and the loop that
//!   answers one connection's requests.
//! - [`client`]: connect, pipeline GETs, save bodies; and LIST.
//! - [`shutdown`]: Ctrl-C and SIGTERM become a flag the server watches.
//!
//! What std changes:
//! - **Timeouts.** `set_read_timeout` bounds one `read` call, but the idle
//!   timeout is a deadline for a whole request line; so the time left is
//!   recomputed before every read, and a client dribbling a byte at a time
//!   still runs out of time.
//! - **Body path.** `sendfile(2)` from the file to the socket, so file
//!   pages never pass through user space. Not `std::io::copy`: on Linux it
//!   reads and writes 8 KiB at a time between a `File` and a `TcpStream`
//!   (`strace` shows `read`/`sendto`, no `sendfile`). And a blocking
//!   `sendfile` ignores the socket's write timeout, so the socket is made
//!   non-blocking for the body and the thread waits in `poll(2)` with the
//!   time left. Bodies up to [`ferry_fs::INLINE_BODY`] are sent with their
//!   header in one write. Measured (`cargo bench -p ferry-benches`, group
//!   `server`, one std client): 64 MiB at 5.4 GiB/s; a 4 KiB request in
//!   49 µs, the fastest of the three, because the file is opened on the
//!   connection's own thread with no hand-off.
//! - **Pipelining.** Requests that arrive together are answered together
//!   ([`ferry_fs::Batch`]): their small answers leave in one write. 4 KiB
//!   files at 64 connections: 40,000 requests/s at depth 1, 122,000 at
//!   depth 32 (`ferry-load`).
//! - **Shutdown.** A blocked `accept` or `read` cannot be cancelled; a
//!   watcher thread wakes `accept` with a connection to the listener and
//!   shuts the read side of every open connection.

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;

pub use runtime::Std;
