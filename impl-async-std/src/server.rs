//! The server: an accept loop that gives each connection its own task.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and memory,
//! not threads. async-std has no semaphore of its own, so the limit (and the
//! server-wide limit on heavy work) is `async-lock`'s, the crate async-std's
//! own locks come from (and smol re-exports as `smol::lock`). Each task also
//! holds a token of [`Tasks`], so that shutdown can wait for the last one to
//! end. What a connection does, step by step, is
//! [`Serving`](ferry_engine::server::Serving)'s to decide, and [`serve_task`]
//! asks for each step; the [`Connection`] does each with async-std's socket,
//! and [`Shared`] holds what they share, async-std saying how it sleeps and
//! runs blocking work ([`AnyExecutor`]).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use async_lock::Semaphore;
use async_std::net::TcpListener;
use async_std::task;
use ferry_app::net::AcceptErrors;
use ferry_app::serve::serve_task;
use ferry_app::switch::{AnyExecutor, Shared, Tasks};
use ferry_app::{Runtime, ServeConfig};
use ferry_share::heavy_permits;

use crate::AsyncStd;
use crate::connection::Connection;
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub async fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let server = Arc::new(Shared::<AsyncStd>::new(shutdown, Arc::new(Semaphore::new(heavy_permits()))));
    let tasks = Tasks::new();

    let mut accept_errors = AcceptErrors::default();
    while let Some((stream, peer)) = server.accept(&mut accept_errors, async || listener.accept().await).await {
        // One task a connection, even past the limit: there it answers
        // BUSY and ends, so the accept loop never waits for a client.
        let (permit, serving) = config.admit(peer, limit.try_acquire_arc(), AsyncStd::NAME);
        // A TLS handshake is the task's, never the accept loop's.
        let connection = Connection::accepted(stream, config.tls.clone(), config.handshake_within(&serving));
        let held = (permit, tasks.track());
        // The handle is dropped: the task runs on, detached, until its
        // connection ends; at shutdown, `run` waits for it through `tasks`.
        task::spawn(serve_task(Arc::clone(&config), serving, connection, Arc::clone(&server), held));
    }
    drop(listener);
    server.wind_down(tasks, config.grace).await;
    Ok(())
}

impl AnyExecutor for AsyncStd {
    async fn sleep_until(deadline: Instant) {
        task::sleep(deadline.saturating_duration_since(Instant::now())).await;
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        task::spawn_blocking(work).await
    }
}
