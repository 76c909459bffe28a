//! The server: one accept loop a thread, each connection a task on the thread
//! that accepted it.
//!
//! Tasks are cheap, so the limit exists to bound file descriptors and memory,
//! not threads. It is a semaphore shared by the threads (`async-lock`'s, which
//! works on any runtime): each task holds a permit, and a client that finds
//! none gets `ERR BUSY` instead of the greeting. Each task also holds a token
//! of its thread's [`Tasks`], so that shutdown can wait for the last one to
//! finish, as on smol. What a connection does, step by step, is
//! [`Serving`](ferry_engine::server::Serving)'s to decide, and [`serve_task`]
//! asks for each step; the [`Connection`] does each with compio's ring
//! operations, and [`Shared`] holds what this thread's share, compio saying how
//! it sleeps and runs blocking work ([`AnyExecutor`]).

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use async_lock::Semaphore;
use compio::net::TcpListener;
use ferry_app::net::AcceptErrors;
use ferry_app::serve::serve_task;
use ferry_app::switch::{AnyExecutor, Shared, Tasks};
use ferry_app::{Runtime, ServeConfig};
use ferry_share::heavy_permits;

use crate::Compio;
use crate::connection::Connection;
use crate::pool::blocking;
use crate::shutdown::{Shutdown, local};

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
    let server = Rc::new(Shared::<Compio>::new(local(&shutdown), limits.heavy));
    let tasks = Tasks::new();

    let mut accept_errors = AcceptErrors::default();
    while let Some((stream, peer)) = server.accept(&mut accept_errors, async || listener.accept().await).await {
        // Past the limit the task says BUSY and ends; the accept loop
        // itself never writes to a client.
        let (permit, serving) = config.admit(peer, limits.connections.try_acquire_arc(), Compio::NAME);
        // A TLS handshake is the task's, never the accept loop's.
        let connection = Connection::accepted(stream, config.tls.clone(), config.handshake_within(&serving));
        let task = serve_task(Arc::clone(&config), serving, connection, Rc::clone(&server), (permit, tasks.track()));
        // Detached, on this thread: the task ends with its connection; at
        // shutdown, `run` waits for it through `tasks` for the grace period.
        compio::runtime::spawn(task).detach();
    }
    drop(listener);
    server.wind_down(tasks, config.grace).await;
    Ok(())
}

impl AnyExecutor for Compio {
    async fn sleep_until(deadline: Instant) {
        compio::time::sleep_until(deadline).await;
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        blocking(work).await
    }
}
