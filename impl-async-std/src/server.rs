//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. async-std has no semaphore, so the limit (and the
//! server-wide limit on heavy work) is a bounded channel: a permit is a
//! message in it, given back by taking one out. Each task also holds a clone
//! of a channel sender, so that shutdown can wait for the last one to end by
//! waiting for the channel to close. What a connection does, step by step,
//! is [`ferry_cli::serving::Serving`]'s to decide; `handle` does each step
//! the async-std way.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use async_std::channel::{Receiver, Sender};
use async_std::net::{TcpListener, TcpStream};
use async_std::prelude::FutureExt;
use async_std::task;
use ferry_cli::conn::{AcceptErrors, peer_left};
use ferry_cli::serving::{Next, Pending, Serving};
use ferry_cli::{Runtime, ServeConfig};
use ferry_fs::{Batch, heavy_permits};

use crate::AsyncStd;
use crate::connection::{Connection, until};
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub async fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Permits::new(config.max_connections);
    let heavy = Permits::new(heavy_permits());
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
        let (permit, serving) = match limit.try_acquire() {
            Some(permit) => (Some(permit), Serving::new(peer, AsyncStd::NAME, config.idle_timeout)),
            None => (None, Serving::busy(peer, config.max_connections)),
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
    tracing::info!(open = all_closed.sender_count(), "stopped accepting; waiting for transfers in flight");
    // Nothing is sent on the channel: `recv` returns once every sender,
    // one per connection, is gone.
    if until(Instant::now() + config.grace, all_closed.recv()).await.is_none() {
        tracing::warn!(open = all_closed.sender_count(), "grace period over; exiting with transfers unfinished");
    }
    Ok(())
}

/// Answers `pending`: the GETs of files the kernel has in memory here, on
/// the executor, where they cannot block; the rest with `task::spawn_blocking`,
/// where opening and reading files cannot stall the executor. One trip answers a
/// whole batch, and the batch holds `permit` (heavy work) until it is
/// answered.
async fn answer(
    connection: &Connection,
    mut pending: Pending,
    permit: Option<Permit>,
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
    let answered = task::spawn_blocking(move || {
        let _permit = permit;
        shared.answer_blocking(pending, deadline, || watching.is_triggered() || socket.as_ref().is_some_and(peer_left))
    });
    Ok(answered.await)
}

/// Serves one connection: does what `serving` says until it is done.
async fn handle(
    stream: TcpStream,
    mut serving: Serving,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Permits>,
) -> io::Result<()> {
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    loop {
        match serving.next(shutdown.is_triggered()) {
            Next::Write { batch, within } => serving.on_written(connection.write_batch(batch, within).await)?,
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
                let pending = serving.take_pending();
                // A heavy batch first waits, here on the executor and not in
                // the blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let acquire = async { Some(if needs_permit { until(deadline, heavy.acquire()).await } else { None }) };
                let waited = acquire.race(async {
                    shutdown.wait().await;
                    None
                });
                let Some(permit) = waited.await else { return Ok(()) };
                serving.on_answered(answer(&connection, pending, permit, deadline, config, shutdown).await?);
            }
            Next::Close => break,
            Next::Stop => return Ok(()),
        }
    }
    connection.close().await;
    Ok(())
}

/// A counting semaphore, which async-std does not have: a bounded channel
/// whose messages are the permits taken (smol has `smol::lock::Semaphore`).
#[derive(Debug)]
struct Permits {
    taken: Sender<()>,
    returned: Receiver<()>,
}

/// A permit, given back when dropped.
#[derive(Debug)]
struct Permit(Arc<Permits>);

impl Permits {
    fn new(count: usize) -> Arc<Permits> {
        let (taken, returned) = async_std::channel::bounded(count);
        Arc::new(Permits { taken, returned })
    }

    /// A permit if one is free now.
    fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.taken.try_send(()).ok().map(|()| Permit(Arc::clone(self)))
    }

    /// A permit, once one is free.
    async fn acquire(self: &Arc<Self>) -> Permit {
        // The channel is never closed while `self` holds both ends.
        let _ = self.taken.send(()).await;
        Permit(Arc::clone(self))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.0.returned.try_recv();
    }
}
