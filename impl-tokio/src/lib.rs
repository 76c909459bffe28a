//! FERRY/1 on tokio: one task per connection on a multi-threaded runtime.
//!
//! The same program as `ferry-std`, file for file and function for
//! function; `diff` the two to see what the runtime changes.
//!
//! - [`connection`]: a socket with its receive buffer; reads lines under a
//!   deadline and writes replies.
//! - [`server`]: the accept loop, the connection limit, and the loop that
//!   answers one connection's requests.
//! - [`client`]: connect, pipeline GETs, save bodies; and LIST.
//! - [`shutdown`]: Ctrl-C and SIGTERM become a cancellation token.
//!
//! What tokio changes:
//! - **Concurrency.** A task per connection instead of a thread; the limit
//!   is a `Semaphore` of permits, and a `TaskTracker` lets shutdown wait for
//!   every task still sending.
//! - **Timeouts.** `tokio::time::timeout_at` wraps the whole read of a
//!   request line, so the idle deadline is one future, not a socket option
//!   recomputed before each read.
//! - **Blocking work.** Resolving a path and opening a file block, so the
//!   server runs `ferry_fs::Root::answer` under `spawn_blocking`, once per
//!   batch of pipelined requests ([`ferry_fs::Batch`]) rather than once per
//!   request. The trip has a price: answering on the worker instead gave
//!   1.5× the requests/s for 4 KiB files (64 connections, depth 1) and a p50
//!   of 57 µs against 90 µs on one connection (`ferry-load`, the two builds
//!   alternated, 3 rounds). ferry pays it, because a cold disk or a network
//!   mount would otherwise stall a worker and every connection queued on
//!   it; pipelining spreads it (depth 32: 110,000 requests/s against
//!   24,000 at depth 1). The client writes through `tokio::fs` and opens,
//!   syncs and renames under `spawn_blocking`.
//! - **Body path.** `sendfile(2)` driven by readiness (`writable()` and
//!   `try_io` on the non-blocking socket), so file pages go to the socket
//!   without a copy through this process and without blocking a worker
//!   while the client is slow. Bodies up to [`ferry_fs::INLINE_BODY`] are
//!   sent with their header in one write. Measured (`cargo bench -p
//!   ferry-benches`, group `server`, one std client): 64 MiB at 4.8 GiB/s;
//!   a 4 KiB request in 81 µs, of which the `spawn_blocking` round trip
//!   (two cross-thread wake-ups) is most of the difference from std.
//! - **Shutdown.** A `CancellationToken` raced with `select!` against
//!   `accept` and against each wait for a request: nothing needs waking
//!   by hand.

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;

pub use runtime::Tokio;
