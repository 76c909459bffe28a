//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. It is a `Semaphore`: each task holds a permit, and a
//! client that finds none gets `ERR BUSY` instead of the greeting. What a
//! connection does, step by step, is [`ferry_engine::server::Serving`]'s to
//! decide; `handle` does each step the tokio way.

use std::io;
use std::sync::Arc;

use ferry_app::net::AcceptErrors;
use ferry_app::serve::Route;
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::server::{Next, Serving};
use ferry_share::{Batch, heavy_permits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::spawn_blocking;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::task::TaskTracker;

use crate::Tokio;
use crate::connection::Connection;
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub async fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let heavy = Arc::new(Semaphore::new(heavy_permits()));
    let tasks = TaskTracker::new();

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = match Arc::clone(&limit).try_acquire_owned() {
            Ok(permit) => {
                (Some(permit), Serving::new(peer, Tokio::NAME, config.idle_timeout, std::time::Instant::now()))
            }
            Err(_) => (None, Serving::busy(peer, config.max_connections, std::time::Instant::now())),
        };
        let (config, shutdown, heavy) = (Arc::clone(&config), shutdown.clone(), Arc::clone(&heavy));
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(error) = handle(stream, serving, &config, &shutdown, &heavy).await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    tasks.close();
    ferry_app::serve::draining(tasks.len());
    if timeout(config.grace, tasks.wait()).await.is_err() {
        ferry_app::serve::grace_over(tasks.len());
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
        match serving.next(std::time::Instant::now(), shutdown.is_triggered()) {
            Next::Write { batch, within } => {
                serving.on_written(connection.write_batch(batch, within).await, std::time::Instant::now())?
            }
            Next::Read { deadline } => {
                // Reading is cancel-safe, so shutdown loses nothing but the wait.
                let read = tokio::select! {
                    () = shutdown.wait() => None,
                    read = connection.read_requests(Instant::from_std(deadline), serving.pending()) => Some(read),
                };
                serving.on_read(read)?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                // A heavy batch first waits, here on the worker and not in
                // the blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let acquire = timeout_at(Instant::from_std(deadline), Arc::clone(heavy).acquire_owned());
                let permit = match needs_permit {
                    false => None,
                    true => tokio::select! {
                        () = shutdown.wait() => return Ok(()),
                        permit = acquire => permit.ok().and_then(Result::ok),
                    },
                };
                // Hot files are answered here, where they cannot block; the
                // rest under `spawn_blocking`, one trip for the whole batch.
                let pending = serving.take_pending();
                let route = config.route(pending, permit, deadline, connection.socket(), shutdown.watcher())?;
                let answered = match route {
                    Route::Ready(batch, rest) => (batch, rest),
                    Route::Blocking(work) => spawn_blocking(move || work.run()).await.map_err(io::Error::other)?,
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
