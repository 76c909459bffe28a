//! Telling the user how each download went, and the exit status.

use std::process::ExitCode;

use ferry_engine::client::{ClientError, Outcomes};
use ferry_engine::show::escaped;

use crate::progress::human_bytes;

use super::*;

impl Outcomes<Item> for Report {
    fn record(&mut self, item: &Item, outcome: Result<Option<[u8; 32]>, ClientError>) {
        match outcome {
            Ok(digest) => self.saved(item, digest.as_ref()),
            Err(error) => self.failed(&error),
        }
    }
}

/// Tells the user how each item went and decides the exit status.
#[derive(Debug)]
pub struct Report {
    total: usize,
    saved: usize,
    failed: usize,
}

impl Report {
    /// A report for `total` items.
    pub fn new(total: usize) -> Report {
        Report { total, saved: 0, failed: 0 }
    }

    /// `item` was saved; `digest` is the server's, when it was verified
    /// against it. A resumed or verified file gets one line saying so, so
    /// that success is not silent where the user asked for more than a copy.
    pub fn saved(&mut self, item: &Item, digest: Option<&[u8; 32]>) {
        self.saved += 1;
        let mut done = Vec::new();
        if item.offset > 0 {
            done.push(format!("resumed at {}", human_bytes(item.offset)));
        }
        if let Some(digest) = digest {
            done.push(format!("verified BLAKE3 {}", blake3::Hash::from_bytes(*digest).to_hex()));
        }
        if !done.is_empty() {
            crate::say!("{}: {}", escaped(item.path.as_str()), done.join(", "));
        }
    }

    /// An item failed; the others go on.
    pub fn failed(&mut self, error: &ClientError) {
        crate::say!("error: {error}");
        self.failed += 1;
    }

    /// The connection failed: every item not yet reported failed with it.
    pub fn connection_failed(&mut self, error: &ClientError) {
        crate::say!("error: {error}");
        self.failed = self.total - self.saved;
    }

    /// 0 when everything was saved, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed == 0 && self.saved == self.total { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}
