//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. async-std has no semaphore of its own, so the limit
//! (and the server-wide limit on heavy work) is `async-lock`'s, the crate
//! async-std's own locks come from (and smol re-exports as `smol::lock`).
//! Each task also holds a clone of a channel sender, so that shutdown can
//! wait for the last one to end by waiting for the channel to close. What a connection does, step by step,
//! is [`ferry_engine::server::Serving`]'s to decide; `handle` does each step
//! the async-std way.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use async_lock::Semaphore;
use async_std::net::{TcpListener, TcpStream};
use async_std::prelude::FutureExt;
use async_std::task;
use ferry_app::net::AcceptErrors;
use ferry_app::serve::Route;
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::server::{Next, Serving};
use ferry_share::{Batch, heavy_permits};

use crate::AsyncStd;
use crate::connection::{Connection, until};
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub async fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let heavy = Arc::new(Semaphore::new(heavy_permits()));
    let (open, all_closed) = async_std::channel::bounded::<()>(1);

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = async { Some(listener.accept().await) }
            .race(async {
                shutdown.wait().await;
                None
            })
            .await;
        let Some(accepted) = accepted else { break };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    task::sleep(pause).await;
                }
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = match limit.try_acquire_arc() {
            Some(permit) => (Some(permit), Serving::new(peer, AsyncStd::NAME, config.idle_timeout, Instant::now())),
            None => (None, Serving::busy(peer, config.max_connections, Instant::now())),
        };
        let (config, shutdown, open, heavy) = (Arc::clone(&config), shutdown.clone(), open.clone(), Arc::clone(&heavy));
        // The handle is dropped: the task runs on, detached, until its
        // connection ends; at shutdown, `run` waits for it through `open`.
        task::spawn(async move {
            let _permit = permit;
            let _open = open;
            if let Err(error) = handle(stream, serving, &config, &shutdown, &heavy).await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    drop(open);
    ferry_app::serve::draining(all_closed.sender_count());
    // Nothing is sent on the channel: `recv` returns once every sender,
    // one per connection, is gone.
    if until(Instant::now() + config.grace, all_closed.recv()).await.is_none() {
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
                // A read that is dropped has taken no bytes, so shutdown
                // loses nothing but the wait.
                let read = async { Some(connection.read_requests(deadline, serving.pending()).await) }
                    .race(async {
                        shutdown.wait().await;
                        None
                    })
                    .await;
                serving.on_read(read)?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                // A heavy batch first waits, here on the executor and not in
                // the blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let acquire =
                    async { Some(if needs_permit { until(deadline, heavy.acquire_arc()).await } else { None }) };
                let waited = acquire.race(async {
                    shutdown.wait().await;
                    None
                });
                let Some(permit) = waited.await else { return Ok(()) };
                // Hot files are answered here, where they cannot block; the
                // rest under `task::spawn_blocking`, one trip for the batch.
                let pending = serving.take_pending();
                let route = config.route(pending, permit, deadline, connection.socket(), shutdown.watcher())?;
                let answered = match route {
                    Route::Ready(batch, rest) => (batch, rest),
                    Route::Blocking(work) => task::spawn_blocking(move || work.run()).await,
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
