//! The shutdown switch, as a cancellation token that tasks can test and
//! await, in the manner of tokio's mini-redis; Ctrl-C and SIGTERM turn it
//! on ([`ferry_app::signals`]).

use ferry_app::switch::Trigger;
use tokio_util::sync::CancellationToken;

/// A one-way switch from "serving" to "shutting down", shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Completes when the switch is on. Cancel-safe, so it can race any
    /// other future in `select!`.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}

impl Trigger for Shutdown {
    fn trigger(&self) {
        self.token.cancel();
    }

    fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }
}
