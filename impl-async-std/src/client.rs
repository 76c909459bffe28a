//! The client's saving, the async-std way ([`AsyncSave`]): what a received
//! body is written to.
//!
//! The session decides every step of the conversation and what each result
//! means; `ferry_app::link::Client` does its steps on a [`Connection`]. What
//! is async-std's own is saving: files are written through
//! `async_std::fs::File`, one blocking-pool trip per write, hence the
//! `BufWriter` of [`SPOOL_BUFFER`], the size tokio's and smol's clients
//! hand to their pools for a stream (`ferry_app::spool`, whose `Spool`
//! measured slower here: README, "Measurements behind design choices"); a
//! file keeps it too, as the half that serves tokio and smol better on disk
//! measured slower for this client there (benches/README.md, "Measurements
//! behind design choices"); opening and committing go to
//! `task::spawn_blocking` whole.

use std::io;
use std::os::fd::OwnedFd;

use async_std::fs::File;
use async_std::io::BufWriter;
use async_std::task::spawn_blocking;
use ferry_app::Item;
use ferry_app::futures::FuturesSave;
use ferry_app::spool::SPOOL_BUFFER;
use ferry_engine::client::SaveError;

use crate::connection::Connection;

impl FuturesSave for Connection {
    type File = BufWriter<File>;

    async fn open(&mut self, item: &Item, len: u64) -> Result<BufWriter<File>, SaveError> {
        let (dest, offset) = (item.dest.clone(), item.offset);
        let opened = spawn_blocking(move || dest.open(offset, len)).await?;
        Ok(BufWriter::with_capacity(SPOOL_BUFFER, File::from(opened)))
    }

    async fn commit(&mut self, item: &Item, file: BufWriter<File>, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        let dest = &item.dest;
        // Back to a std `File`. (async-std's flushes in its `Drop`, with
        // `block_on`; it was flushed when the body ended.)
        // (Its error type keeps the cause private: say what failed.)
        let unflushed = |_| SaveError::io(dest.name(), io::Error::other("the last writes could not be flushed"));
        let file = file.into_inner().await.map_err(unflushed)?;
        let (committing, file) = (dest.clone(), std::fs::File::from(OwnedFd::from(file)));
        spawn_blocking(move || committing.commit(file, digest.as_ref())).await
    }

    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        Ok(spawn_blocking(work).await)
    }
}
