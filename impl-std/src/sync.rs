//! What std lacks for a server, built from a `Mutex` and a `Condvar`: the
//! registry of open connections (counted for the limit, and woken at
//! shutdown, since a blocked read cannot be cancelled), and a counting
//! semaphore for heavy work that shutdown closes. The async runtimes have
//! both (a semaphore, and futures that can be dropped); only std needs
//! this file.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The open connections: counted for the limit, and kept (as shared
/// handles to their streams) so that shutdown can wake the threads reading
/// them.
#[derive(Debug)]
pub(crate) struct Connections {
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
pub(crate) struct Slot {
    id: u64,
    connections: Arc<Connections>,
}

impl Connections {
    pub(crate) fn new(limit: usize) -> Connections {
        Connections { state: Mutex::default(), closed: Condvar::new(), limit }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `stream`, or `None` at the limit or once shutting down.
    pub(crate) fn admit(self: &Arc<Self>, stream: &Arc<TcpStream>) -> Option<Slot> {
        let mut state = self.lock();
        if state.closing || state.open.len() >= self.limit {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, Arc::clone(stream));
        Some(Slot { id, connections: Arc::clone(self) })
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().open.len()
    }

    /// Shuts the read side of every connection: a thread waiting for a
    /// request sees end-of-stream and ends; one sending a body finishes it.
    pub(crate) fn close_reads(&self) {
        let mut state = self.lock();
        state.closing = true;
        for stream in state.open.values() {
            let _ = stream.shutdown(std::net::Shutdown::Read);
        }
    }

    /// Waits until no connection is open, or `grace` has passed; says which.
    pub(crate) fn wait_idle(&self, grace: Duration) -> bool {
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

/// The server-wide permits for heavy requests (see [`ferry_share::heavy_permits`]):
/// a counting semaphore, which std does not have, from a mutex and a
/// condition variable; closed at shutdown, which wakes every waiter.
#[derive(Debug)]
pub(crate) struct Permits {
    state: Mutex<PermitState>,
    changed: Condvar,
}

#[derive(Debug)]
struct PermitState {
    free: usize,
    closed: bool,
}

/// A permit, given back when dropped; owned, so that it can travel with the
/// work it allows.
#[derive(Debug)]
pub(crate) struct Permit(Arc<Permits>);

/// How a wait for a permit ended.
#[derive(Debug)]
pub(crate) enum Acquired {
    Permit(Permit),
    TimedOut,
    ShuttingDown,
}

impl Permits {
    pub(crate) fn new(count: usize) -> Permits {
        Permits { state: Mutex::new(PermitState { free: count, closed: false }), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, PermitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a permit until `deadline`, or until shutdown closes them.
    pub(crate) fn acquire(self: &Arc<Self>, deadline: Instant) -> Acquired {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Acquired::ShuttingDown;
            }
            if state.free > 0 {
                state.free -= 1;
                return Acquired::Permit(Permit(Arc::clone(self)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Acquired::TimedOut;
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Ends every wait, now and later: the server is shutting down.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.lock().free += 1;
        self.0.changed.notify_one();
    }
}
