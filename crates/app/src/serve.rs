//! What a server decides the same way on every runtime, beyond the steps of
//! one connection (`ferry_engine::server::Serving`): where the answer to a
//! batch of requests is computed, what heavy work watches while it runs,
//! and what the server says while it drains at shutdown. A driver only says
//! how its runtime runs blocking work and waits.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use ferry_engine::server::Pending;
use ferry_share::{Batch, Work};

use crate::net::peer_left;
use crate::runtime::ServeConfig;

/// Where the answer to a batch of requests comes from.
#[derive(Debug)]
pub enum Route {
    /// Answered already, without blocking: GETs of files the kernel has in
    /// memory (`Root::batch_cached`). The batch and the requests left.
    Ready(Batch, Pending),
    /// To be answered where blocking is allowed: the runtime's blocking
    /// pool, or ferry-std's connection thread. Run [`Blocking::run`] there.
    Blocking(Blocking),
}

/// A batch to answer on a thread that may block: opening and reading files,
/// hashing, listing. Heavy work in it stops between chunks once the client
/// has left or the server is shutting down.
pub struct Blocking {
    config: Arc<ServeConfig>,
    pending: Pending,
    deadline: Instant,
    /// A duplicate of the connection's socket, owned by the blocking thread,
    /// to ask whether the client has left: only while heavy work runs.
    watch: Option<OwnedFd>,
    shutting_down: Box<dyn Fn() -> bool + Send + Sync>,
    /// The heavy permit the batch holds until it is answered.
    permit: Option<Box<dyn Send>>,
}

impl std::fmt::Debug for Blocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocking").field("pending", &self.pending.len()).field("deadline", &self.deadline).finish()
    }
}

impl ServeConfig {
    /// Where to answer `pending`, read on `socket`, by `deadline`. A batch
    /// that holds a heavy `permit` (its runtime's semaphore guard) always
    /// goes to the pool, holds the permit until it is answered, and watches
    /// the peer; any other is first answered from memory if it can be.
    /// `shutting_down` is the driver's shutdown switch, asked between chunks
    /// of heavy work. Called on an event loop: it never blocks.
    pub fn route<P: Send + 'static>(
        self: &Arc<Self>,
        mut pending: Pending,
        permit: Option<P>,
        deadline: Instant,
        socket: impl AsFd,
        shutting_down: impl Fn() -> bool + Send + Sync + 'static,
    ) -> std::io::Result<Route> {
        if permit.is_none() {
            let batch = self.root.batch_cached(&mut pending);
            // Something answered, or nothing left: that is the answer for now.
            if !batch.is_empty() || pending.is_empty() {
                return Ok(Route::Ready(batch, pending));
            }
        }
        self.blocking(pending, permit, deadline, socket, shutting_down).map(Route::Blocking)
    }

    /// `pending` to answer where blocking is allowed, as [`ServeConfig::route`]
    /// would send it there: for a driver that is already on such a thread.
    pub fn blocking<P: Send + 'static>(
        self: &Arc<Self>,
        pending: Pending,
        permit: Option<P>,
        deadline: Instant,
        socket: impl AsFd,
        shutting_down: impl Fn() -> bool + Send + Sync + 'static,
    ) -> std::io::Result<Blocking> {
        let watch = if permit.is_some() { Some(socket.as_fd().try_clone_to_owned()?) } else { None };
        let permit = permit.map(|permit| Box::new(permit) as Box<dyn Send>);
        let shutting_down = Box::new(shutting_down);
        Ok(Blocking { config: Arc::clone(self), pending, deadline, watch, shutting_down, permit })
    }
}

impl Blocking {
    /// Answers the front of the requests (blocking), heavy work bounded by
    /// the deadline. Returns the batch and what is left.
    pub fn run(mut self) -> (Batch, Pending) {
        let stop = || (self.shutting_down)() || self.watch.as_ref().is_some_and(peer_left);
        let work = Work { deadline: self.deadline, limit: self.config.idle_timeout, stop: &stop };
        let batch = self.config.root.batch(&mut self.pending, &work);
        // Given back only now that the heavy work is done.
        drop(self.permit);
        (batch, self.pending)
    }
}

/// Says that the accept loop has stopped and `open` connections are being
/// given the grace period to finish.
pub fn draining(open: usize) {
    tracing::info!(open, "stopped accepting; waiting for transfers in flight");
}

/// Says that the grace period ended with `open` connections unfinished.
pub fn grace_over(open: usize) {
    tracing::warn!(open, "grace period over; exiting with transfers unfinished");
}
