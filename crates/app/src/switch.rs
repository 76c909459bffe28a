//! The shutdown switch and the connections in flight, for the runtimes
//! whose futures run on any executor (smol, async-std, compio): both are a
//! channel that nobody sends on. `recv` waits until the last sender is
//! dropped, and then every receiver, on every thread, present and future,
//! sees it closed at once. (`async-channel` is the channel smol and
//! async-std re-export as their own, and it works on compio too.) tokio has
//! its own (`CancellationToken`, `TaskTracker`); std uses a `Condvar`.

use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};

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

    /// Turns the switch on and wakes every waiter.
    pub fn trigger(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// A test of the switch that another thread can own: what heavy work
    /// asks between chunks.
    pub fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static {
        let switch = self.clone();
        move || switch.is_triggered()
    }

    /// Whether the switch is on.
    pub fn is_triggered(&self) -> bool {
        self.receiver.is_closed()
    }

    /// Completes when the switch is on.
    pub async fn wait(&self) {
        // Nothing is ever sent: `recv` returns only once the channel closes.
        let _ = self.receiver.recv().await;
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
