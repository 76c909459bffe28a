//! The client: [`ferry_engine::client::Session`]'s steps on blocking std I/O.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run` (called from `runtime.rs`) asks for the steps and
//! hands back the results. This file only does the steps: write, read with
//! a deadline on each wait, open and commit files. Everything runs on the
//! calling thread: one connection has nothing to overlap with.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use ferry_app::{Item, Tally};
use ferry_engine::body::BodyError;
use ferry_engine::client::{NotReceived, Received, SaveError, Steps};
use ferry_engine::frame::{LineError, ParseLine};

use crate::connection::Connection;

/// A connection to a server, and how long each wait on it may take.
#[derive(Debug)]
pub struct Client {
    /// The connection, made by [`Connection::connect`].
    pub connection: Connection,
    /// The client's `--timeout`.
    pub timeout: Duration,
}

impl Steps for Client {
    type Item = Item;
    type File = File;

    fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse)
    }

    fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests, self.timeout)
    }

    fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<File>, NotReceived> {
        let mut sink = item.dest.open(item.offset, len).map_err(NotReceived::Unopened)?;
        let mut tally = Tally::new(item, len, hash);
        let read = self.connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), self.timeout);
        // Written straight to the file: there is nothing to flush.
        tally.finish(read, Ok(()), sink)
    }

    fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError> {
        self.connection.read_small(len, self.timeout)
    }

    fn discard(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError> {
        self.connection.read_body(len, &mut io::sink(), each, self.timeout)
    }

    fn commit(&mut self, item: &Item, file: File, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let dest = &item.dest;
        dest.commit(file, digest.as_ref())
    }
}
