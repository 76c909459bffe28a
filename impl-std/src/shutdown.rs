//! The shutdown switch, as a flag that threads can test and wait for;
//! Ctrl-C and SIGTERM turn it on ([`ferry_app::signals`]).

use std::sync::{Arc, Condvar, Mutex};

use ferry_app::switch::Trigger;

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

    /// Blocks until the switch is on.
    pub fn wait(&self) {
        let (flag, changed) = &*self.inner;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let _on = changed.wait_while(guard, |on| !*on).unwrap_or_else(|e| e.into_inner());
    }
}

impl Trigger for Shutdown {
    fn trigger(&self) {
        let (flag, changed) = &*self.inner;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }

    fn is_triggered(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
