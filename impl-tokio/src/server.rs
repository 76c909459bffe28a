//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and memory,
//! not threads. It is a `Semaphore`: each task holds a permit, and a client
//! that finds none gets `ERR BUSY` instead of the greeting. What a connection
//! does, step by step, is [`Serving`](ferry_engine::server::Serving)'s to
//! decide, and [`serve_task`] asks for each step; the [`Connection`] does each
//! with tokio's socket, and `Server` waits the tokio way.

use std::io;
use std::sync::Arc;

use ferry_app::net::AcceptErrors;
use ferry_app::serve::{AsyncServer, Blocking, serve_task};
use ferry_app::switch::Trigger;
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::server::Pending;
use ferry_share::{Batch, heavy_permits};
use tokio::net::TcpListener;
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
    let server = Arc::new(Server { heavy: Arc::new(Semaphore::new(heavy_permits())), shutdown });
    let tasks = TaskTracker::new();

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            () = server.shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accept_errors.check(accepted) {
            Ok(accepted) => accepted,
            Err(pause) => {
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        // Past the limit, the client is answered BUSY by a task of its
        // own, so that a stuck one never holds up the accept loop.
        let (permit, serving) = config.admit(peer, Arc::clone(&limit).try_acquire_owned().ok(), Tokio::NAME);
        // A TLS handshake is the connection's task's, under its place and
        // its deadline, never the accept loop's.
        let connection = Connection::accepted(stream, config.tls.clone(), config.handshake_within(&serving));
        tasks.spawn(serve_task(Arc::clone(&config), serving, connection, Arc::clone(&server), permit));
    }
    drop(listener);
    tasks.close();
    ferry_app::serve::draining(tasks.len());
    if timeout(config.grace, tasks.wait()).await.is_err() {
        ferry_app::serve::grace_over(tasks.len());
    }
    Ok(())
}

/// What every connection's task shares, the tokio way: a cancellation
/// token for shutdown, and a semaphore whose owned permits a task can hold
/// across the blocking pool.
struct Server {
    heavy: Arc<Semaphore>,
    shutdown: Shutdown,
}

impl AsyncServer for Server {
    type Permit = OwnedSemaphorePermit;

    async fn stopping(&self) {
        self.shutdown.wait().await;
    }

    fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static {
        self.shutdown.watcher()
    }

    async fn permit(&self, deadline: std::time::Instant) -> Option<OwnedSemaphorePermit> {
        let acquire = Arc::clone(&self.heavy).acquire_owned();
        timeout_at(Instant::from_std(deadline), acquire).await.ok().and_then(Result::ok)
    }

    async fn blocking(&self, work: Blocking) -> io::Result<(Batch, Pending)> {
        spawn_blocking(move || work.run()).await.map_err(io::Error::other)
    }
}
