//! The server: an accept loop that gives each connection its own task on the
//! executor.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and memory,
//! not threads. It is a semaphore from `smol::lock`: each task holds a permit,
//! and a client that finds none gets `ERR BUSY` instead of the greeting. Each
//! task also holds a token of [`Tasks`], a channel sender, so that shutdown can
//! wait for the last one to finish by waiting for the channel to close — smol's
//! way to join a set of detached tasks. What a connection does, step by step,
//! is [`Serving`](ferry_engine::server::Serving)'s to decide, and
//! [`serve_task`] asks for each step; the [`Connection`] does each with smol's
//! `Async` socket, and [`Shared`] holds what they share, smol saying how it
//! sleeps and runs blocking work ([`AnyExecutor`]).

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use ferry_app::net::AcceptErrors;
use ferry_app::serve::serve_task;
use ferry_app::switch::{AnyExecutor, Shared, Tasks};
use ferry_app::{Runtime, ServeConfig};
use ferry_share::heavy_permits;
use smol::lock::Semaphore;
use smol::{Async, Executor, Timer};

use crate::Smol;
use crate::connection::Connection;
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
    let server = Arc::new(Shared::<Smol>::new(shutdown, Arc::new(Semaphore::new(heavy_permits()))));
    let tasks = Tasks::new();

    let mut accept_errors = AcceptErrors::default();
    while let Some((stream, peer)) = server.accept(&mut accept_errors, async || listener.accept().await).await {
        // Without a place under the limit, the task answers BUSY and ends:
        // the accept loop never waits for a client.
        let (permit, serving) = config.admit(peer, limit.try_acquire_arc(), Smol::NAME);
        let held = (permit, tasks.track());
        // A TLS handshake is the task's, never the accept loop's.
        let connection = Connection::accepted(stream, config.tls.clone(), config.handshake_within(&serving));
        let task = serve_task(Arc::clone(&config), serving, connection, Arc::clone(&server), held);
        // Detached: the task ends with its connection; at shutdown, `run`
        // waits for it through `tasks` for the grace period.
        executor.spawn(task).detach();
    }
    drop(listener);
    server.wind_down(tasks, config.grace).await;
    Ok(())
}

impl AnyExecutor for Smol {
    async fn sleep_until(deadline: Instant) {
        Timer::at(deadline).await;
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        smol::unblock(work).await
    }
}
