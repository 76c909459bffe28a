//! What a server decides the same way on every runtime: the loop that does
//! one connection's steps ([`serve_async`], [`serve`]) in the order
//! `ferry_engine::server::Serving` decides them, where the answer to a
//! batch of requests is computed ([`ServeConfig::route`]), what heavy work
//! watches while it runs, and what the server says while it drains at
//! shutdown. A driver only says how its runtime does each step
//! ([`AsyncServe`], [`Serve`]): how it reads, writes, waits for a permit,
//! races shutdown and runs blocking work.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::frame::LineError;
use ferry_engine::server::{Next, Pending, Serving};
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
    /// A connection just accepted from `peer`: with a `place` under the
    /// connection limit, greeted by implementation `name`; without one,
    /// answered `ERR BUSY` and closed. The place goes with the connection.
    pub fn admit<P>(&self, peer: SocketAddr, place: Option<P>, name: &str) -> (Option<P>, Serving<Batch>) {
        let now = Instant::now();
        let serving = match place {
            Some(_) => Serving::new(peer, name, self.idle_timeout, now),
            None => Serving::busy(peer, self.max_connections, now),
        };
        (place, serving)
    }

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
    ) -> io::Result<Route> {
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
    ) -> io::Result<Blocking> {
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

/// How a read of request lines ended: whole lines are in `pending`, or
/// why not.
pub type Read = Result<(), LineError<Infallible>>;

/// How an async driver does each step of one connection on a server: each
/// method a call of its runtime, nothing decided. [`serve_async`] asks for
/// the steps in the order [`Serving`] decides.
// The futures are awaited where they are made, by the connection's own
// task, so no `Send` bound is needed on them.
#[allow(async_fn_in_trait)]
pub trait AsyncServe {
    /// A permit of the runtime's semaphore for heavy work.
    type Permit: Send + 'static;
    /// Writes `batch`, each part taken by the peer within `within`.
    async fn write(&mut self, batch: Batch, within: Duration) -> io::Result<()>;
    /// Reads request lines into `pending` until `deadline`, racing
    /// shutdown: `None` when shutdown came first.
    async fn read(&mut self, deadline: Instant, pending: &mut Pending) -> Option<Read>;
    /// Waits for a heavy permit until `deadline`, racing shutdown: `None`
    /// when shutdown came first, `Some(None)` when no permit came free.
    async fn permit(&mut self, deadline: Instant) -> Option<Option<Self::Permit>>;
    /// Runs `work` where blocking is allowed, and waits for it.
    async fn blocking(&mut self, work: Blocking) -> io::Result<(Batch, Pending)>;
    /// The connection's socket, which heavy work watches for the peer leaving.
    fn socket(&self) -> BorrowedFd<'_>;
    /// Closes gracefully: FIN, then a brief drain.
    async fn close(self);
}

/// Serves one connection with an async `driver` until [`Serving`] says it
/// is done. `shutting_down` is the driver's shutdown switch, asked between
/// requests and, on the blocking pool, between chunks of heavy work.
pub async fn serve_async(
    config: &Arc<ServeConfig>,
    mut serving: Serving<Batch>,
    mut driver: impl AsyncServe,
    shutting_down: impl Fn() -> bool + Clone + Send + Sync + 'static,
) -> io::Result<()> {
    loop {
        match serving.next(Instant::now(), shutting_down()) {
            Next::Write { batch, within } => {
                let written = driver.write(batch, within).await;
                serving.on_written(written, Instant::now())?;
            }
            Next::Read { deadline } => {
                let read = driver.read(deadline, serving.pending()).await;
                serving.on_read(read)?;
            }
            Next::Answer { heavy, deadline } => {
                // A heavy batch first waits, on the event loop and not in the
                // blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let permit = match heavy {
                    false => None,
                    true => match driver.permit(deadline).await {
                        Some(permit) => permit,
                        None => return Ok(()),
                    },
                };
                // Hot files are answered here, where they cannot block; the
                // rest on the blocking pool, one trip for the whole batch.
                let pending = serving.take_pending();
                let answered = match config.route(pending, permit, deadline, driver.socket(), shutting_down.clone())? {
                    Route::Ready(batch, rest) => (batch, rest),
                    Route::Blocking(work) => driver.blocking(work).await?,
                };
                serving.on_answered(answered);
            }
            Next::Close => {
                driver.close().await;
                return Ok(());
            }
            Next::Stop => return Ok(()),
        }
    }
}

/// How a blocking driver (ferry-std) does each step of one connection:
/// [`AsyncServe`], on a thread of its own, which may block.
pub trait Serve {
    /// A permit of the driver's semaphore for heavy work.
    type Permit: Send + 'static;
    /// Writes `batch`, each part taken by the peer within `within`.
    fn write(&mut self, batch: Batch, within: Duration) -> io::Result<()>;
    /// Reads request lines into `pending` until `deadline`; at shutdown the
    /// read sees the end of the stream.
    fn read(&mut self, deadline: Instant, pending: &mut Pending) -> Read;
    /// Waits for a heavy permit until `deadline`: `None` when shutdown came
    /// first, `Some(None)` when no permit came free.
    fn permit(&mut self, deadline: Instant) -> Option<Option<Self::Permit>>;
    /// The connection's socket, which heavy work watches for the peer leaving.
    fn socket(&self) -> BorrowedFd<'_>;
    /// Closes gracefully: FIN, then a brief drain.
    fn close(self);
}

/// [`serve_async`], with a blocking `driver` whose thread answers every
/// batch itself: it needs no pool, and no path that avoids one.
pub fn serve(
    config: &Arc<ServeConfig>,
    mut serving: Serving<Batch>,
    mut driver: impl Serve,
    shutting_down: impl Fn() -> bool + Clone + Send + Sync + 'static,
) -> io::Result<()> {
    loop {
        match serving.next(Instant::now(), shutting_down()) {
            Next::Write { batch, within } => {
                let written = driver.write(batch, within);
                serving.on_written(written, Instant::now())?;
            }
            Next::Read { deadline } => {
                let read = driver.read(deadline, serving.pending());
                serving.on_read(Some(read))?;
            }
            Next::Answer { heavy, deadline } => {
                let permit = match heavy {
                    false => None,
                    true => match driver.permit(deadline) {
                        Some(permit) => permit,
                        None => return Ok(()),
                    },
                };
                let pending = serving.take_pending();
                let work = config.blocking(pending, permit, deadline, driver.socket(), shutting_down.clone())?;
                serving.on_answered(work.run());
            }
            Next::Close => {
                driver.close();
                return Ok(());
            }
            Next::Stop => return Ok(()),
        }
    }
}
