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

use ferry_cli::conn::{LineError, busy_refusal, greeting, timeout_refusal};
use ferry_cli::{Runtime, ServeConfig};
use ferry_fs::Reply;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tokio_util::task::TaskTracker;

use crate::Tokio;
use crate::connection::Connection;
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub async fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let tasks = TaskTracker::new();

    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                survive_accept_error(&error).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tasks.spawn(refuse_busy(stream, config.max_connections));
            continue;
        };
        let (config, shutdown) = (Arc::clone(&config), shutdown.clone());
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(error) = handle(stream, &config, &shutdown).await {
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

/// Logs an accept error and carries on. Running out of file descriptors
/// fails every accept at once, so those errors pause briefly rather than
/// spin; a connection reset before it was accepted is routine.
async fn survive_accept_error(error: &io::Error) {
    match error.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted => {
            tracing::debug!(%error, "accept");
        }
        _ => {
            tracing::warn!(%error, "accept failed; pausing 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Answers a client past the limit with `ERR BUSY` and closes. Runs as a
/// task of its own, so a stuck client never holds up the accept loop.
async fn refuse_busy(stream: TcpStream, limit: usize) {
    tracing::debug!(limit, "at the connection limit; answering BUSY");
    let mut connection = Connection::new(stream);
    let _ = connection.write_batch(Reply::refuse(busy_refusal(limit)).into(), Duration::from_secs(1)).await;
}

/// Serves one connection: greeting, then request after request until the
/// client quits or leaves, a closing error, or shutdown.
async fn handle(stream: TcpStream, config: &Arc<ServeConfig>, shutdown: &Shutdown) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    tracing::debug!(%peer, "connected");
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    connection
        .write_batch(Reply::Bytes { bytes: greeting(Tokio::NAME), closes: false }.into(), config.idle_timeout)
        .await?;
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
            tracing::debug!(%peer, ?pending);
        }
        // Opening and reading files blocks; keep it off the workers. One
        // trip answers a whole batch of pipelined requests.
        let shared = Arc::clone(config);
        let (batch, rest) = tokio::task::spawn_blocking(move || (shared.root.answer(&mut pending), pending))
            .await
            .map_err(io::Error::other)?;
        pending = rest;
        let closes = batch.closes;
        connection.write_batch(batch, config.idle_timeout).await?;
        if closes {
            connection.close().await;
            return Ok(());
        }
        if shutdown.is_triggered() {
            return Ok(());
        }
    }
}
