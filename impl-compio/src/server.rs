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
//! [`ferry_cli::serving::Serving`]'s to decide; `handle` does each step the
//! compio way.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use async_lock::{Semaphore, SemaphoreGuardArc};
use compio::net::{TcpListener, TcpStream};
use compio::time::{sleep, timeout_at};
use ferry_cli::conn::{AcceptErrors, LineError, peer_left};
use ferry_cli::serving::{Next, Pending, Serving};
use ferry_cli::{Runtime, ServeConfig};
use ferry_fs::{Batch, heavy_permits};

use crate::Compio;
use crate::connection::Connection;
use crate::runtime::blocking;
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
        Limits {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            heavy: Arc::new(Semaphore::new(heavy_permits())),
        }
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
            Some(permit) => (Some(permit), Serving::new(peer, Compio::NAME, config.idle_timeout)),
            None => (None, Serving::busy(peer, config.max_connections)),
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
    tracing::info!(open = all_closed.sender_count(), "stopped accepting; waiting for transfers in flight");
    // Nothing is sent on the channel: `recv` returns once every sender,
    // one per connection, is gone.
    if timeout_at(Instant::now() + config.grace, all_closed.recv()).await.is_err() {
        tracing::warn!(open = all_closed.sender_count(), "grace period over; exiting with transfers unfinished");
    }
    Ok(())
}

/// Answers `pending`: the GETs of files the kernel has in memory here, on
/// the thread, where they cannot block; the rest on compio's blocking pool,
/// where opening and reading files cannot stall the thread's ring. One
/// trip answers a whole batch, and the batch holds `permit` (heavy work)
/// until it is answered.
async fn answer(
    connection: &Connection,
    mut pending: Pending,
    permit: Option<SemaphoreGuardArc>,
    deadline: Instant,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
) -> io::Result<(Batch, Pending)> {
    // Hot files cannot block: answered here, without the trip to the pool.
    if let Some(batch) = config.answer_cached(&mut pending, permit.is_some()) {
        return Ok((batch, pending));
    }
    // Heavy work asks between chunks whether the client has left, on a
    // duplicate of the socket's descriptor that the blocking thread owns.
    let socket = permit.as_ref().map(|_| connection.socket()).transpose()?;
    let (shared, watching) = (Arc::clone(config), shutdown.clone());
    Ok(blocking(move || {
        let _permit = permit;
        shared.answer_blocking(pending, deadline, || watching.is_triggered() || socket.as_ref().is_some_and(peer_left))
    })
    .await)
}

/// Serves one connection: does what `serving` says until it is done.
async fn handle(
    stream: TcpStream,
    mut serving: Serving,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Semaphore>,
) -> io::Result<()> {
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    loop {
        match serving.next(shutdown.is_triggered()) {
            Next::Write { batch, within } => serving.on_written(connection.write_batch(batch, within).await)?,
            Next::Read { deadline } => {
                let read = connection.read_requests(deadline, || shutdown.wait(), serving.pending()).await;
                // A wait that shutdown ended is no timeout: the connection
                // just stops.
                let stopped = shutdown.is_triggered() && matches!(read, Err(LineError::TimedOut));
                serving.on_read((!stopped).then_some(read))?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                let pending = serving.take_pending();
                // A heavy batch first waits, here on the thread and not in
                // the blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let acquire =
                    async { if needs_permit { timeout_at(deadline, heavy.acquire_arc()).await.ok() } else { None } };
                let Some(permit) = shutdown.unless(acquire).await else {
                    return Ok(());
                };
                serving.on_answered(answer(&connection, pending, permit, deadline, config, shutdown).await?);
            }
            Next::Close => break,
            Next::Stop => return Ok(()),
        }
    }
    connection.close().await;
    Ok(())
}
