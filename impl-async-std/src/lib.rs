//! FERRY/1 on async-std: one task per connection on its global executor.
//!
//! **Layer:** a driver, the top of the house: it depends on `ferry-engine`,
//! `ferry-share` and `ferry-app`, and nothing depends on it but its binary,
//! its tests and the benches.
//!
//! **async-std is discontinued upstream** ("use smol instead"), and RustSec
//! lists it as unmaintained: RUSTSEC-2025-0052. This crate is kept for
//! comparison and for the migration it teaches: `diff` it against
//! `ferry-smol`, file for file, and docs/runtimes.md's "From async-std to smol"
//! says what changes and what it costs. No other crate in the workspace
//! depends on it.
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
//! What async-std changes:
//! - **A global runtime.** Tasks run on one executor shared by the whole
//!   process, started when first needed; `task::block_on` drives the accept
//!   loop. `task::spawn` returns a handle whose drop *detaches* the task
//!   (on smol, dropping a `Task` cancels it).
//! - **The std API, async.** `async_std::net`, `async_std::fs` and
//!   `async_std::io` mirror std's; deadlines are `future::timeout`, and
//!   racing shutdown is `FutureExt::race` (the crate's `unstable` feature).
//! - **No semaphore.** The connection limit and the limit on heavy work are
//!   bounded channels whose messages are the permits.
//! - **No readiness API.** To drive `sendfile` by readiness, a body goes
//!   out on a duplicate of the socket registered with async-io, the reactor
//!   under async-std: one more descriptor while a body is in flight
//!   ([`ferry_app::Runtime::DESCRIPTORS_PER_CONNECTION`]). A window of a
//!   body the kernel does not have in memory
//!   ([`ferry_share::FileBody::resident`]) is read under `spawn_blocking`
//!   instead and written from the executor (`ferry_app::futures: send_copied`),
//!   so `sendfile` never waits for a disk on an executor thread.
//! - **Blocking work** goes to `task::spawn_blocking`, but for GETs of files
//!   the kernel has in memory, answered on the executor with calls that
//!   cannot block ([`ferry_share::Root::batch_cached`]); the client writes
//!   through `async_std::fs::File` (a pool trip per write, so behind a
//!   `BufWriter`), which flushes in its `Drop` with `block_on`.

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;

pub use runtime::AsyncStd;
