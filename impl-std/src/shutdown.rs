//! The shutdown switch, as a flag that threads can test and wait for;
//! Ctrl-C and SIGTERM turn it on ([`ferry_app::signals`]).

use std::sync::{Arc, Condvar, Mutex};

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

    /// A test of the switch that another thread can own: what heavy work
    /// asks between chunks.
    pub fn watcher(&self) -> impl Fn() -> bool + Clone + Send + Sync + 'static {
        let switch = self.clone();
        move || switch.is_triggered()
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
}
