//! Progress bars on stderr, drawn only when stderr is a terminal, so
//! scripts, pipes and tests see clean output.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar for one body.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `name`, `total` bytes, of which `start` are already saved
    /// (a resumed download). Hidden when stderr is not a terminal.
    pub fn new(name: &str, total: u64, start: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if !bar.is_hidden() {
            let style = ProgressStyle::with_template(
                "{msg:.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(name.to_owned());
            bar.set_position(start);
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Progress { bar }
    }

    /// Counts `n` more bytes.
    pub fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    /// The body arrived whole.
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// The body did not arrive whole: leave the bar where it stopped.
    pub fn abandon(&self) {
        self.bar.abandon();
    }
}
