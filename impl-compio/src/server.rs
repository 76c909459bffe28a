//! The server: one accept loop a thread, each connection a task on the
//! thread that accepted it.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. It is a semaphore shared by the threads
//! (`async-lock`'s, which works on any runtime): each task holds a permit,
//! and a client that finds none gets `ERR BUSY` instead of the greeting.
//! Each task also holds a clone of its thread's channel sender, so that
//! shutdown can wait for the last one to finish by waiting for the channel
//! to close, as on smol. What a connection does, step by step, is
//! [`ferry_engine::server::Serving`]'s to decide; `handle` does each step the
//! compio way.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use async_lock::Semaphore;
use compio::net::{TcpListener, TcpStream};
use compio::time::{sleep, timeout_at};
use ferry_app::net::AcceptErrors;
use ferry_app::serve::Route;
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::frame::LineError;
use ferry_engine::server::{Next, Serving};
use ferry_share::{Batch, heavy_permits};

use crate::Compio;
use crate::connection::Connection;
use crate::pool::blocking;
use crate::shutdown::Shutdown;

/// What the threads share: the connection limit and the permits for heavy
/// work.
#[derive(Debug, Clone)]
pub struct Limits {
    connections: Arc<Semaphore>,
    heavy: Arc<Semaphore>,
}

impl Limits {
    /// The limits `config` sets, for all threads together.
    pub fn new(config: &ServeConfig) -> Limits {
        let semaphore = |permits| Arc::new(Semaphore::new(permits));
        Limits { connections: semaphore(config.max_connections), heavy: semaphore(heavy_permits()) }
    }
}

/// Serves on this thread's `listener` until `shutdown` is triggered, then
/// lets this thread's connections finish the answer they are sending for
/// up to `config.grace`.
pub async fn run(
    listener: TcpListener,
    config: Arc<ServeConfig>,
    limits: Limits,
    shutdown: Shutdown,
) -> io::Result<()> {
    let shutdown = shutdown.local();
    let (open, all_closed) = async_channel::bounded::<()>(1);

    let mut accept_errors = AcceptErrors::default();
    loop {
        let Some(accepted) = shutdown.unless(listener.accept()).await else { break };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    sleep(pause).await;
                }
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = match limits.connections.try_acquire_arc() {
            Some(permit) => (Some(permit), Serving::new(peer, Compio::NAME, config.idle_timeout, Instant::now())),
            None => (None, Serving::busy(peer, config.max_connections, Instant::now())),
        };
        let (config, shutdown, open, heavy) =
            (Arc::clone(&config), shutdown.clone(), open.clone(), Arc::clone(&limits.heavy));
        // Detached: the task ends with its connection; at shutdown, `run`
        // waits for it through `open` for the grace period.
        compio::runtime::spawn(async move {
            let _permit = permit;
            let _open = open;
            if let Err(error) = handle(stream, serving, &config, &shutdown, &heavy).await {
                tracing::debug!(%error, "connection ended");
            }
        })
        .detach();
    }
    drop(listener);
    drop(open);
    ferry_app::serve::draining(all_closed.sender_count());
    // Nothing is sent on the channel: `recv` returns once every sender,
    // one per connection, is gone.
    if timeout_at(Instant::now() + config.grace, all_closed.recv()).await.is_err() {
        ferry_app::serve::grace_over(all_closed.sender_count());
    }
    Ok(())
}

/// Serves one connection: does what `serving` says until it is done.
async fn handle(
    stream: TcpStream,
    mut serving: Serving<Batch>,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Semaphore>,
) -> io::Result<()> {
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    loop {
        match serving.next(Instant::now(), shutdown.is_triggered()) {
            Next::Write { batch, within } => {
                serving.on_written(connection.write_batch(batch, within).await, Instant::now())?
            }
            Next::Read { deadline } => {
                let read = connection.read_requests(deadline, || shutdown.wait(), serving.pending()).await;
                // A wait ended by shutdown is no timeout: the connection just stops.
                let stopped = shutdown.is_triggered() && matches!(read, Err(LineError::TimedOut));
                serving.on_read((!stopped).then_some(read))?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                // A heavy batch first waits, here on the thread and not in
                // the blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let acquire =
                    async { if needs_permit { timeout_at(deadline, heavy.acquire_arc()).await.ok() } else { None } };
                let Some(permit) = shutdown.unless(acquire).await else {
                    return Ok(());
                };
                // Hot files are answered here, where they cannot block; the
                // rest on compio's blocking pool, one trip for the whole batch.
                let pending = serving.take_pending();
                let route = config.route(pending, permit, deadline, connection.socket(), shutdown.watcher())?;
                let answered = match route {
                    Route::Ready(batch, rest) => (batch, rest),
                    Route::Blocking(work) => blocking(move || work.run()).await,
                };
                serving.on_answered(answered);
            }
            Next::Close => break,
            Next::Stop => return Ok(()),
        }
    }
    connection.close().await;
    Ok(())
}
