//! The client: [`ferry_engine::client::Session`]'s steps on compio.
//!
//! The session decides every step of the conversation and what each result
//! means; `Session::run_async` (called from `runtime.rs`) asks for the steps
//! and hands back the results. This file only does the steps: write, read
//! with a deadline on each wait, open and commit files.
//! Bodies are written with ring operations at the file's offset, the
//! buffer going back and forth between the socket and the file; opening
//! and committing (`fsync`, rename) go to the blocking pool whole.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::driver::op::{Write, WriteAt};
use compio::driver::{SharedFd, ToSharedFd};
use compio::io::AsyncWrite;
use ferry_app::{Item, Tally};
use ferry_engine::body::BodyError;
use ferry_engine::client::{AsyncSteps, NotReceived, Received, SaveError};
use ferry_engine::frame::{LineError, ParseLine};

use crate::connection::{Connection, Drain};
use crate::pool::blocking;

/// A connection to a server, and how long each wait on it may take.
#[derive(Debug)]
pub struct Client {
    /// The connection, made by [`Connection::connect`].
    pub connection: Connection,
    /// The client's `--timeout`.
    pub timeout: Duration,
}

impl AsyncSteps for Client {
    type Item = Item;
    type File = Sink;

    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.connection.read_line(Instant::now() + self.timeout, parse).await
    }

    async fn send(&mut self, requests: &[u8]) -> io::Result<()> {
        self.connection.write_all(requests.to_vec(), self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<Sink>, NotReceived> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = blocking(move || dest.open(offset, len)).await;
        let mut sink = Sink::new(opened.map_err(NotReceived::Unopened)?);
        let mut tally = Tally::new(item, len, hash);
        let read = self.connection.read_body(len, &mut sink, |chunk| tally.chunk(chunk), self.timeout).await;
        // Each write has completed before the next read: nothing to flush.
        tally.finish(read, Ok(()), sink)
    }

    async fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError> {
        self.connection.read_small(len, self.timeout).await
    }

    async fn discard(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError> {
        self.connection.read_body(len, &mut Drain, each, self.timeout).await
    }

    async fn commit(&mut self, item: &Item, file: Sink, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let file = file.into_file().map_err(|e| SaveError::io(item.dest.name(), e))?;
        let committing = item.dest.clone();
        blocking(move || committing.commit(file, digest.as_ref())).await
    }
}

/// Where a body goes, written by the kernel from the buffer it is handed.
/// A file (the `.part`, `/dev/null`, standard output redirected to a file)
/// is written at offsets, from where it stood when opened; a pipe, socket
/// or terminal, which has no offsets, in order.
#[derive(Debug)]
pub struct Sink {
    fd: SharedFd<File>,
    at: Option<u64>,
}

impl Sink {
    fn new(file: File) -> Sink {
        let at = rustix::fs::seek(&file, rustix::fs::SeekFrom::Current(0)).ok();
        Sink { fd: SharedFd::new(file), at }
    }

    /// The file back, for committing: every write on it has completed.
    fn into_file(self) -> io::Result<File> {
        match self.fd.try_unwrap() {
            Ok(file) => Ok(file),
            Err(shared) => shared.as_fd().try_clone_to_owned().map(File::from),
        }
    }
}

impl AsyncWrite for Sink {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let fd = self.fd.to_shared_fd();
        let written = match self.at {
            Some(at) => compio::runtime::submit(WriteAt::new(fd, at, buf)).await.into_inner(),
            None => compio::runtime::submit(Write::new(fd, buf)).await.into_inner(),
        };
        if let (Some(at), BufResult(Ok(n), _)) = (&mut self.at, &written) {
            *at += *n as u64;
        }
        written
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}
