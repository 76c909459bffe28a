//! The client's saving, the compio way ([`AsyncSave`]): what a received
//! body is written to.
//!
//! The session decides every step of the conversation and what each result
//! means; `ferry_app::link::Client` does its steps on a [`Connection`]. What
//! is compio's own is saving: bodies are written with ring operations at
//! the file's offset, gathered into writes of 512 KiB for a file (1 MiB for
//! stdout or a device: `ferry_app::spool::spool_buffer`, as the other
//! async clients' pool writes); opening and committing (`fsync`, rename) go
//! to the blocking pool whole.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::driver::op::{Write, WriteAt};
use compio::driver::{SharedFd, ToSharedFd};
use compio::io::AsyncWrite;
use ferry_app::Item;
use ferry_app::link::AsyncSave;
use ferry_app::spool::spool_buffer;
use ferry_engine::body::BodyError;
use ferry_engine::client::SaveError;

use crate::connection::Connection;
use crate::pool::blocking;

impl AsyncSave for Connection {
    type File = Sink;

    async fn open(&mut self, item: &Item, len: u64) -> Result<Sink, SaveError> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let gather = spool_buffer(&item.dest);
        blocking(move || dest.open(offset, len)).await.map(|file| Sink::new(file, gather))
    }

    async fn receive_into(
        &mut self,
        len: u64,
        file: Option<&mut Sink>,
        each: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError> {
        match file {
            Some(file) => {
                let gather = file.gather;
                self.receive_with(len, Some(file), each, timeout, gather).await
            }
            None => self.receive_with(len, None::<&mut Sink>, each, timeout, 0).await,
        }
    }

    async fn commit(&mut self, item: &Item, file: Sink, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let file = file.into_file().map_err(|e| SaveError::io(item.dest.name(), e))?;
        let committing = item.dest.clone();
        blocking(move || committing.commit(file, digest.as_ref())).await
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        Ok(blocking(work).await)
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
    /// How many bytes a write gathers.
    gather: usize,
}

impl Sink {
    fn new(file: File, gather: usize) -> Sink {
        let at = rustix::fs::seek(&file, rustix::fs::SeekFrom::Current(0)).ok();
        Sink { fd: SharedFd::new(file), at, gather }
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
