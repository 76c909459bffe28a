//! What a server decides the same way on every runtime: the loop that does
//! one connection's steps ([`serve_async`], [`serve`]) in the order
//! `ferry_engine::server::Serving` decides them, where the answer to a
//! batch of requests is computed ([`ServeConfig::route`]), what heavy work
//! watches while it runs, and what the server says while it drains at
//! shutdown. A driver only says how its runtime does each step: how its
//! connection reads and writes ([`crate::link`]), and how its server waits
//! for shutdown or a permit and runs blocking work ([`AsyncServer`],
//! [`Server`]).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use ferry_engine::server::{Next, Pending, Serving};
use ferry_share::{Batch, Work};

use crate::link::{AsyncLink, Link};
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
            Some(_) => Serving::new(peer, name, self.idle_timeout, now).requiring(self.token.clone()),
            None => Serving::busy(peer, self.max_connections, now),
        };
        (place, serving)
    }

    /// How long a connection's TLS handshake may take: the idle timeout,
    /// or for one past the limit the second its `ERR BUSY` has.
    pub fn handshake_within(&self, serving: &Serving<Batch>) -> std::time::Duration {
        if serving.is_busy() { ferry_engine::server::BUSY_WRITE } else { self.idle_timeout }
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

/// What an async server's connections share, each a call of its runtime:
/// the shutdown switch, the permits for heavy work, the blocking pool.
/// [`serve_async`] races every wait of a connection against
/// [`AsyncServer::stopping`].
// Awaited by the connection's own task, as `AsyncLink`'s methods are.
#[allow(async_fn_in_trait)]
pub trait AsyncServer {
    /// A permit of the runtime's semaphore for heavy work.
    type Permit: Send + 'static;
    /// Completes once the server is shutting down; safe to drop unfinished.
    async fn stopping(&self);
    /// A test of the shutdown switch that another thread can own: what
    /// heavy work asks between chunks.
    fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static;
    /// Waits for a heavy permit until `deadline`: `None` if none came free.
    async fn permit(&self, deadline: Instant) -> Option<Self::Permit>;
    /// Runs `work` where blocking is allowed, and waits for it.
    async fn blocking(&self, work: Blocking) -> io::Result<(Batch, Pending)>;
}

/// Runs `work` unless `stop` completes first: `None` then, and `work` is
/// dropped, so only for work that is safe to cut. Written with nothing but
/// `std`, it races futures of any runtime.
pub async fn unless<T>(stop: impl Future<Output = ()>, work: impl Future<Output = T>) -> Option<T> {
    let (mut stop, mut work) = (pin!(stop), pin!(work));
    poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        stop.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Serves one connection, `link`, on an async runtime until [`Serving`]
/// says it is done; an error that ends it is logged, never returned: it is
/// this connection's alone.
pub async fn serve_async(
    config: &Arc<ServeConfig>,
    serving: Serving<Batch>,
    link: impl AsyncLink,
    server: &impl AsyncServer,
) {
    if let Err(error) = serve_steps_async(config, serving, link, server).await {
        ended(&error);
    }
}

/// One connection's task on an async runtime: its link made (over TLS,
/// the handshake; `None` if that failed), then [`serve_async`], holding
/// `held` (its place under the connection limit, its token among the
/// tasks in flight) until the connection ends.
pub async fn serve_task<S: AsyncServer>(
    config: Arc<ServeConfig>,
    serving: Serving<Batch>,
    link: impl Future<Output = Option<impl AsyncLink>>,
    server: impl Deref<Target = S>,
    held: impl Sized,
) {
    if let Some(link) = link.await {
        serve_async(&config, serving, link, &*server).await;
    }
    drop(held);
}

/// [`serve_async`]'s loop: each step in the order [`Serving`] decides.
async fn serve_steps_async(
    config: &Arc<ServeConfig>,
    mut serving: Serving<Batch>,
    mut link: impl AsyncLink,
    server: &impl AsyncServer,
) -> io::Result<()> {
    let shutting_down = server.watcher();
    loop {
        match serving.next(Instant::now(), shutting_down()) {
            Next::Write { batch, within } => {
                let written = link.write_batch(batch, within).await;
                serving.on_written(written, Instant::now())?;
            }
            Next::Read { deadline } => {
                // Reading is cancel-safe: shutdown loses nothing but the
                // wait, and a wait ended by shutdown is no timeout.
                let read = unless(server.stopping(), link.read_requests(deadline, serving.pending())).await;
                serving.on_read(read)?;
            }
            Next::Answer { heavy, deadline } => {
                // A heavy batch first waits, on the event loop and not in the
                // blocking pool, for one of the server's permits, at most
                // until its deadline (without one it is answered TIMEOUT).
                let permit = match heavy {
                    false => None,
                    true => match unless(server.stopping(), server.permit(deadline)).await {
                        Some(permit) => permit,
                        None => return Ok(()),
                    },
                };
                // Hot files are answered here, where they cannot block; the
                // rest on the blocking pool, one trip for the whole batch.
                let pending = serving.take_pending();
                let answered = match config.route(pending, permit, deadline, &link, shutting_down.clone())? {
                    Route::Ready(batch, rest) => (batch, rest),
                    Route::Blocking(work) => server.blocking(work).await?,
                };
                serving.on_answered(answered);
            }
            Next::Close => {
                link.close().await;
                return Ok(());
            }
            Next::Stop => return Ok(()),
        }
    }
}

/// What a blocking server's connections share (ferry-std, a thread per
/// connection): [`AsyncServer`] without a pool, since the connection's
/// thread does blocking work itself.
pub trait Server {
    /// A permit of the driver's semaphore for heavy work.
    type Permit: Send + 'static;
    /// [`AsyncServer::watcher`].
    fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static;
    /// Waits for a heavy permit until `deadline`: `None` when shutdown came
    /// first, `Some(None)` when no permit came free.
    fn permit(&self, deadline: Instant) -> Option<Option<Self::Permit>>;
}

/// [`serve_async`], with a blocking `link` whose thread answers every
/// batch itself: it needs no pool, and no path that avoids one. At
/// shutdown its reads see the end of the stream.
pub fn serve(config: &Arc<ServeConfig>, serving: Serving<Batch>, link: impl Link, server: &impl Server) {
    if let Err(error) = serve_steps(config, serving, link, server) {
        ended(&error);
    }
}

/// [`serve`]'s loop.
fn serve_steps(
    config: &Arc<ServeConfig>,
    mut serving: Serving<Batch>,
    mut link: impl Link,
    server: &impl Server,
) -> io::Result<()> {
    let shutting_down = server.watcher();
    loop {
        match serving.next(Instant::now(), shutting_down()) {
            Next::Write { batch, within } => {
                let written = link.write_batch(batch, within);
                serving.on_written(written, Instant::now())?;
            }
            Next::Read { deadline } => {
                let read = link.read_requests(deadline, serving.pending());
                serving.on_read(Some(read))?;
            }
            Next::Answer { heavy, deadline } => {
                let permit = match heavy {
                    false => None,
                    true => match server.permit(deadline) {
                        Some(permit) => permit,
                        None => return Ok(()),
                    },
                };
                let pending = serving.take_pending();
                let work = config.blocking(pending, permit, deadline, &link, shutting_down.clone())?;
                serving.on_answered(work.run());
            }
            Next::Close => {
                link.close();
                return Ok(());
            }
            Next::Stop => return Ok(()),
        }
    }
}

/// Logs the end of a connection by an error: only in debug, because
/// clients that leave are routine.
fn ended(error: &io::Error) {
    tracing::debug!(%error, "connection ended");
}
