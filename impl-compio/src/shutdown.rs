//! The shutdown switch, as a closed channel that every thread's tasks can
//! test and await; Ctrl-C and SIGTERM turn it on ([`ferry_app::signals`]:
//! compio's own signal wait wakes a task from inside the signal handler,
//! which is not safe there).
//!
//! compio has no cancellation token that crosses threads; a channel that
//! nobody sends on does the job, as on smol: `recv` waits until the last
//! sender is dropped, and then every receiver, on every thread, present and
//! future, sees it closed at once. `async-channel` works on any runtime.

use std::pin::pin;
use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender};
use futures_util::future::{Either, select};

/// A one-way switch from "serving" to "shutting down", shared by clones.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<Mutex<Option<Sender<()>>>>,
    receiver: Receiver<()>,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Shutdown {
        let (sender, receiver) = async_channel::bounded(1);
        Shutdown { sender: Arc::new(Mutex::new(Some(sender))), receiver }
    }

    /// Turns the switch on and wakes every waiter.
    pub fn trigger(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// A test of the switch that another thread can own: what heavy work
    /// asks between chunks.
    pub fn watcher(&self) -> impl Fn() -> bool + Send + Sync + 'static {
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

    /// Runs `work` unless the switch is turned on first: `None` then.
    pub async fn unless<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        match select(pin!(work), pin!(self.wait())).await {
            Either::Left((done, _)) => Some(done),
            Either::Right(((), _)) => None,
        }
    }

    /// A switch for this thread's tasks alone, turned on by a task of this
    /// thread when this one is. compio queues a wake-up from another thread
    /// in a bounded queue, and the thread that turns a shared switch on
    /// waits while that queue is full; thousands of connections woken at
    /// once from the signal's thread would fill it, and deadlock if the
    /// other thread is itself waiting on the channel's lock. Through a
    /// local switch, one wake-up crosses threads per thread, and the rest
    /// are local.
    pub fn local(&self) -> Shutdown {
        let local = Shutdown::new();
        let (global, turning) = (self.clone(), local.clone());
        compio::runtime::spawn(async move {
            global.wait().await;
            turning.trigger();
        })
        .detach();
        local
    }
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}
