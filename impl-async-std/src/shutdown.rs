//! Ctrl-C and SIGTERM, as a closed channel that tasks can test and await.
//!
//! async-std has no cancellation token; a channel that nobody sends on does
//! the job: `recv` waits until the last sender is dropped, and then every
//! receiver, present and future, sees it closed at once.

use std::sync::{Arc, Mutex};

use async_signal::{Signal, Signals};
use async_std::channel::{Receiver, Sender};
use async_std::stream::StreamExt;
use async_std::task;

/// A one-way switch from "serving" to "shutting down", shared by clones.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<Mutex<Option<Sender<()>>>>,
    receiver: Receiver<()>,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Shutdown {
        let (sender, receiver) = async_std::channel::bounded(1);
        Shutdown { sender: Arc::new(Mutex::new(Some(sender))), receiver }
    }

    /// Turns the switch on and wakes every waiter.
    pub fn trigger(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
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

    /// Turns the switch on at the first Ctrl-C or SIGTERM. A second one
    /// exits at once, for a user who does not want to wait for transfers.
    pub fn on_signals(&self) -> std::io::Result<()> {
        let mut signals = Signals::new([Signal::Int, Signal::Term])?;
        let shutdown = self.clone();
        // The handle is dropped: an async-std task runs on, detached, until
        // it ends (on smol, dropping a task cancels it).
        task::spawn(async move {
            let mut seen = 0;
            while let Some(Ok(signal)) = signals.next().await {
                let signal = if signal == Signal::Int { 2 } else { 15 };
                seen += 1;
                if seen > 1 {
                    std::process::exit(128 + signal);
                }
                tracing::info!(signal, "shutting down; again to exit at once");
                shutdown.trigger();
            }
        });
        Ok(())
    }
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}
