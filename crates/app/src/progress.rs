//! Progress bars on stderr, drawn only when stderr is a terminal, so
//! scripts, pipes and tests see clean output.

use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A progress bar for one body.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

/// Below this rate the bar says `stalled` rather than an estimate that
/// would read `eta 0s` or `eta 11h` for a body that is not moving.
const STALLED_BELOW: f64 = 1.0;

impl Progress {
    /// A bar for `name`, `total` bytes, of which `start` are already saved
    /// (a resumed download). Hidden when stderr is not a terminal, and when
    /// `visible` is false (the body itself is going to the terminal).
    pub fn new(name: &str, total: u64, start: u64, visible: bool) -> Progress {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if !bar.is_hidden() {
            // The rate and the time left count this run's bytes, not the
            // ones a resumed `.part` already held.
            let this_run = move |state: &ProgressState| {
                let secs = state.elapsed().as_secs_f64();
                if secs > 0.0 { state.pos().saturating_sub(start) as f64 / secs } else { 0.0 }
            };
            let style =
                ProgressStyle::with_template("{msg:.bold} [{bar:30}] {bytes}/{total_bytes} {rate} {eta_or_stalled}")
                    .map(|style| {
                        style
                            .progress_chars("=> ")
                            .with_key("rate", move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                                let _ = write!(out, "{}/s", HumanBytes(this_run(state) as u64));
                            })
                            .with_key("eta_or_stalled", move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                                eta_or_stalled(this_run(state), state, out)
                            })
                    })
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(name.to_owned());
            bar.set_position(start);
            bar.reset_elapsed();
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

/// The time left at `rate` bytes a second, or `stalled` below
/// [`STALLED_BELOW`].
fn eta_or_stalled(rate: f64, state: &ProgressState, out: &mut dyn std::fmt::Write) {
    let left = state.len().unwrap_or(0).saturating_sub(state.pos());
    let _ = if rate < STALLED_BELOW {
        write!(out, "stalled")
    } else {
        write!(out, "eta {}", indicatif::HumanDuration(Duration::from_secs_f64(left as f64 / rate)))
    };
}

/// A byte count for people: `100.00 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}
