//! The server: an accept loop that gives each connection its own thread.
//!
//! Threads are cheap enough for the default limit of 1024 connections; the
//! limit is what keeps a flood of clients from exhausting threads and file
//! descriptors. A client past it gets `ERR BUSY` instead of the greeting.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_app::net::{AcceptErrors, wake_addr};
use ferry_app::{Runtime, ServeConfig};
use ferry_engine::server::{Next, Serving};
use ferry_share::{Batch, heavy_permits};

use crate::Std;
use crate::connection::Connection;
use crate::shutdown::Shutdown;
use crate::sync::{Acquired, Connections, Permits};

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let local = listener.local_addr()?;
    let config = Arc::new(config);
    let connections = Arc::new(Connections::new(config.max_connections));
    let heavy = Arc::new(Permits::new(heavy_permits()));
    spawn_watcher(local, &connections, &heavy, &shutdown)?;

    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = listener.accept();
        if shutdown.is_triggered() {
            break;
        }
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => (Arc::new(stream), peer),
            Err(error) => {
                if let Some(pause) = accept_errors.record(&error) {
                    thread::sleep(pause);
                }
                continue;
            }
        };
        let Some(slot) = connections.admit(&stream) else {
            // Answered here, on the accept loop: the answer fits in a fresh
            // socket's buffer, and the write may take a second at most.
            let _ =
                handle(stream, Serving::busy(peer, config.max_connections, Instant::now()), &config, &shutdown, &heavy);
            continue;
        };
        let serving = Serving::new(peer, Std::NAME, config.idle_timeout, Instant::now());
        let (config, shutdown, heavy) = (Arc::clone(&config), shutdown.clone(), Arc::clone(&heavy));
        let spawned = thread::Builder::new().name("connection".into()).spawn(move || {
            let _slot = slot;
            if let Err(error) = handle(stream, serving, &config, &shutdown, &heavy) {
                tracing::debug!(%error, "connection ended");
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

/// Serves one connection: does what `serving` says until it is done.
fn handle(
    stream: Arc<TcpStream>,
    mut serving: Serving<Batch>,
    config: &Arc<ServeConfig>,
    shutdown: &Shutdown,
    heavy: &Arc<Permits>,
) -> io::Result<()> {
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    loop {
        match serving.next(Instant::now(), shutdown.is_triggered()) {
            Next::Write { batch, within } => {
                serving.on_written(connection.write_batch(batch, within), Instant::now())?
            }
            Next::Read { deadline } => {
                // A blocked read cannot be cancelled: at shutdown the
                // watcher shuts the read side, and the read sees the end.
                let read = connection.read_requests(deadline, serving.pending());
                serving.on_read(Some(read))?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                // A heavy batch waits for one of the server's permits, at
                // most until its deadline (without one it is answered
                // TIMEOUT); shutdown ends the wait, as on every runtime.
                let permit = match needs_permit {
                    false => None,
                    true => match heavy.acquire(deadline) {
                        Acquired::Permit(permit) => Some(permit),
                        Acquired::TimedOut => None,
                        Acquired::ShuttingDown => return Ok(()),
                    },
                };
                // This thread may block: the whole batch is answered here.
                let pending = serving.take_pending();
                let work = config.blocking(pending, permit, deadline, connection.socket(), shutdown.watcher())?;
                serving.on_answered(work.run());
            }
            Next::Close => break,
            Next::Stop => return Ok(()),
        }
    }
    connection.close();
    Ok(())
}
