//! FERRY/1 on smol: one task per connection on an executor run by one
//! thread a core.
//!
//! **Layer:** a driver, the top of the house: it depends on `ferry-engine`,
//! `ferry-share` and `ferry-app`, and nothing depends on it but its binary,
//! its tests and the benches.
//!
//! The same program as `ferry-std` and `ferry-tokio`, file for file and
//! function for function; `diff` them to see what the runtime changes.
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
//! What smol changes:
//! - **Building blocks, not a framework.** There is no runtime object: an
//!   `Executor`, threads that run it, a reactor behind `Async<T>`, and a
//!   thread pool behind `unblock`. `runtime.rs` assembles them.
//! - **Sockets.** `Async<TcpStream>` is a std socket registered with the
//!   reactor; `write_with` runs any non-blocking call (here `sendfile`)
//!   and waits for readiness when it would block. `sendfile` also reads
//!   the file, on the executor thread, so a window of a body the kernel
//!   does not have in memory ([`ferry_share::FileBody::resident`]) is read
//!   under `unblock` instead and written from the executor
//!   (`ferry_app::futures: send_copied`). Executor threads are `smol-loop-N`,
//!   smol's pool threads `blocking-N`.
//! - **Timeouts.** A deadline is an `async-io` `Timer` raced against the
//!   work with `future::or` ([`connection::until`]). A read raced so must be
//!   cancel-safe: the line reader takes its zero padding off in a guard's
//!   `Drop`, however the read ends.
//! - **Blocking work.** GETs of files the kernel has in memory are answered
//!   on the executor with calls that cannot block
//!   ([`ferry_share::Root::batch_cached`]); the rest of a batch of pipelined
//!   requests under `smol::unblock`, one trip per batch; a heavy batch waits
//!   for its permit on the executor first. The client hands what it
//!   receives to `unblock` in owned buffers (`client.rs: Sink`)
//!   rather than through `Unblock<File>`, whose pipe copies every byte
//!   twice more.
//! - **Shutdown.** A channel closed by the signal task; tasks race its
//!   `recv` against `accept` and against each wait, and the server waits
//!   for its connections by waiting for a second channel, whose senders
//!   they hold, to close. A dropped `Task` is cancelled, so connection
//!   tasks are `detach`ed.

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

mod runtime;

pub use runtime::Smol;
