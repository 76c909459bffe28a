//! Ctrl-C and SIGTERM, for every runtime: on a server the first starts a
//! graceful shutdown, the second exits at once; a client says what it keeps
//! and exits ([`on_interrupt`]).
//!
//! One thread of its own waits for them (`ferry-signals`), the same on every
//! runtime, and turns the driver's shutdown switch on. Why not each
//! runtime's own signal stream: what runs inside a signal handler must not
//! allocate, lock or touch thread state, and not every runtime's handler
//! keeps to that (compio's wakes a task from inside it). signal-hook's
//! handler only writes a byte to a pipe; everything else happens here, on an
//! ordinary thread, where a log line that cannot be written costs nothing
//! ([`crate::say`]). And the rule itself is then written once.

use std::io;
use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Calls `shutdown` at the first SIGINT or SIGTERM; at the second, exits at
/// once with `128 + signal`, for a user who does not want to wait for the
/// transfers in flight. `shutdown` runs on the signal thread: it must only
/// turn a switch on (a runtime's cancellation token, a channel, a flag),
/// never wait for anything.
pub fn on_signals(shutdown: impl Fn() + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new().name("ferry-signals".into()).spawn(move || {
        let mut seen = 0;
        for signal in signals.forever() {
            seen += 1;
            if seen > 1 {
                std::process::exit(128 + signal);
            }
            tracing::info!(signal, "shutting down; again to exit at once");
            shutdown();
        }
    })?;
    Ok(())
}

/// For a client: at the first SIGINT or SIGTERM, calls `last_words` (what
/// the user needs to know, such as how to resume) on the signal thread,
/// then exits with `128 + signal`, as a process the signal had killed
/// would.
pub fn on_interrupt(last_words: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new().name("ferry-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            last_words();
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}
