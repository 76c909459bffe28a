//! A body's bytes on their way to a file through a runtime's blocking pool,
//! for the async clients: gathered [`SPOOL_BUFFER`] bytes at a time, and
//! each full buffer handed, owned, to the pool to write while the next one
//! fills. Nothing is copied but into the buffer.
//!
//! The runtimes' own file adapters copy more: `tokio::fs::File` copies each
//! write into a buffer of its own, smol's `Unblock<File>` into a pipe and
//! out of it again on its thread; behind a `BufWriter` that was two and
//! three copies of every byte (README, "Measurements behind design
//! choices"). A driver wraps [`Spool`] in its runtime's `AsyncWrite` and
//! passes in how to run a write on its pool ([`write_out`] under
//! `spawn_blocking` or `unblock`); which futures come back, and how to poll
//! them, is the only thing that differs.

use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ferry_engine::client::SaveError;

use crate::save::Dest;

/// How many received bytes are gathered before they go to stdout or a
/// device: each write is a trip to the blocking pool, and 64 KiB trips were
/// measured much slower (README, "Measurements behind design choices", has
/// the figures).
pub const SPOOL_BUFFER: usize = 1024 * 1024;

/// How many are gathered for a file (a `.part`): half as many. A write into
/// the page cache can wait for the disk (the kernel holds back a writer
/// that dirties pages faster than they are written), and while one 1 MiB
/// write waits, the next buffer fills and waits for it: on disk, half the
/// size measured much faster, for a tree of large files and for one large
/// file alike, and no slower on tmpfs (benches/README.md, "Measurements
/// behind design choices").
pub const FILE_SPOOL_BUFFER: usize = 512 * 1024;

/// How many bytes a [`Spool`] in front of `dest` gathers a write.
pub fn spool_buffer(dest: &Dest) -> usize {
    match dest {
        Dest::File(_) => FILE_SPOOL_BUFFER,
        Dest::Stream(_) | Dest::Complete(_) => SPOOL_BUFFER,
    }
}

/// What a write on the pool gives back: the file, its buffer to fill again,
/// and how the write went.
pub type Written = (File, Vec<u8>, io::Result<()>);

/// The work a pool thread does for a [`Spool`]: writes `bytes` to `file`
/// and gives both back.
pub fn write_out(mut file: File, bytes: Vec<u8>) -> Written {
    let result = file.write_all(&bytes);
    (file, bytes, result)
}

/// What a runtime's handle to a pool task yields: the [`Written`] itself
/// (smol), or a result that says the task was lost (tokio's `JoinError`).
pub trait Finished {
    /// The write's outcome, or why the task did not finish.
    fn into_written(self) -> io::Result<Written>;
}

impl Finished for Written {
    fn into_written(self) -> io::Result<Written> {
        Ok(self)
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> Finished for Result<Written, E> {
    fn into_written(self) -> io::Result<Written> {
        self.map_err(io::Error::other)
    }
}

/// Bytes gathered for a file, and the write of the previous buffer in
/// flight on the pool (`W`, the runtime's task handle).
#[derive(Debug)]
pub struct Spool<W> {
    /// The file, here while no write is in flight.
    file: Option<File>,
    /// The bytes gathered for the next write.
    filling: Vec<u8>,
    /// The write in flight.
    writing: Option<W>,
    /// How many bytes a write gathers ([`spool_buffer`]).
    capacity: usize,
}

impl<W> Spool<W>
where
    W: Future + Unpin,
    W::Output: Finished,
{
    /// A spool in front of `file`, opened for `dest`.
    pub fn new(file: File, dest: &Dest) -> Spool<W> {
        let capacity = spool_buffer(dest);
        Spool { file: Some(file), filling: Vec::with_capacity(capacity), writing: None, capacity }
    }

    /// The file, taken out once flushed, to commit to `dest`; an error if
    /// a write was lost (its task panicked), and the file with it.
    pub fn take_file(&mut self, dest: &Dest) -> Result<File, SaveError> {
        self.file.take().ok_or_else(|| SaveError::io(dest.name(), io::Error::other("a write was lost")))
    }

    /// The write in flight, taken out: for a runtime whose task handles
    /// cancel their task when dropped, to let it finish instead.
    pub fn take_writing(&mut self) -> Option<W> {
        self.writing.take()
    }

    /// `AsyncWrite::poll_write`: takes as much of `buf` as the buffer holds,
    /// after handing a full buffer to the pool with `spawn` (which runs
    /// [`write_out`] there).
    pub fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        spawn: impl FnOnce(File, Vec<u8>) -> W,
    ) -> Poll<io::Result<usize>> {
        if self.filling.len() >= self.capacity {
            ready!(self.poll_hand_over(cx, spawn))?;
        }
        let n = buf.len().min(self.capacity - self.filling.len());
        self.filling.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    /// `AsyncWrite::poll_flush`: the gathered bytes go out, then that write
    /// is waited for.
    pub fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        mut spawn: impl FnMut(File, Vec<u8>) -> W,
    ) -> Poll<io::Result<()>> {
        while !self.filling.is_empty() || self.writing.is_some() {
            ready!(self.poll_hand_over(cx, &mut spawn))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Waits for the write in flight, then hands the gathered bytes, if
    /// any, to the pool.
    fn poll_hand_over(&mut self, cx: &mut Context<'_>, spawn: impl FnOnce(File, Vec<u8>) -> W) -> Poll<io::Result<()>> {
        let mut spare = Vec::new();
        if let Some(writing) = &mut self.writing {
            let finished = ready!(Pin::new(writing).poll(cx));
            self.writing = None;
            let (file, written, result) = finished.into_written()?;
            self.file = Some(file);
            result?;
            spare = written;
        }
        if !self.filling.is_empty() {
            spare.clear();
            let bytes = std::mem::replace(&mut self.filling, spare);
            let file = self.file.take().ok_or_else(|| io::Error::other("an earlier write was lost"))?;
            self.writing = Some(spawn(file, bytes));
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::Read;
    use std::task::Waker;

    use super::*;
    use crate::save::Stream;

    /// A pool that runs each write when the test says so.
    struct Later(Option<(File, Vec<u8>)>);

    impl Future for Later {
        type Output = Written;
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Written> {
            let (file, bytes) = self.0.take().expect("polled after done");
            Poll::Ready(write_out(file, bytes))
        }
    }

    #[test]
    fn every_byte_reaches_the_file_in_order_a_buffer_at_a_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let part = Dest::File(crate::save::Target::new(dir.path().join("file"), false));
        for (dest, capacity) in [(Dest::Stream(Stream::Stdout), SPOOL_BUFFER), (part, FILE_SPOOL_BUFFER)] {
            spooled_in_order(dir.path(), &dest, capacity);
        }
    }

    /// Writes through a spool for `dest`, whose writes must be `capacity`
    /// bytes but for the last, into a file in `dir`.
    fn spooled_in_order(dir: &std::path::Path, dest: &Dest, capacity: usize) {
        let path = dir.join("out");
        let mut spool: Spool<Later> = Spool::new(File::create(&path).expect("create"), dest);
        let mut cx = Context::from_waker(Waker::noop());
        let bytes: Vec<u8> = (0..(2 * capacity + 12_345)).map(|i| (i % 253) as u8).collect();
        let mut handed = VecDeque::new();
        let mut spawn = |file, bytes: Vec<u8>| {
            handed.push_back(bytes.len());
            Later(Some((file, bytes)))
        };
        let mut at = 0;
        while at < bytes.len() {
            match spool.poll_write(&mut cx, &bytes[at..(at + 70_000).min(bytes.len())], &mut spawn) {
                Poll::Ready(Ok(n)) => at += n,
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(spool.poll_flush(&mut cx, &mut spawn), Poll::Ready(Ok(()))));
        assert_eq!(handed, [capacity, capacity, 12_345]);
        drop(spool.take_file(dest).expect("the file is back"));
        let mut written = Vec::new();
        File::open(&path).expect("open").read_to_end(&mut written).expect("read");
        assert!(written == bytes, "the file holds other bytes");
    }
}
