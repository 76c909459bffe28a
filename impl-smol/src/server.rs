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

use ferry_cli::conn::{LineError, busy_refusal, greeting, timeout_refusal};
use ferry_cli::{Runtime, ServeConfig};
use ferry_fs::Reply;
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
    let (open, all_closed) = smol::channel::bounded::<()>(1);

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
                survive_accept_error(&error).await;
                continue;
            }
        };
        let Some(permit) = limit.try_acquire_arc() else {
            executor.spawn(refuse_busy(stream, config.max_connections)).detach();
            continue;
        };
        let (config, shutdown, open) = (Arc::clone(&config), shutdown.clone(), open.clone());
        executor
            .spawn(async move {
                let _permit = permit;
                let _open = open;
                if let Err(error) = handle(stream, &config, &shutdown).await {
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
            Timer::after(Duration::from_millis(100)).await;
        }
    }
}

/// Answers a client past the limit with `ERR BUSY` and closes. Runs as a
/// task of its own, so a stuck client never holds up the accept loop.
async fn refuse_busy(stream: Async<TcpStream>, limit: usize) {
    tracing::debug!(limit, "at the connection limit; answering BUSY");
    let mut connection = Connection::new(stream);
    let _ = connection.write_batch(Reply::refuse(busy_refusal(limit)).into(), Duration::from_secs(1)).await;
}

/// Serves one connection: greeting, then request after request until the
/// client quits or leaves, a closing error, or shutdown.
async fn handle(stream: Async<TcpStream>, config: &Arc<ServeConfig>, shutdown: &Shutdown) -> io::Result<()> {
    let peer = stream.get_ref().peer_addr()?;
    tracing::debug!(%peer, "connected");
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.get_ref().set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    connection
        .write_batch(Reply::Bytes { bytes: greeting(Smol::NAME), closes: false }.into(), config.idle_timeout)
        .await?;
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
            tracing::debug!(%peer, ?pending);
        }
        // Opening and reading files blocks; keep it off the executor. One
        // trip answers a whole batch of pipelined requests.
        let shared = Arc::clone(config);
        let (batch, rest) = smol::unblock(move || (shared.root.answer(&mut pending), pending)).await;
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
