//! What a client does that a server never does, with blocking std I/O
//! ([`Save`]): receive bodies, and save them.
//!
//! The session decides every step of the conversation and what each result
//! means; `ferry_app::link::Client` does its steps on a [`Connection`]. What
//! is std's own is here: a body read under the socket's read timeout and
//! written straight into the file, on the calling thread, since one
//! connection has nothing to overlap with.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use ferry_app::Item;
use ferry_app::link::Save;
use ferry_engine::body::{BODY_BUFFER, BodyError, Incoming};
use ferry_engine::client::SaveError;

use crate::connection::Connection;

impl Save for Connection {
    type File = File;

    fn open(&mut self, item: &Item, len: u64) -> Result<File, SaveError> {
        item.dest.open(item.offset, len)
    }

    /// One read waits at most `timeout`, the socket's read timeout.
    fn receive_into(
        &mut self,
        len: u64,
        file: Option<&mut File>,
        mut each: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let mut nowhere = io::sink();
        let sink: &mut dyn Write = match file {
            Some(file) => file,
            None => &mut nowhere,
        };
        let (mut body, first) = Incoming::start(len, timeout, &mut self.buffer, Instant::now());
        sink.write_all(&first).map_err(|e| body.sink_failed(first.len(), e))?;
        each(&first);
        // One read waits at most `timeout`: set once, not before every read
        // (a system call each). A read begun late in a window may then run
        // past its end, so a stalled body fails within two windows.
        self.read_timeout(timeout).map_err(|e| BodyError::socket(0, e))?;
        let mut chunk = vec![0; BODY_BUFFER];
        while let Some(want) = body.want(chunk.len()) {
            let n = body.on_read(Some(self.wire.read(&mut chunk[..want])), Instant::now())?;
            sink.write_all(&chunk[..n]).map_err(|e| body.sink_failed(n, e))?;
            each(&chunk[..n]);
        }
        Ok(())
    }

    fn commit(&mut self, item: &Item, file: File, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        item.dest.commit(file, digest.as_ref())
    }
}
