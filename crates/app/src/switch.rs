//! The shutdown switch and the connections in flight, for the runtimes
//! whose futures run on any executor (smol, async-std, compio): both are a
//! channel that nobody sends on. `recv` waits until the last sender is
//! dropped, and then every receiver, on every thread, present and future,
//! sees it closed at once. (`async-channel` is the channel smol and
//! async-std re-export as their own, and it works on compio too.) tokio has
//! its own (`CancellationToken`, `TaskTracker`); std uses a `Condvar`.
//! Every switch answers to [`Trigger`].
//!
//! The same runtimes share their semaphore (`async-lock`'s, which smol
//! re-exports as `smol::lock`), so what their connections share is written
//! here once too ([`Shared`]); each says only how it sleeps and runs
//! blocking work ([`AnyExecutor`]).

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_lock::{Semaphore, SemaphoreGuardArc};
use ferry_engine::server::Pending;
use ferry_share::Batch;

use crate::net::AcceptErrors;
use crate::serve::{AsyncServer, Blocking, unless};

/// A one-way switch from "serving" to "shutting down", whatever a runtime
/// builds it from: what the shared code asks of one.
pub trait Trigger: Clone + Send + Sync + 'static {
    /// Turns the switch on and wakes every waiter.
    fn trigger(&self);

    /// Whether the switch is on.
    fn is_triggered(&self) -> bool;

    /// What turns the switch on from another thread: for the signals.
    fn trigger_fn(&self) -> impl Fn() + Send + 'static {
        let switch = self.clone();
        move || switch.trigger()
    }

    /// A test of the switch that another thread can own: what heavy work
    /// asks between chunks.
    fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static {
        let switch = self.clone();
        move || switch.is_triggered()
    }
}

/// A one-way switch from "serving" to "shutting down", shared by clones.
#[derive(Debug, Clone)]
pub struct Switch {
    sender: Arc<Mutex<Option<Sender<()>>>>,
    receiver: Receiver<()>,
}

impl Switch {
    /// A switch that is off.
    pub fn new() -> Switch {
        let (sender, receiver) = async_channel::bounded(1);
        Switch { sender: Arc::new(Mutex::new(Some(sender))), receiver }
    }

    /// Completes when the switch is on.
    pub async fn wait(&self) {
        // Nothing is ever sent: `recv` returns only once the channel closes.
        let _ = self.receiver.recv().await;
    }
}

impl Trigger for Switch {
    fn trigger(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn is_triggered(&self) -> bool {
        self.receiver.is_closed()
    }
}

impl Default for Switch {
    fn default() -> Switch {
        Switch::new()
    }
}

/// The connections in flight, so that shutdown can wait for the last: each
/// task holds a [`Tasks::track`] token until it ends.
#[derive(Debug)]
pub struct Tasks {
    open: Sender<()>,
    closed: Receiver<()>,
}

/// What a connection's task holds while it runs.
#[derive(Debug)]
pub struct Tracked(#[allow(dead_code)] Sender<()>);

impl Tasks {
    /// None in flight yet.
    pub fn new() -> Tasks {
        let (open, closed) = async_channel::bounded(1);
        Tasks { open, closed }
    }

    /// A token for one more connection's task to hold.
    pub fn track(&self) -> Tracked {
        Tracked(self.open.clone())
    }

    /// No more connections: says how many are in flight, for the grace
    /// period's log, and returns what to wait on.
    pub fn close(self) -> Closing {
        drop(self.open);
        crate::serve::draining(self.closed.sender_count());
        Closing { closed: self.closed }
    }
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks::new()
    }
}

/// The connections still in flight after [`Tasks::close`].
#[derive(Debug)]
pub struct Closing {
    closed: Receiver<()>,
}

impl Closing {
    /// Completes when the last connection's task has ended.
    pub async fn done(&self) {
        // Nothing is sent: `recv` returns once every token is gone.
        let _ = self.closed.recv().await;
    }

    /// The grace period is over with connections unfinished: says so.
    pub fn unfinished(&self) {
        crate::serve::grace_over(self.closed.sender_count());
    }
}

/// How a runtime whose futures run on any executor sleeps and runs
/// blocking work: all that [`Shared`] needs of it.
#[allow(async_fn_in_trait)]
pub trait AnyExecutor {
    /// Completes at `deadline`.
    async fn sleep_until(deadline: Instant);
    /// Runs `work` on the runtime's blocking pool, and waits for it.
    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T;
}

/// What every connection of a server on runtime `R` shares: the switch,
/// and `async-lock`'s semaphore for heavy work, whose `Arc` permits a
/// connection can hold across the blocking pool.
pub struct Shared<R> {
    /// The server's switch (on compio, the thread's own).
    pub shutdown: Switch,
    heavy: Arc<Semaphore>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Shared<R> {
    /// Shares `shutdown` and the permits `heavy`.
    pub fn new(shutdown: Switch, heavy: Arc<Semaphore>) -> Shared<R> {
        Shared { shutdown, heavy, runtime: PhantomData }
    }
}

impl<R: AnyExecutor> Shared<R> {
    /// The next connection `accept` brings, or `None` once shutdown has
    /// begun. A failed accept (out of descriptors, say) is waited out as
    /// `errors` says before the next.
    pub async fn accept<S>(
        &self,
        errors: &mut AcceptErrors,
        mut accept: impl AsyncFnMut() -> io::Result<(S, SocketAddr)>,
    ) -> Option<(S, SocketAddr)> {
        loop {
            let accepted = unless(self.shutdown.wait(), accept()).await?;
            match errors.check(accepted) {
                Ok(accepted) => return Some(accepted),
                Err(pause) => R::sleep_until(Instant::now() + pause).await,
            }
        }
    }

    /// After the accept loop: waits up to `grace` for the connections in
    /// `tasks` to finish, and says how many did not.
    pub async fn wind_down(&self, tasks: Tasks, grace: Duration) {
        let closing = tasks.close();
        if unless(R::sleep_until(Instant::now() + grace), closing.done()).await.is_none() {
            closing.unfinished();
        }
    }
}

impl<R: AnyExecutor> AsyncServer for Shared<R> {
    type Permit = SemaphoreGuardArc;

    async fn stopping(&self) {
        self.shutdown.wait().await;
    }

    fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static {
        Trigger::watcher(&self.shutdown)
    }

    async fn permit(&self, deadline: Instant) -> Option<SemaphoreGuardArc> {
        unless(R::sleep_until(deadline), self.heavy.acquire_arc()).await
    }

    async fn blocking(&self, work: Blocking) -> io::Result<(Batch, Pending)> {
        Ok(R::unblock(move || work.run()).await)
    }
}
