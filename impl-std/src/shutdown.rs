//! Ctrl-C and SIGTERM, as a flag that threads can test and wait for.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A one-way switch from "serving" to "shutting down", shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Turns the switch on and wakes every waiter.
    pub fn trigger(&self) {
        let (flag, changed) = &*self.inner;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }

    /// Whether the switch is on.
    pub fn is_triggered(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the switch is on.
    pub fn wait(&self) {
        let (flag, changed) = &*self.inner;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let _on = changed.wait_while(guard, |on| !*on).unwrap_or_else(|e| e.into_inner());
    }

    /// Turns the switch on at the first Ctrl-C or SIGTERM. A second one
    /// exits at once, for a user who does not want to wait for transfers.
    pub fn on_signals(&self) -> std::io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let shutdown = self.clone();
        thread::Builder::new().name("signals".into()).spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    std::process::exit(128 + signal);
                }
                tracing::info!(signal, "shutting down; again to exit at once");
                shutdown.trigger();
            }
        })?;
        Ok(())
    }
}
