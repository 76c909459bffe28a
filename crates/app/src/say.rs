//! Everything the program says on stderr, written so that saying it can
//! never change what the program does.
//!
//! `eprintln!` panics when stderr is closed or its reader is gone (EPIPE),
//! and so does `tracing-subscriber`'s own report of a failed log write: a
//! server run as `ferry serve DIR 2>&1 | grep ...` would lose the thread
//! that logged, and with its signal thread the only way to stop it, once
//! `grep` exits. Here a failed write loses the message and is counted;
//! nothing else happens.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Messages and log lines that could not be written to stderr.
static LOST: AtomicU64 = AtomicU64::new(0);

/// How many messages and log lines could not be written since the start.
pub fn lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// Writes `text` to stderr whole, or counts it as lost.
pub fn write(text: &[u8]) {
    if io::stderr().lock().write_all(text).is_err() {
        LOST.fetch_add(1, Ordering::Relaxed);
    }
}

/// Like `eprintln!`, but a closed or broken stderr loses the line instead
/// of ending the thread.
#[macro_export]
macro_rules! say {
    () => { $crate::say::write(b"\n") };
    ($($arg:tt)*) => { $crate::say::write(format!("{}\n", format_args!($($arg)*)).as_bytes()) };
}

/// The log's writer: stderr, whose failures are counted, never reported
/// (there is nowhere to report them) and never returned to the logger.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}
