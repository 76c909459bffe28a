//! The server: an accept loop that gives each connection its own thread.
//!
//! Threads are cheap enough for the default limit of 1024 connections; the
//! limit is what keeps a flood of clients from exhausting threads and file
//! descriptors. A client past it gets `ERR BUSY` instead of the greeting.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use ferry_cli::conn::{AcceptErrors, peer_left, wake_addr};
use ferry_cli::serving::{Next, Serving};
use ferry_cli::{Runtime, ServeConfig};
use ferry_fs::heavy_permits;

use crate::Std;
use crate::connection::Connection;
use crate::shutdown::Shutdown;

/// Serves on `listener` until `shutdown` is triggered, then lets
/// connections finish the answer they are sending for up to `config.grace`.
pub fn run(listener: TcpListener, config: ServeConfig, shutdown: Shutdown) -> io::Result<()> {
    let local = listener.local_addr()?;
    let config = Arc::new(config);
    let connections = Arc::new(Connections::new(config.max_connections));
    let heavy = Arc::new(Permits::new(heavy_permits()));
    spawn_watcher(local, &connections, &shutdown)?;

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
            let _ = handle(stream, Serving::busy(peer, config.max_connections), &config, &shutdown, &heavy);
            continue;
        };
        let serving = Serving::new(peer, Std::NAME, config.idle_timeout);
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
    tracing::info!(open = connections.count(), "stopped accepting; waiting for transfers in flight");
    if !connections.wait_idle(config.grace) {
        tracing::warn!(open = connections.count(), "grace period over; exiting with transfers unfinished");
    }
    Ok(())
}

/// A thread that turns the shutdown signal into wake-ups: a blocked `accept`
/// and blocked reads cannot be cancelled, so it connects to the listener and
/// shuts the read side of every connection.
fn spawn_watcher(local: SocketAddr, connections: &Arc<Connections>, shutdown: &Shutdown) -> io::Result<()> {
    let (connections, shutdown) = (Arc::clone(connections), shutdown.clone());
    thread::Builder::new().name("shutdown".into()).spawn(move || {
        shutdown.wait();
        connections.close_reads();
        let _ = TcpStream::connect_timeout(&wake_addr(local), Duration::from_secs(1));
    })?;
    Ok(())
}

/// Serves one connection: does what `serving` says until it is done.
fn handle(
    stream: Arc<TcpStream>,
    mut serving: Serving,
    config: &ServeConfig,
    shutdown: &Shutdown,
    heavy: &Permits,
) -> io::Result<()> {
    // Answers are written whole; waiting to coalesce them only adds latency.
    stream.set_nodelay(true)?;
    let mut connection = Connection::new(stream);
    loop {
        match serving.next(shutdown.is_triggered()) {
            Next::Write { batch, within } => serving.on_written(connection.write_batch(batch, within))?,
            Next::Read { deadline } => {
                // A blocked read cannot be cancelled: at shutdown the
                // watcher shuts the read side, and the read sees the end.
                let read = connection.read_requests(deadline, serving.pending());
                serving.on_read(Some(read))?;
            }
            Next::Answer { heavy: needs_permit, deadline } => {
                // A heavy batch waits for one of the server's permits, at
                // most until its deadline; without one it is answered TIMEOUT.
                let permit = if needs_permit { heavy.acquire(deadline) } else { None };
                let socket = connection.socket();
                let stop = || shutdown.is_triggered() || (permit.is_some() && peer_left(socket.as_ref()));
                let answered = config.answer_blocking(serving.take_pending(), deadline, stop);
                drop(permit);
                serving.on_answered(answered);
            }
            Next::Close => break,
            Next::Stop => return Ok(()),
        }
    }
    connection.close();
    Ok(())
}

/// The open connections: counted for the limit, and kept (as shared
/// handles to their streams) so that shutdown can wake the threads reading
/// them.
#[derive(Debug)]
struct Connections {
    state: Mutex<State>,
    closed: Condvar,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<u64, Arc<TcpStream>>,
    next_id: u64,
    closing: bool,
}

/// A connection's place under the limit, given back when dropped.
#[derive(Debug)]
struct Slot {
    id: u64,
    connections: Arc<Connections>,
}

impl Connections {
    fn new(limit: usize) -> Connections {
        Connections { state: Mutex::default(), closed: Condvar::new(), limit }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `stream`, or `None` at the limit or once shutting down.
    fn admit(self: &Arc<Self>, stream: &Arc<TcpStream>) -> Option<Slot> {
        let mut state = self.lock();
        if state.closing || state.open.len() >= self.limit {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, Arc::clone(stream));
        Some(Slot { id, connections: Arc::clone(self) })
    }

    fn count(&self) -> usize {
        self.lock().open.len()
    }

    /// Shuts the read side of every connection: a thread waiting for a
    /// request sees end-of-stream and ends; one sending a body finishes it.
    fn close_reads(&self) {
        let mut state = self.lock();
        state.closing = true;
        for stream in state.open.values() {
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
    }

    /// Waits until no connection is open, or `grace` has passed; says which.
    fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut state = self.lock();
        while !state.open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.closed.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
        self.connections.closed.notify_all();
    }
}

/// The server-wide permits for heavy requests (see [`ferry_fs::heavy_permits`]):
/// a counting semaphore, which std does not have, from a mutex and a
/// condition variable.
#[derive(Debug)]
struct Permits {
    free: Mutex<usize>,
    returned: Condvar,
}

/// A permit, given back when dropped.
#[derive(Debug)]
struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(count: usize) -> Permits {
        Permits { free: Mutex::new(count), returned: Condvar::new() }
    }

    /// Waits for a permit until `deadline`; `None` if none came free.
    fn acquire(&self, deadline: Instant) -> Option<Permit<'_>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            free = self.returned.wait_timeout(free, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        *free -= 1;
        Some(Permit(self))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.returned.notify_one();
    }
}
