//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and
//! memory, not threads. async-std has no semaphore of its own, so the limit
//! (and the server-wide limit on heavy work) is `async-lock`'s, the crate
//! async-std's own locks come from (and smol re-exports as `smol::lock`).
//! Each task also holds a token of [`Tasks`], so that shutdown can wait for
//! the last one to end. What a connection does, step by step, is
//! [`Serving`](ferry_engine::server::Serving)'s to decide, and
//! [`serve_async`] asks for each step; `Steps` does each the async-std way.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_lock::{Semaphore, SemaphoreGuardArc};
use async_std::net::{TcpListener, TcpStream};
use async_std::prelude::FutureExt;
use async_std::task;
use ferry_app::net::AcceptErrors;
use ferry_app::serve::{AsyncServe, Blocking, Read, serve_async};
use ferry_app::switch::Tasks;
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::server::Pending;
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
    let tasks = Tasks::new();

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = async { Some(listener.accept().await) }
            .race(async {
                shutdown.wait().await;
                None
            })
            .await;
        let Some(accepted) = accepted else { break };
        let (stream, peer) = match accept_errors.check(accepted) {
            Ok(accepted) => accepted,
            Err(pause) => {
                task::sleep(pause).await;
                continue;
            }
        };
        // A client past the limit is answered BUSY by a task of its own, so
        // a stuck one never holds up the accept loop.
        let (permit, serving) = config.admit(peer, limit.try_acquire_arc(), AsyncStd::NAME);
        let (config, shutdown, heavy, tracked) =
            (Arc::clone(&config), shutdown.clone(), Arc::clone(&heavy), tasks.track());
        // The handle is dropped: the task runs on, detached, until its
        // connection ends; at shutdown, `run` waits for it through `tasks`.
        task::spawn(async move {
            let (_permit, _tracked) = (permit, tracked);
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
    let closing = tasks.close();
    if until(Instant::now() + config.grace, closing.done()).await.is_none() {
        closing.unfinished();
    }
    Ok(())
}

/// One connection's steps, the async-std way; the order is `Serving`'s, the
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
        // A read that is dropped has taken no bytes, so shutdown loses
        // nothing but the wait.
        let reading = async { Some(self.connection.read_requests(deadline, pending).await) };
        reading
            .race(async {
                self.shutdown.wait().await;
                None
            })
            .await
    }

    async fn permit(&mut self, deadline: Instant) -> Option<Option<SemaphoreGuardArc>> {
        let acquire = async { Some(until(deadline, self.heavy.acquire_arc()).await) };
        acquire
            .race(async {
                self.shutdown.wait().await;
                None
            })
            .await
    }

    async fn blocking(&mut self, work: Blocking) -> io::Result<(Batch, Pending)> {
        Ok(task::spawn_blocking(move || work.run()).await)
    }

    fn socket(&self) -> BorrowedFd<'_> {
        self.connection.socket()
    }

    async fn close(self) {
        self.connection.close().await;
    }
}
