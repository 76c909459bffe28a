//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap (a few hundred bytes plus the connection's buffer), so
//! the limit exists to bound file descriptors and memory, not threads. It
//! is a `Semaphore`: each task holds a permit, and a client that finds none
//! gets `ERR BUSY` instead of the greeting.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use ferry_cli::conn::{AcceptErrors, LineError, busy_refusal, greeting, peer_left, timeout_refusal};
use ferry_cli::{Runtime, ServeConfig, access};
use ferry_fs::{Reply, Work, heavy_permits, starts_heavy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tasks.spawn(refuse_busy(stream, config.max_connections));
            continue;
        };
        let (config, shutdown, heavy) = (Arc::clone(&config), shutdown.clone(), Arc::clone(&heavy));
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(error) = handle(stream, &config, &shutdown, &heavy).await {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    drop(listener);
    tasks.close();
    tracing::info!(open = tasks.len(), "stopped accepting; waiting for transfers in flight");
    if timeout(config.grace, tasks.wait()).await.is_err() {
        tracing::warn!(open = tasks.len(), "grace period over; exiting with transfers unfinished");
    }
    Ok(())
}

/// Answers a client past the limit with `ERR BUSY` and closes. Runs as a
/// task of its own, so a stuck client never holds up the accept loop.
async fn refuse_busy(stream: TcpStream, limit: usize) {
    access::refused(stream.peer_addr().ok(), "BUSY");
    let mut connection = Connection::new(stream);
    let _ = connection.write_batch(Reply::refuse(busy_refusal(limit)).into(), Duration::from_secs(1)).await;
}

/// Serves one connection: greeting, then request after request until the
/// client quits or leaves, a closing error, or shutdown.
async fn handle(
    stream: TcpStream,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Semaphore>,
) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    tracing::debug!(%peer, "connected");
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    connection.write_all(&greeting(Tokio::NAME), config.idle_timeout).await?;
    let mut pending = VecDeque::new();
    loop {
        if pending.is_empty() {
            let deadline = Instant::now() + config.idle_timeout;
            // Between requests, shutdown ends the connection at once; reading
            // is cancel-safe, so nothing is lost but the idle wait.
            let read = tokio::select! {
                () = shutdown.wait() => return Ok(()),
                read = connection.read_requests(deadline, &mut pending) => read,
            };
            match read {
                Ok(()) => {}
                Err(LineError::TimedOut) => {
                    access::refused(Some(peer), "TIMEOUT");
                    connection
                        .write_batch(Reply::refuse(timeout_refusal(config.idle_timeout)).into(), config.idle_timeout)
                        .await?;
                    connection.close().await;
                    return Ok(());
                }
                Err(LineError::Closed) => return Ok(()),
                Err(LineError::Io(error)) => return Err(error),
                Err(LineError::Invalid(never)) => match never {},
            }
        }
        let started = std::time::Instant::now();
        let deadline = started + config.idle_timeout;
        // A heavy request (SUM, LIST) waits here, on the worker and not in
        // the blocking pool, for one of the server's permits, at most until
        // its deadline; without one it is answered TIMEOUT.
        let permit = if starts_heavy(&pending) {
            let acquire = timeout_at(Instant::from_std(deadline), Arc::clone(heavy).acquire_owned());
            tokio::select! {
                () = shutdown.wait() => return Ok(()),
                permit = acquire => permit.ok().and_then(Result::ok),
            }
        } else {
            None
        };
        // Heavy work asks between chunks whether the client has left, on a
        // duplicate of the socket's descriptor that the blocking thread owns.
        let socket = permit.as_ref().map(|_| connection.socket()).transpose()?;
        let (shared, watching) = (Arc::clone(config), shutdown.clone());
        // Opening and reading files blocks; keep it off the workers. One
        // trip answers a whole batch of pipelined requests.
        let (mut batch, rest) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let stop = || watching.is_triggered() || socket.as_ref().is_some_and(peer_left);
            let work = Work { deadline, limit: shared.idle_timeout, stop: &stop };
            (shared.root.answer(&mut pending, &work), pending)
        })
        .await
        .map_err(io::Error::other)?;
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
