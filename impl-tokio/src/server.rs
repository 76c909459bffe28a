//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. It is a `Semaphore`: each task holds a permit, and a
//! client that finds none gets `ERR BUSY` instead of the greeting. What a
//! connection does, step by step, is [`Serving`](ferry_engine::server::Serving)'s to decide, and
//! [`serve_async`] asks for each step; `Steps` does each the tokio way.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use ferry_app::net::AcceptErrors;
use ferry_app::serve::{AsyncServe, Blocking, Read, serve_async};
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::server::Pending;
use ferry_share::{Batch, heavy_permits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
        let (stream, peer) = match accept_errors.check(accepted) {
            Ok(accepted) => accepted,
            Err(pause) => {
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = config.admit(peer, Arc::clone(&limit).try_acquire_owned().ok(), Tokio::NAME);
        let (config, shutdown, heavy) = (Arc::clone(&config), shutdown.clone(), Arc::clone(&heavy));
        tasks.spawn(async move {
            let _permit = permit;
            let served = match Steps::new(stream, &shutdown, &heavy) {
                Ok(steps) => serve_async(&config, serving, steps, shutdown.watcher()).await,
                Err(error) => Err(error),
            };
            if let Err(error) = served {
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

/// One connection's steps, the tokio way; the order is `Serving`'s, the
/// loop [`serve_async`]'s.
struct Steps<'a> {
    connection: Connection,
    shutdown: &'a Shutdown,
    heavy: &'a Arc<Semaphore>,
}

impl<'a> Steps<'a> {
    fn new(stream: TcpStream, shutdown: &'a Shutdown, heavy: &'a Arc<Semaphore>) -> io::Result<Steps<'a>> {
        // Answers are written whole; waiting to coalesce them only adds latency.
        stream.set_nodelay(true)?;
        Ok(Steps { connection: Connection::new(stream), shutdown, heavy })
    }
}

impl AsyncServe for Steps<'_> {
    type Permit = OwnedSemaphorePermit;

    async fn write(&mut self, batch: Batch, within: Duration) -> io::Result<()> {
        self.connection.write_batch(batch, within).await
    }

    async fn read(&mut self, deadline: std::time::Instant, pending: &mut Pending) -> Option<Read> {
        // Reading is cancel-safe, so shutdown loses nothing but the wait.
        tokio::select! {
            () = self.shutdown.wait() => None,
            read = self.connection.read_requests(Instant::from_std(deadline), pending) => Some(read),
        }
    }

    async fn permit(&mut self, deadline: std::time::Instant) -> Option<Option<OwnedSemaphorePermit>> {
        let acquire = timeout_at(Instant::from_std(deadline), Arc::clone(self.heavy).acquire_owned());
        tokio::select! {
            () = self.shutdown.wait() => None,
            permit = acquire => Some(permit.ok().and_then(Result::ok)),
        }
    }

    async fn blocking(&mut self, work: Blocking) -> io::Result<(Batch, Pending)> {
        spawn_blocking(move || work.run()).await.map_err(io::Error::other)
    }

    fn socket(&self) -> BorrowedFd<'_> {
        self.connection.socket()
    }

    async fn close(self) {
        self.connection.close().await;
    }
}
