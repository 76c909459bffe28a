//! The server: an accept loop that gives each connection its own task on
//! the executor.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. It is a semaphore from `smol::lock`: each task holds
//! a permit, and a client that finds none gets `ERR BUSY` instead of the
//! greeting. Each task also holds a clone of a channel sender, so that
//! shutdown can wait for the last one to finish by waiting for the channel
//! to close — smol's way to join a set of detached tasks. What a
//! connection does, step by step, is [`ferry_cli::serving::Serving`]'s to
//! decide; `handle` does each step the smol way.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use ferry_cli::conn::{AcceptErrors, peer_left};
use ferry_cli::serving::{Next, Pending, Serving};
use ferry_cli::{Runtime, ServeConfig};
use ferry_fs::{Batch, heavy_permits};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::{Async, Executor, Timer, future};

use crate::Smol;
use crate::connection::{Connection, until};
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub async fn run(
    executor: &Arc<Executor<'static>>,
    listener: Async<TcpListener>,
    config: ServeConfig,
    shutdown: Shutdown,
) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let heavy = Arc::new(Semaphore::new(heavy_permits()));
    let (open, all_closed) = smol::channel::bounded::<()>(1);

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    Timer::after(pause).await;
                }
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = match limit.try_acquire_arc() {
            Some(permit) => (Some(permit), Serving::new(peer, Smol::NAME, config.idle_timeout)),
            None => (None, Serving::busy(peer, config.max_connections)),
        };
        let (config, shutdown, open, heavy) = (Arc::clone(&config), shutdown.clone(), open.clone(), Arc::clone(&heavy));
        // Detached: the task ends with its connection; at shutdown, `run`
        // waits for it through `open` for the grace period.
        executor
            .spawn(async move {
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
    if until(Instant::now() + config.grace, all_closed.recv()).await.is_none() {
        tracing::warn!(open = all_closed.sender_count(), "grace period over; exiting with transfers unfinished");
    }
    Ok(())
}

/// Answers `pending`: the GETs of files the kernel has in memory here, on
/// the executor, where they cannot block; the rest with `smol::unblock`,
/// where opening and reading files cannot stall the executor. One trip answers a
/// whole batch, and the batch holds `permit` (heavy work) until it is
/// answered.
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
    let answered = smol::unblock(move || {
        let _permit = permit;
        shared.answer_blocking(pending, deadline, || watching.is_triggered() || socket.as_ref().is_some_and(peer_left))
    });
    Ok(answered.await)
}

/// Serves one connection: does what `serving` says until it is done.
async fn handle(
    stream: Async<TcpStream>,
    mut serving: Serving,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Semaphore>,
) -> io::Result<()> {
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.get_ref().set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    loop {
        match serving.next(shutdown.is_triggered()) {
            Next::Write { batch, within } => serving.on_written(connection.write_batch(batch, within).await)?,
            Next::Read { deadline } => {
                // A read that is dropped has taken no bytes, so shutdown
                // loses nothing but the wait.
                let reading = async { Some(connection.read_requests(deadline, serving.pending()).await) };
                let read = future::or(reading, async {
                    shutdown.wait().await;
                    None
                })
                .await;
                serving.on_read(read)?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                let pending = serving.take_pending();
                // A heavy batch first waits, here on the executor and not in
                // the blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let acquire =
                    async { Some(if needs_permit { until(deadline, heavy.acquire_arc()).await } else { None }) };
                let Some(permit) = future::or(acquire, async {
                    shutdown.wait().await;
                    None
                })
                .await
                else {
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
