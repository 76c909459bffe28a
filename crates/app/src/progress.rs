//! Progress bars on stderr, drawn only when stderr is a terminal, so
//! scripts, pipes and tests see clean output.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A progress bar for one body, or for a whole tree (`get -r`).
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    /// For a tree's bar: files done, and how many there are.
    files: Option<(Arc<AtomicUsize>, usize)>,
    /// A file's share of a tree's bar: its bytes count there, but its end
    /// does not end the bar.
    shared: bool,
}

/// Below this rate the bar says `stalled` rather than an estimate that
/// would read `eta 0s` or `eta 11h` for a body that is not moving.
const STALLED_BELOW: f64 = 1.0;

impl Progress {
    /// A bar for `name`, `total` bytes, of which `start` are already saved
    /// (a resumed download). Hidden when stderr is not a terminal, and when
    /// `visible` is false (the body itself is going to the terminal).
    pub fn new(name: &str, total: u64, start: u64, visible: bool) -> Progress {
        let progress = Progress::drawn(total, start, visible);
        progress.bar.set_message(name.to_owned());
        progress
    }

    /// One bar for a tree of `files` files, `total` bytes, on stderr when
    /// `visible` and stderr is a terminal: files done of all, bytes, rate
    /// and time left.
    pub fn tree(files: usize, total: u64, visible: bool) -> Progress {
        let mut progress = Progress::drawn(total, 0, visible);
        progress.files = Some((Arc::new(AtomicUsize::new(0)), files));
        progress.bar.set_message(format!("0/{files} files"));
        progress
    }

    /// What one file of a tree draws on: the tree's bar.
    pub fn part(&self) -> Progress {
        Progress { shared: true, ..self.clone() }
    }

    /// One more file of the tree is done (saved or failed).
    pub fn file_done(&self) {
        if let Some((done, files)) = &self.files {
            let done = done.fetch_add(1, Ordering::Relaxed) + 1;
            self.bar.set_message(format!("{done}/{files} files"));
        }
    }

    fn drawn(total: u64, start: u64, visible: bool) -> Progress {
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
            bar.set_position(start);
            bar.reset_elapsed();
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        Progress { bar, files: None, shared: false }
    }

    /// Counts `n` more bytes.
    pub fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    /// The body arrived whole (a tree's: every file is done).
    pub fn finish(&self) {
        if !self.shared {
            self.bar.finish();
        }
    }

    /// The body did not arrive whole: leave the bar where it stopped.
    pub fn abandon(&self) {
        if !self.shared {
            self.bar.abandon();
        }
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
