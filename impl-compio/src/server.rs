//! The server: one accept loop a thread, each connection a task on the
//! thread that accepted it.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. It is a semaphore shared by the threads
//! (`async-lock`'s, which works on any runtime): each task holds a permit,
//! and a client that finds none gets `ERR BUSY` instead of the greeting.
//! Each task also holds a token of its thread's [`Tasks`], so that
//! shutdown can wait for the last one to finish, as on smol. What a
//! connection does, step by step, is
//! [`Serving`](ferry_engine::server::Serving)'s to decide, and
//! [`serve_async`] asks for each step; `Steps` does each the compio way.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_lock::{Semaphore, SemaphoreGuardArc};
use compio::net::{TcpListener, TcpStream};
use compio::time::{sleep, timeout_at};
use ferry_app::net::AcceptErrors;
use ferry_app::serve::{AsyncServe, Blocking, Read, serve_async};
use ferry_app::switch::Tasks;
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::frame::LineError;
use ferry_engine::server::Pending;
use ferry_share::{Batch, heavy_permits};

use crate::Compio;
use crate::connection::Connection;
use crate::pool::blocking;
use crate::shutdown::{Shutdown, local, unless};

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
        let semaphore = |permits| Arc::new(Semaphore::new(permits));
        Limits { connections: semaphore(config.max_connections), heavy: semaphore(heavy_permits()) }
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
    let shutdown = local(&shutdown);
    let tasks = Tasks::new();

    let mut accept_errors = AcceptErrors::default();
    loop {
        let Some(accepted) = unless(&shutdown, listener.accept()).await else { break };
        let (stream, peer) = match accept_errors.check(accepted) {
            Ok(accepted) => accepted,
            Err(pause) => {
                sleep(pause).await;
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = config.admit(peer, limits.connections.try_acquire_arc(), Compio::NAME);
        let (config, shutdown, heavy, tracked) =
            (Arc::clone(&config), shutdown.clone(), Arc::clone(&limits.heavy), tasks.track());
        // Detached: the task ends with its connection; at shutdown, `run`
        // waits for it through `tasks` for the grace period.
        compio::runtime::spawn(async move {
            let (_permit, _tracked) = (permit, tracked);
            let served = match Steps::new(stream, &shutdown, &heavy) {
                Ok(steps) => serve_async(&config, serving, steps, shutdown.watcher()).await,
                Err(error) => Err(error),
            };
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended");
            }
        })
        .detach();
    }
    drop(listener);
    let closing = tasks.close();
    if timeout_at(Instant::now() + config.grace, closing.done()).await.is_err() {
        closing.unfinished();
    }
    Ok(())
}

/// One connection's steps, the compio way; the order is `Serving`'s, the
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
    type Permit = SemaphoreGuardArc;

    async fn write(&mut self, batch: Batch, within: Duration) -> io::Result<()> {
        self.connection.write_batch(batch, within).await
    }

    async fn read(&mut self, deadline: Instant, pending: &mut Pending) -> Option<Read> {
        // The read is raced inside, where a cut cannot lose received bytes.
        let read = self.connection.read_requests(deadline, || self.shutdown.wait(), pending).await;
        // A wait ended by shutdown is no timeout: the connection just stops.
        let stopped = self.shutdown.is_triggered() && matches!(read, Err(LineError::TimedOut));
        (!stopped).then_some(read)
    }

    async fn permit(&mut self, deadline: Instant) -> Option<Option<SemaphoreGuardArc>> {
        unless(self.shutdown, async { timeout_at(deadline, self.heavy.acquire_arc()).await.ok() }).await
    }

    async fn blocking(&mut self, work: Blocking) -> io::Result<(Batch, Pending)> {
        Ok(blocking(move || work.run()).await)
    }

    fn socket(&self) -> BorrowedFd<'_> {
        self.connection.socket()
    }

    async fn close(self) {
        self.connection.close().await;
    }
}
