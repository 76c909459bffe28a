//! FERRY/1 on tokio: one task per connection on the multi-threaded runtime.
//!
//! **Layer:** a driver, the top of the house: it depends on `ferry-engine`,
//! `ferry-share` and `ferry-app`, and nothing depends on it but its binary,
//! its tests and the benches.
//!
//! The same program as `ferry-std`, file for file and function for
//! function; `diff` the two to see what the runtime changes.
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
//!
//! The protocol's decisions live in `ferry-engine` (`Session`, `Serving`),
//! the share's in `ferry-share` (answers, batches, the limits on heavy
//! work), and the policies every server and client keep in `ferry-app`
//! (where a batch is answered, the dialer, signals, the grace period); this
//! crate only moves bytes, waits, times out and shuts down. docs/runtimes.md's concept index
//! names the function that shows each concept here and on the other
//! runtimes, and its benchmarks section has the measurements.
//!
//! What tokio changes:
//! - **Concurrency.** A task per connection instead of a thread; the limit
//!   is a `Semaphore` of permits, and a `TaskTracker` lets shutdown wait for
//!   every task still sending.
//! - **Timeouts.** `tokio::time::timeout_at` wraps the whole read of a
//!   request line: the idle deadline is one future, not a socket option
//!   recomputed before each read.
//! - **Blocking work.** Resolving a path and opening a file can block on a
//!   cold disk. A GET of a file the kernel already has in memory is answered
//!   on the worker, with calls that fail rather than wait
//!   ([`ferry_share::Root::batch_cached`]); everything else is answered in
//!   batches ([`ferry_share::Batch`]) under `spawn_blocking`, one trip per
//!   batch, so that a cold disk or a network mount cannot stall a worker. A
//!   heavy batch waits for its permit on the worker, not in the pool, so no
//!   flood of SUMs can fill the pool. The client's writes go to the pool 1
//!   MiB at a time, each an owned buffer (`client.rs: Sink`), not through
//!   `tokio::fs::File`, which would copy every byte once more.
//! - **Body path.** `sendfile(2)` driven by readiness (`writable()` and
//!   `try_io` on the non-blocking socket): file pages go to the socket
//!   without a copy through this process, and a slow client blocks no
//!   worker. But `sendfile` reads the file on the worker, so each window
//!   of a body is first probed ([`ferry_share::FileBody::resident`]); one
//!   the kernel does not have in memory is read under `spawn_blocking`
//!   and written from the worker (`connection.rs: send_copied`), so a slow
//!   disk holds a pool thread, never a worker.
//! - **Shutdown.** A `CancellationToken` raced with `select!` against
//!   `accept`, each wait for a request and each wait for a permit. The
//!   runtime is shut down without waiting for blocking tasks past the grace
//!   period.
//! - **Thread names.** Workers are `tokio-loop`, the blocking pool
//!   `tokio-pool`, so `strace -f` and `top -H` tell a worker that waits (a
//!   bug) from a pool thread that waits (its job).

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;

pub use runtime::Tokio;
