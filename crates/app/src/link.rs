//! A driver's connection, seen from the code that is the same on every
//! runtime: what each runtime does its own way ([`AsyncLink`], [`Link`]:
//! read more, read a body, write, send a file, close), and what is built
//! on that once — a line read, a batch of answers written, pipelined
//! requests read, and a client's steps ([`Client`]).
//!
//! Each `impl-*/src/connection.rs` implements the link trait with its
//! runtime's calls, and `client.rs` adds saving ([`AsyncSave`], [`Save`]):
//! a driver writes no method that only passes a call on.

use std::convert::Infallible;
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ferry_engine::Request;
use ferry_engine::body::{BODY_BUFFER, BodyError};
use ferry_engine::client::{
    AsyncSteps, ClientConfig, ClientError, NotReceived, Outcomes, Received, SaveError, Session, Steps,
};
use ferry_engine::frame::{LineError, ParseLine, take_line};
use ferry_engine::parse_pipelined;
use ferry_engine::server::{Pending, WriteCut};
use ferry_share::{BATCH_REQUESTS, Batch, FileBody, Part};

use crate::save::{Dest, Item, Plan, Report};
use crate::tally::Tally;

/// How a read of request lines ended: whole lines are in the pending
/// queue, or why not.
pub type Read = Result<(), LineError<Infallible>>;

/// What an async runtime does with one connection, server or client side:
/// each method its runtime's calls, nothing decided. Its descriptor
/// (`AsFd`) is the socket, which heavy work watches for the peer leaving.
// Awaited where they are made, by the connection's own task (whose
// runtime checks `Send` on the concrete type), so no bound is needed here.
#[allow(async_fn_in_trait)]
pub trait AsyncLink: AsFd {
    /// What has been received and not yet used: lines are taken from its
    /// front, and what follows a line (pipelined requests, the start of a
    /// body) stays for the next call.
    fn received(&mut self) -> &mut Vec<u8>;

    /// Reads once more onto the end of [`AsyncLink::received`], waiting at
    /// most until `deadline`: `None` if the deadline came first. Must be
    /// cancel-safe: dropped half-way (by a race with shutdown), it has
    /// added nothing that is not data.
    async fn read_more(&mut self, deadline: Instant) -> Option<io::Result<usize>>;

    /// Writes `bytes` (requests, greetings, joined answers), which the peer
    /// must take within `within`.
    async fn write_all(&mut self, bytes: Vec<u8>, within: Duration) -> io::Result<()>;

    /// Sends a file's range, each window taken within `idle`, counting in
    /// `sent` the bytes handed to the socket (to the window); fails if the
    /// file yields fewer bytes than promised, and the connection must end.
    async fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()>;

    /// Closes after a last answer: FIN, then a brief drain of what the peer
    /// still sends, so that the kernel does not answer it with a reset that
    /// could destroy the answer before the peer reads it.
    async fn close(self);

    /// Parses one line from the front of what is received with `parse` (a
    /// request, the greeting, an answer header), reading more until it is
    /// whole or `deadline` passes.
    async fn read_line<T, E>(&mut self, deadline: Instant, mut parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        loop {
            if let Some(value) = take_line(self.received(), &mut parse)? {
                return Ok(value);
            }
            LineError::after_read(self.read_more(deadline).await)?;
        }
    }

    /// Sends a batch of answers: joined bytes in one write each, each file
    /// body with [`AsyncLink::send_body`]; a failure says how far it got,
    /// for the access log.
    async fn write_batch(&mut self, batch: Batch, idle: Duration) -> Result<(), WriteCut> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => self.write_all(bytes, idle).await?,
                Part::Body(body) => {
                    let mut sent = 0;
                    let result = self.send_body(body, idle, &mut sent).await;
                    result.map_err(|error| WriteCut { error, body: Some(sent) })?;
                }
            }
        }
        Ok(())
    }

    /// Reads request lines into `pending`, which must be empty: waits until
    /// one is whole, then takes every whole line already received behind
    /// it, up to [`BATCH_REQUESTS`], so that pipelined requests are
    /// answered together. A line the engine refuses is queued as the
    /// refusal to send, not an error of the connection.
    async fn read_requests(&mut self, deadline: Instant, pending: &mut Pending) -> Read {
        self.read_line(deadline, |buffer: &[u8]| Ok(parse_pipelined(buffer, pending, BATCH_REQUESTS))).await.map(drop)
    }
}

/// [`AsyncLink`] for a driver whose connection has a thread of its own and
/// may block (ferry-std).
pub trait Link: AsFd {
    /// [`AsyncLink::received`].
    fn received(&mut self) -> &mut Vec<u8>;
    /// [`AsyncLink::read_more`], blocking.
    fn read_more(&mut self, deadline: Instant) -> Option<io::Result<usize>>;
    /// [`AsyncLink::write_all`].
    fn write_all(&mut self, bytes: Vec<u8>, within: Duration) -> io::Result<()>;
    /// [`AsyncLink::send_body`].
    fn send_body(&mut self, body: FileBody, idle: Duration, sent: &mut u64) -> io::Result<()>;
    /// [`AsyncLink::close`].
    fn close(self);

    /// [`AsyncLink::read_line`].
    fn read_line<T, E>(&mut self, deadline: Instant, mut parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        loop {
            if let Some(value) = take_line(self.received(), &mut parse)? {
                return Ok(value);
            }
            LineError::after_read(self.read_more(deadline))?;
        }
    }

    /// [`AsyncLink::write_batch`].
    fn write_batch(&mut self, batch: Batch, idle: Duration) -> Result<(), WriteCut> {
        for part in batch.parts {
            match part {
                Part::Bytes(bytes) => self.write_all(bytes, idle)?,
                Part::Body(body) => {
                    let mut sent = 0;
                    let result = self.send_body(body, idle, &mut sent);
                    result.map_err(|error| WriteCut { error, body: Some(sent) })?;
                }
            }
        }
        Ok(())
    }

    /// [`AsyncLink::read_requests`].
    fn read_requests(&mut self, deadline: Instant, pending: &mut Pending) -> Read {
        self.read_line(deadline, |buffer: &[u8]| Ok(parse_pipelined(buffer, pending, BATCH_REQUESTS))).map(drop)
    }
}

/// A body received into a driver's open file `F`, or why not.
pub type Receiving<F> = Result<Received<F>, NotReceived>;

/// What a client does with a connection that a server never does: receive
/// bodies, and save them into a `.part` on disk through its runtime's way
/// of writing files. What is the same for every driver,
/// [`AsyncSave::receive`], is written here.
#[allow(async_fn_in_trait)]
pub trait AsyncSave: AsyncLink {
    /// Where a received body goes: the driver's open file.
    type File;

    /// Receives exactly `len` body bytes into `file` (or into nothing),
    /// showing each piece to `each` as well (for a digest, progress, a
    /// listing's lines), at the pace [`ferry_engine::body::Incoming`]
    /// requires with `timeout`: a stalled peer, or one that trickles, is
    /// given up on; a slow one is not.
    async fn receive_into(
        &mut self,
        len: u64,
        file: Option<&mut Self::File>,
        each: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError>;

    /// Receives a body into nothing, showing each piece to `each`.
    async fn read_body(&mut self, len: u64, timeout: Duration, each: impl FnMut(&[u8])) -> Result<(), BodyError> {
        self.receive_into(len, None, each, timeout).await
    }

    /// Opens `item`'s destination for a body of `len` bytes
    /// ([`crate::Dest::open`]), where blocking is allowed.
    async fn open(&mut self, item: &Item, len: u64) -> Result<Self::File, SaveError>;

    /// Waits for the writes to `file` still in flight: none, where each
    /// write completes before the next read.
    async fn flush(file: &mut Self::File) -> io::Result<()> {
        let _ = file;
        Ok(())
    }

    /// Commits a received file ([`crate::Dest::commit`]: synced, checked
    /// against `digest`, renamed), where blocking is allowed.
    async fn commit(&mut self, item: &Item, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;

    /// Runs `work` where blocking is allowed (the runtime's blocking pool)
    /// and waits for it: an error if the pool lost it (tokio's reports a
    /// panic in `work` so too; the others leave it to the caller).
    async fn unblock<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T>;

    /// Receives a body of `len` bytes for `item` at the pace `timeout`
    /// sets, hashing it if `hash`: into its destination, opened first; or,
    /// for a file of at most [`HOLD`] bytes, into memory, to be written by
    /// [`AsyncSave::save`].
    async fn receive(&mut self, item: &Item, len: u64, hash: bool, timeout: Duration) -> Receiving<Saving<Self::File>> {
        if len <= HOLD && matches!(item.dest, Dest::File(_)) {
            let mut tally = Tally::new(item, len, hash);
            let mut held = Vec::with_capacity(len as usize);
            let read = self
                .read_body(len, timeout, |piece| {
                    tally.chunk(piece);
                    held.extend_from_slice(piece);
                })
                .await;
            if read.is_err() && !held.is_empty() {
                // What arrived belongs in the .part, which `--continue`
                // resumes from. (The error to report is the cut: a .part
                // that cannot take these bytes only means fetching them
                // again.)
                let (dest, offset, arrived) = (item.dest.clone(), item.offset, std::mem::take(&mut held));
                let _ = Self::unblock(move || dest.write_held(offset, &arrived)).await;
            }
            return tally.finish(read, Ok(()), Saving::Held(held));
        }
        let mut file = self.open(item, len).await.map_err(NotReceived::Unopened)?;
        let mut tally = Tally::new(item, len, hash);
        let read = self.receive_into(len, Some(&mut file), |piece: &[u8]| tally.chunk(piece), timeout).await;
        // Waits for the writes still in flight, even when the body was cut
        // short: every byte that arrived belongs in the .part, which
        // `--continue` resumes from its length.
        let flushed = Self::flush(&mut file).await;
        tally.finish(read, flushed, Saving::Open(file))
    }

    /// Commits a received body ([`AsyncSave::commit`]); one held in memory
    /// is opened, written and committed in a single trip to the pool.
    async fn save(&mut self, item: &Item, file: Saving<Self::File>, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        match file {
            Saving::Open(file) => self.commit(item, file, digest).await,
            Saving::Held(bytes) => {
                let (dest, offset) = (item.dest.clone(), item.offset);
                let saved = move || dest.write_held(offset, &bytes).and_then(|file| dest.commit(file, digest.as_ref()));
                Self::unblock(saved).await.unwrap_or_else(|lost| Err(SaveError::io(item.dest.name(), lost)))
            }
        }
    }
}

/// The largest body an async client holds in memory until it is whole:
/// one [`BODY_BUFFER`], what a single read could bring. A file that small
/// costs three trips to the blocking pool when written as it arrives
/// (open, write, commit), which on a tree of small files is most of the
/// time; held, it costs one. Larger files are written as they arrive, so
/// their `.part` grows in sight and a cut keeps what came.
pub const HOLD: u64 = BODY_BUFFER as u64;

/// A body on its way to its file, in an async client: in the driver's open
/// `.part` (or stream), or held in memory ([`HOLD`]).
#[derive(Debug)]
pub enum Saving<F> {
    /// Written as it arrived, into the driver's open file.
    Open(F),
    /// Whole in memory, not yet written.
    Held(Vec<u8>),
}

/// [`AsyncSave`] for a blocking driver, whose writes complete at once.
pub trait Save: Link {
    /// [`AsyncSave::File`].
    type File;
    /// [`AsyncSave::receive_into`].
    fn receive_into(
        &mut self,
        len: u64,
        file: Option<&mut Self::File>,
        each: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<(), BodyError>;
    /// [`AsyncSave::read_body`].
    fn read_body(&mut self, len: u64, timeout: Duration, each: impl FnMut(&[u8])) -> Result<(), BodyError> {
        self.receive_into(len, None, each, timeout)
    }

    /// [`AsyncSave::open`].
    fn open(&mut self, item: &Item, len: u64) -> Result<Self::File, SaveError>;
    /// [`AsyncSave::commit`].
    fn commit(&mut self, item: &Item, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;

    /// [`AsyncSave::receive`].
    fn receive(&mut self, item: &Item, len: u64, hash: bool, timeout: Duration) -> Receiving<Self::File> {
        let mut file = self.open(item, len).map_err(NotReceived::Unopened)?;
        let mut tally = Tally::new(item, len, hash);
        let read = self.receive_into(len, Some(&mut file), |piece: &[u8]| tally.chunk(piece), timeout);
        tally.finish(read, Ok(()), file)
    }
}

/// A client: a driver's connection to a server, and how long each wait on
/// it may take (`--timeout`). It does a session's steps
/// ([`ferry_engine::client::AsyncSteps`], [`Steps`]) with the link's calls.
#[derive(Debug)]
pub struct Client<L> {
    link: L,
    timeout: Duration,
}

impl<L> Client<L> {
    /// A client on `link`, connected as `config` says.
    pub fn new(link: L, config: &ClientConfig) -> Client<L> {
        Client { link, timeout: config.timeout }
    }
}

impl<L: AsyncSave> Client<L> {
    /// Fetches every item of `plan`, pipelined; see [`crate::Runtime::get`].
    pub async fn get_async(
        mut self,
        config: &ClientConfig,
        plan: &Plan,
        report: &mut Report,
    ) -> Result<(), ClientError> {
        Session::get(&plan.items, plan.verify, config).run_async(&mut self, report).await.map(drop)
    }

    /// Lists `path`; see [`crate::Runtime::ls`].
    pub async fn ls_async(
        mut self,
        config: &ClientConfig,
        request: &Request,
        out: &mut impl Outcomes<Item>,
    ) -> Result<(), ClientError> {
        Session::list(request, config).run_async(&mut self, out).await.map(drop)
    }
}

impl<L: Save> Client<L> {
    /// [`Client::get_async`], blocking.
    pub fn get(mut self, config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        Session::get(&plan.items, plan.verify, config).run(&mut self, report).map(drop)
    }

    /// [`Client::ls_async`], blocking.
    pub fn ls(
        mut self,
        config: &ClientConfig,
        request: &Request,
        out: &mut impl Outcomes<Item>,
    ) -> Result<(), ClientError> {
        Session::list(request, config).run(&mut self, out).map(drop)
    }
}

impl<L: AsyncSave> AsyncSteps for Client<L> {
    type Item = Item;
    type File = Saving<L::File>;

    async fn line<T, E>(&mut self, within: Duration, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.link.read_line(Instant::now() + within, parse).await
    }

    async fn send(&mut self, requests: Vec<u8>) -> io::Result<()> {
        self.link.write_all(requests, self.timeout).await
    }

    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Receiving<Saving<L::File>> {
        self.link.receive(item, len, hash, self.timeout).await
    }

    async fn body(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError> {
        self.link.read_body(len, self.timeout, each).await
    }

    async fn commit(&mut self, item: &Item, file: Saving<L::File>, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        self.link.save(item, file, digest).await
    }
}

impl<L: Save> Steps for Client<L> {
    type Item = Item;
    type File = L::File;

    fn line<T, E>(&mut self, within: Duration, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>> {
        self.link.read_line(Instant::now() + within, parse)
    }

    fn send(&mut self, requests: Vec<u8>) -> io::Result<()> {
        self.link.write_all(requests, self.timeout)
    }

    fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<L::File>, NotReceived> {
        self.link.receive(item, len, hash, self.timeout)
    }

    fn body(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError> {
        self.link.read_body(len, self.timeout, each)
    }

    fn commit(&mut self, item: &Item, file: L::File, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        self.link.commit(item, file, digest)
    }
}
