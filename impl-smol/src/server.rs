//! The server: an accept loop that gives each connection its own task on
//! the executor.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. It is a semaphore from `smol::lock`: each task holds
//! a permit, and a client that finds none gets `ERR BUSY` instead of the
//! greeting. Each task also holds a clone of a channel sender, so that
//! shutdown can wait for the last one to finish by waiting for the channel
//! to close — smol's way to join a set of detached tasks.

use std::collections::VecDeque;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_cli::conn::{AcceptErrors, LineError, busy_refusal, greeting, peer_left, timeout_refusal};
use ferry_cli::{Runtime, ServeConfig, access};
use ferry_fs::{Reply, Work, heavy_permits, starts_heavy};
use smol::lock::Semaphore;
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
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    Timer::after(pause).await;
                }
                continue;
            }
        };
        let Some(permit) = limit.try_acquire_arc() else {
            executor.spawn(refuse_busy(stream, config.max_connections)).detach();
            continue;
        };
        let (config, shutdown, open, heavy) = (Arc::clone(&config), shutdown.clone(), open.clone(), Arc::clone(&heavy));
        executor
            .spawn(async move {
                let _permit = permit;
                let _open = open;
                if let Err(error) = handle(stream, &config, &shutdown, &heavy).await {
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

/// Answers a client past the limit with `ERR BUSY` and closes. Runs as a
/// task of its own, so a stuck client never holds up the accept loop.
async fn refuse_busy(stream: Async<TcpStream>, limit: usize) {
    access::refused(stream.get_ref().peer_addr().ok(), "BUSY");
    let mut connection = Connection::new(stream);
    let _ = connection.write_batch(Reply::refuse(busy_refusal(limit)).into(), Duration::from_secs(1)).await;
}

/// Serves one connection: greeting, then request after request until the
/// client quits or leaves, a closing error, or shutdown.
async fn handle(
    stream: Async<TcpStream>,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Semaphore>,
) -> io::Result<()> {
    let peer = stream.get_ref().peer_addr()?;
    tracing::debug!(%peer, "connected");
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.get_ref().set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    connection.write_all(&greeting(Smol::NAME), config.idle_timeout).await?;
    let mut pending = VecDeque::new();
    loop {
        if pending.is_empty() {
            let deadline = Instant::now() + config.idle_timeout;
            // Between requests, shutdown ends the connection at once; a read
            // that is dropped has taken no bytes, so nothing is lost.
            let read = future::or(async { Some(connection.read_requests(deadline, &mut pending).await) }, async {
                shutdown.wait().await;
                None
            })
            .await;
            match read {
                None => return Ok(()),
                Some(Ok(())) => {}
                Some(Err(LineError::TimedOut)) => {
                    access::refused(Some(peer), "TIMEOUT");
                    connection
                        .write_batch(Reply::refuse(timeout_refusal(config.idle_timeout)).into(), config.idle_timeout)
                        .await?;
                    connection.close().await;
                    return Ok(());
                }
                Some(Err(LineError::Closed)) => return Ok(()),
                Some(Err(LineError::Io(error))) => return Err(error),
                Some(Err(LineError::Invalid(never))) => match never {},
            }
        }
        let started = Instant::now();
        let deadline = started + config.idle_timeout;
        // A heavy request (SUM, LIST) waits here, on the executor and not in
        // the blocking pool, for one of the server's permits, at most until
        // its deadline; without one it is answered TIMEOUT.
        let permit = if starts_heavy(&pending) {
            let acquire = until(deadline, heavy.acquire_arc());
            match future::or(async { Some(acquire.await) }, async {
                shutdown.wait().await;
                None
            })
            .await
            {
                None => return Ok(()),
                Some(permit) => permit,
            }
        } else {
            None
        };
        // Heavy work asks between chunks whether the client has left, on a
        // duplicate of the socket's descriptor that the blocking thread owns.
        let socket = permit.as_ref().map(|_| connection.socket()).transpose()?;
        let (shared, watching) = (Arc::clone(config), shutdown.clone());
        // Opening and reading files blocks; keep it off the executor. One
        // trip answers a whole batch of pipelined requests.
        let (mut batch, rest) = smol::unblock(move || {
            let _permit = permit;
            let stop = || watching.is_triggered() || socket.as_ref().is_some_and(peer_left);
            let work = Work { deadline, limit: shared.idle_timeout, stop: &stop };
            (shared.root.answer(&mut pending, &work), pending)
        })
        .await;
        pending = rest;
        let (closes, log) = (batch.closes, std::mem::take(&mut batch.log));
        let written = connection.write_batch(batch, config.idle_timeout).await;
        access::answered(peer, &log, started, &written);
        written?;
        if closes {
            connection.close().await;
            return Ok(());
        }
        if shutdown.is_triggered() {
            return Ok(());
        }
    }
}
