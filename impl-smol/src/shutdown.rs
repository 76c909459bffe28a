//! The shutdown switch, as a closed channel that tasks can test and
//! await; Ctrl-C and SIGTERM turn it on ([`ferry_app::signals`]).
//!
//! smol has no cancellation token; a channel that nobody sends on does the
//! job: `recv` waits until the last sender is dropped, and then every
//! receiver, present and future, sees it closed at once.

use std::sync::{Arc, Mutex};

use smol::channel::{Receiver, Sender};

/// A one-way switch from "serving" to "shutting down", shared by clones.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<Mutex<Option<Sender<()>>>>,
    receiver: Receiver<()>,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Shutdown {
        let (sender, receiver) = smol::channel::bounded(1);
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
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}
