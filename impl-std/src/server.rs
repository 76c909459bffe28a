//! The server: an accept loop that gives each connection its own thread.
//!
//! Threads are cheap enough for the default limit of 1024 connections; the
//! limit is what keeps a flood of clients from exhausting threads and file
//! descriptors. A client past it gets `ERR BUSY` instead of the greeting. What
//! a connection does, step by step, is
//! [`Serving`](ferry_engine::server::Serving)'s to decide, and [`serve`] asks
//! for each step; the [`Connection`] does each on the connection's own thread,
//! where every wait is a blocking call, and `Server` holds what the threads
//! share. A blocked read cannot be cancelled: at shutdown a watcher thread
//! shuts the read side of every connection, and each read sees the end of the
//! stream.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_app::net::{AcceptErrors, wake_addr};
use ferry_app::serve::serve;
use ferry_app::switch::Trigger;
use ferry_app::{Runtime, ServeConfig};
use ferry_share::heavy_permits;

use crate::Std;
use crate::connection::Connection;
use crate::shutdown::Shutdown;
use crate::sync::{Acquired, Connections, Permit, Permits};

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let local = listener.local_addr()?;
    let config = Arc::new(config);
    let connections = Arc::new(Connections::new(config.max_connections));
    let server = Arc::new(Server { heavy: Arc::new(Permits::new(heavy_permits())), shutdown });
    spawn_watcher(local, &connections, &server.heavy, &server.shutdown)?;

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = listener.accept();
        if server.shutdown.is_triggered() {
            break;
        }
        let (stream, peer) = match accept_errors.check(accepted) {
            Ok((stream, peer)) => (Arc::new(stream), peer),
            Err(pause) => {
                thread::sleep(pause);
                continue;
            }
        };
        let (slot, serving) = config.admit(peer, connections.admit(&stream), Std::NAME);
        if slot.is_none() {
            // Answered here, on the accept loop: the answer fits in a fresh
            // socket's buffer, and the write may take a second at most. Over
            // TLS it is not answered (the connection closes): a handshake
            // here would hold the accept loop for as long as a client likes.
            if config.tls.is_none() {
                serve(&config, serving, Connection::new(stream), &*server);
            }
            continue;
        }
        let (config, server) = (Arc::clone(&config), Arc::clone(&server));
        let spawned = thread::Builder::new().name("connection".into()).spawn(move || {
            let _slot = slot;
            let within = config.handshake_within(&serving);
            if let Some(connection) = Connection::accepted(stream, config.tls.as_ref(), within) {
                serve(&config, serving, connection, &*server);
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a thread for a connection; dropping it");
        }
    }
    drop(listener);
    ferry_app::serve::draining(connections.count());
    if !connections.wait_idle(config.grace) {
        ferry_app::serve::grace_over(connections.count());
    }
    Ok(())
}

/// A thread that turns the shutdown signal into wake-ups: a blocked `accept`
/// and blocked reads cannot be cancelled, so it connects to the listener,
/// shuts the read side of every connection and closes the heavy permits.
fn spawn_watcher(
    local: SocketAddr,
    connections: &Arc<Connections>,
    heavy: &Arc<Permits>,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let (connections, heavy, shutdown) = (Arc::clone(connections), Arc::clone(heavy), shutdown.clone());
    thread::Builder::new().name("shutdown".into()).spawn(move || {
        shutdown.wait();
        connections.close_reads();
        heavy.close();
        let _ = TcpStream::connect_timeout(&wake_addr(local), Duration::from_secs(1));
    })?;
    Ok(())
}

/// What every connection's thread shares: the switch, and the permits
/// for heavy work, which shutdown closes so that no thread waits for one.
struct Server {
    heavy: Arc<Permits>,
    shutdown: Shutdown,
}

impl ferry_app::serve::Server for Server {
    type Permit = Permit;

    fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static {
        self.shutdown.watcher()
    }

    fn permit(&self, deadline: Instant) -> Option<Option<Permit>> {
        match self.heavy.acquire(deadline) {
            Acquired::Permit(permit) => Some(Some(permit)),
            Acquired::TimedOut => Some(None),
            Acquired::ShuttingDown => None,
        }
    }
}
