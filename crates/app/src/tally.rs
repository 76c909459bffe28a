//! A body's bytes counted as they arrive: the progress bar, and the digest
//! of a stream being verified (bytes sent to stdout cannot be read back).
//! Every client driver's `receive` feeds one.

use std::io;

use ferry_engine::body::{BodyCause, BodyError};
use ferry_engine::client::{NotReceived, Received};

use crate::progress::Progress;
use crate::save::{Dest, Item};

/// Counts a body's bytes as they arrive: the progress bar, and the digest of
/// a stream being verified (bytes sent to stdout cannot be read back).
#[derive(Debug)]
pub struct Tally {
    progress: Progress,
    hasher: Option<blake3::Hasher>,
    stream: bool,
    count: u64,
}

impl Tally {
    /// A tally for `item`'s body of `len` bytes; `hash` as the session's
    /// `Step::Receive` says.
    pub fn new(item: &Item, len: u64, hash: bool) -> Tally {
        let stream = matches!(item.dest, Dest::Stream(_));
        Tally { progress: item.progress(len), hasher: hash.then(blake3::Hasher::new), stream, count: 0 }
    }

    /// Counts `chunk`.
    pub fn chunk(&mut self, chunk: &[u8]) {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(chunk);
        }
        self.progress.advance(chunk.len() as u64);
        self.count += chunk.len() as u64;
    }

    /// What the session gets back once the body was read into `sink`
    /// (`read`) and the sink flushed (`flushed`): the body, or where it
    /// stopped. The bar is finished, or left where the body stopped.
    pub fn finish<F>(
        self,
        read: Result<(), BodyError>,
        flushed: io::Result<()>,
        sink: F,
    ) -> Result<Received<F>, NotReceived> {
        let whole =
            read.and_then(|()| flushed.map_err(|e| BodyError { received: self.count, cause: BodyCause::Sink(e) }));
        match whole {
            Ok(()) if self.stream => {
                self.progress.finish();
                Ok(Received::Stream(self.hasher.map(|h| h.finalize())))
            }
            Ok(()) => {
                self.progress.finish();
                Ok(Received::File(sink))
            }
            Err(error) => {
                self.progress.abandon();
                Err(NotReceived::Cut(error))
            }
        }
    }
}
