//! FERRY/1 on compio: completion-based I/O (io_uring on Linux) and a thread
//! per core.
//!
//! **Layer:** a driver, the top of the house: it depends on `ferry-engine`,
//! `ferry-share` and `ferry-app`, and nothing depends on it but its binary,
//! its tests and the benches.
//!
//! The same program as `ferry-std`, `ferry-tokio` and `ferry-smol`, file
//! for file and function for function; `diff` them to see what the runtime
//! changes. Here it changes the most.
//!
//! - [`connection`]: a socket with its receive buffer: connecting, reading
//!   lines and bodies under deadlines, writing answers and file bodies,
//!   closing gracefully.
//! - [`server`]: the accept loop of one thread, the connection limit, and
//!   [`server`]'s `handle`, which does the steps of
//!   [`ferry_engine::server::Serving`].
//! - [`client`]: the steps of a [`ferry_engine::client::Session`] (greeting, requests,
//!   answers, bodies into files, commits).
//! - [`shutdown`]: the shutdown switch, which Ctrl-C and SIGTERM turn on
//!   (`ferry_app::signals`).
//! - `pool.rs` (compio only): the blocking pool, named, and each thread's
//!   pool of pipes that bodies are spliced through.
//! - `runtime.rs`: plugs this runtime into the shared command line, starts
//!   a thread a core, and picks the I/O driver.
//!
//! The protocol's decisions live in `ferry-engine` (`Session`, `Serving`),
//! the share's in `ferry-share` (answers, batches, the limits on heavy
//! work), and the policies every server and client keep in `ferry-app`
//! (where a batch is answered, the dialer, signals, the grace period); this
//! crate only moves bytes, waits, times out and shuts down. docs/runtimes.md's concept index
//! names the function that shows each concept here and on the other
//! runtimes, and its benchmarks section has the measurements.
//!
//! What compio changes:
//! - **Completion, not readiness.** The other runtimes wait until a socket
//!   is ready and then make the call themselves; compio hands the whole
//!   operation (read these bytes into this buffer, send this file range) to
//!   the kernel through an io_uring submission queue and is told when it is
//!   done. So an operation owns its buffer while it runs: `read(buf)` takes
//!   a `Vec<u8>` by value and gives it back with the result
//!   (`BufResult(result, buf)`), because the kernel may write into it after
//!   the call that started it has returned.
//! - **Cancellation.** Dropping an operation's future (a deadline passed,
//!   shutdown) asks the kernel to cancel it; its buffer and descriptors
//!   stay with the runtime until the kernel has let go, then are freed.
//!   Nothing leaks, but the kernel may complete the operation anyway, and
//!   whatever a cancelled read received is gone with its buffer. So every
//!   cut ends its connection, bytes already received are kept outside the
//!   read (`connection.rs: read_line`), a body's pace check waits beside
//!   its read rather than cutting it (`read_body`), and a splice into a
//!   socket is ended by shutting the socket down, then waited for
//!   (`splice_until`).
//! - **A thread per core, nothing shared on the hot path.** Each thread has
//!   its own runtime (its own ring), its own listening socket on the one
//!   port (`SO_REUSEPORT`: the kernel spreads connections over them), and
//!   keeps every connection it accepts: compio's tasks are not `Send` and
//!   never move. The threads share only the connection limit, the permits
//!   for heavy work and the shutdown switch.
//! - **File bodies.** `splice(2)` from the file into a pipe and from the
//!   pipe into the socket, both as ring operations with the file offset
//!   given: file pages go to the socket without passing through this
//!   process, and without the readiness loop `sendfile` needs elsewhere.
//!   The pipes come from a small pool on each thread; when every one is
//!   held (by clients that stopped reading, say), a body is copied through
//!   an owned buffer instead of waiting (`connection.rs: send_copied`).
//!   On the polling driver the file → pipe step is a plain `splice(2)` on
//!   the thread, so there a window the kernel does not have in memory
//!   ([`ferry_share::FileBody::resident`]) is copied instead, its reads on
//!   the blocking pool. On io_uring the kernel's own workers wait for
//!   the disk. Server threads are `compio-loop-N`, pool threads
//!   `blocking-N` (`pool.rs` says why the pool is not compio's own).
//! - **Blocking work.** GETs of files the kernel has in memory are answered
//!   on the thread with calls that cannot block
//!   ([`ferry_share::Root::batch_cached`]); the rest of a batch go to a
//!   bounded blocking pool (`pool.rs`), one trip per batch. The
//!   client's saves are ring writes at the file's offset.
//! - **Where io_uring is not allowed** (a container's seccomp profile,
//!   `kernel.io_uring_disabled`), compio falls back to its polling driver,
//!   and says so in the log; `FERRY_COMPIO_DRIVER=poll` forces that driver,
//!   `io_uring` forbids the fallback (`runtime.rs`).

pub mod client;
pub mod connection;
pub mod server;
pub mod shutdown;

pub mod pool;
mod runtime;

pub use runtime::{Compio, Driver};
