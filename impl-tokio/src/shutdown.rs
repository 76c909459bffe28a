//! Ctrl-C and SIGTERM, as a cancellation token that tasks can test and
//! await, in the manner of tokio's mini-redis.

use tokio::signal::unix::{SignalKind, signal};
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

    /// Turns the switch on and wakes every waiter.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the switch is on.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the switch is on. Cancel-safe, so it can race any
    /// other future in `select!`.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// Turns the switch on at the first Ctrl-C or SIGTERM. A second one
    /// exits at once, for a user who does not want to wait for transfers.
    pub fn on_signals(&self) -> std::io::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let signal = tokio::select! {
                    _ = interrupt.recv() => 2,
                    _ = terminate.recv() => 15,
                };
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
