//! The loop that does a [`Session`]'s steps, written once for blocking
//! drivers ([`Session::run`] over [`Steps`]) and once for async ones
//! ([`Session::run_async`] over [`AsyncSteps`]), the way quinn drives
//! quinn-proto over a runtime trait: each `impl-*/src/client.rs` is the
//! trait's implementation, every method a runtime call.

use std::io;
use std::time::Duration;

use crate::{BadName, Entry, ListingLines, TreeEntry, TreeLines, parse_answer, parse_greeting};

use super::Fetch;
use super::error::{ClientError, SaveError};
use super::session::Session;
use super::step::{NotReceived, Received, Step};
use crate::body::BodyError;

/// How much of a TREE body is read between looks at whether its reader
/// has stopped it.
const TREE_SLICE: u64 = 1 << 20;
use crate::frame::{LineError, ParseLine};

/// Where a session tells how each file went, and what a listing holds:
/// the application's report.
pub trait Outcomes<I> {
    /// `item` was saved (with the server's digest it was verified against),
    /// or failed alone with `outcome`'s error; the others go on.
    fn record(&mut self, item: &I, outcome: Result<Option<[u8; 32]>, ClientError>);

    /// The next entry of a listing, as soon as its line arrived.
    fn listed(&mut self, entry: Entry) {
        let _ = entry;
    }

    /// The next entry of a TREE, or why its name will not be used, as soon
    /// as its line arrived; an `Err` stops the listing there, with why
    /// (past a bound of the application's), and ends the connection.
    fn found(&mut self, entry: Result<TreeEntry, BadName>) -> Result<(), String> {
        let _ = entry;
        Ok(())
    }
}

/// How a blocking driver does each step of a [`Session`].
pub trait Steps {
    /// What the application says of one file to fetch.
    type Item: Fetch;
    /// The driver's open file.
    type File;
    /// Reads one line with `parse` (the greeting, an answer header), whole
    /// within `within`.
    fn line<T, E>(&mut self, within: Duration, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>>;
    /// Writes request lines ([`Step::Send`]).
    fn send(&mut self, requests: Vec<u8>) -> io::Result<()>;
    /// Receives a body into its destination ([`Step::Receive`]).
    fn receive(&mut self, item: &Self::Item, len: u64, hash: bool) -> Result<Received<Self::File>, NotReceived>;
    /// Reads a body of `len` bytes, showing each piece to `each` as it
    /// arrives and keeping none: the session keeps a small one
    /// ([`Step::ReadSmall`]), parses a listing ([`Step::ReadListing`]) or
    /// drops it ([`Step::Discard`]).
    fn body(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError>;
    /// Commits a received file ([`Step::Commit`]).
    fn commit(&mut self, item: &Self::Item, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;
}

/// How an async driver does each step of a [`Session`]: [`Steps`], awaited.
// The futures are awaited where they are made, on the client's own
// single-threaded executor, so no `Send` bound is needed on them.
#[allow(async_fn_in_trait)]
pub trait AsyncSteps {
    /// What the application says of one file to fetch.
    type Item: Fetch;
    /// The driver's open file.
    type File;
    /// Reads one line with `parse` (the greeting, an answer header), within
    /// the client's timeout.
    async fn line<T, E>(&mut self, within: Duration, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>>;
    /// Writes request lines ([`Step::Send`]).
    async fn send(&mut self, requests: Vec<u8>) -> io::Result<()>;
    /// Receives a body into its destination ([`Step::Receive`]).
    async fn receive(&mut self, item: &Self::Item, len: u64, hash: bool) -> Result<Received<Self::File>, NotReceived>;
    /// Reads a body of `len` bytes, showing each piece to `each` as it
    /// arrives and keeping none: the session keeps a small one
    /// ([`Step::ReadSmall`]), parses a listing ([`Step::ReadListing`]) or
    /// drops it ([`Step::Discard`]).
    async fn body(&mut self, len: u64, each: &mut dyn FnMut(&[u8])) -> Result<(), BodyError>;
    /// Commits a received file ([`Step::Commit`]).
    async fn commit(&mut self, item: &Self::Item, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;
}

impl<'p, I: Fetch, F> Session<'p, I, F> {
    /// Does the steps with a blocking `driver` until the conversation is
    /// over, telling `report` how each file went.
    pub fn run(
        mut self,
        driver: &mut impl Steps<Item = I, File = F>,
        report: &mut impl Outcomes<I>,
    ) -> Result<Self, ClientError> {
        loop {
            match self.step() {
                Step::ReadGreeting => self.on_greeting(driver.line(self.greeting_wait(), parse_greeting))?,
                Step::Send(requests) => self.on_sent(driver.send(requests))?,
                Step::ReadAnswer => self.on_answer(driver.line(self.timeout(), parse_answer))?,
                Step::Receive { item, len, hash } => self.on_received(driver.receive(item, len, hash))?,
                Step::ReadSmall(len) => {
                    let mut kept = Vec::with_capacity(len);
                    let read = driver.body(len as u64, &mut |piece| kept.extend_from_slice(piece));
                    self.on_small(read.map(|()| kept))?;
                }
                Step::Discard(len) => self.on_discarded(driver.body(len, &mut |_| {}))?,
                Step::ReadListing(len) => {
                    let mut each = |entry| report.listed(entry);
                    let mut lines = ListingLines::new(&mut each);
                    let read = driver.body(len, &mut |piece| lines.feed(piece));
                    self.on_listing(read, lines.finish())?;
                }
                Step::ReadTree(len) => {
                    let mut each = |entry| report.found(entry);
                    let mut lines = TreeLines::new(&mut each);
                    // In slices, so that a reader that has seen enough of
                    // an endless tree stops reading it.
                    let (mut left, mut read) = (len, Ok(()));
                    while left > 0 && read.is_ok() && lines.stopped().is_none() {
                        let slice = left.min(TREE_SLICE);
                        read = driver.body(slice, &mut |piece| lines.feed(piece));
                        left -= slice;
                    }
                    let stopped = lines.stopped().map(str::to_owned);
                    self.on_tree(read, stopped, lines.finish())?;
                }
                Step::Commit { item, file, digest } => self.on_committed(driver.commit(item, file, digest)),
                Step::Report { item, outcome } => report.record(item, outcome),
                Step::Done => return Ok(self),
            }
        }
    }

    /// [`Session::run`], with an async `driver`.
    pub async fn run_async(
        mut self,
        driver: &mut impl AsyncSteps<Item = I, File = F>,
        report: &mut impl Outcomes<I>,
    ) -> Result<Self, ClientError> {
        loop {
            match self.step() {
                Step::ReadGreeting => self.on_greeting(driver.line(self.greeting_wait(), parse_greeting).await)?,
                Step::Send(requests) => self.on_sent(driver.send(requests).await)?,
                Step::ReadAnswer => self.on_answer(driver.line(self.timeout(), parse_answer).await)?,
                Step::Receive { item, len, hash } => self.on_received(driver.receive(item, len, hash).await)?,
                Step::ReadSmall(len) => {
                    let mut kept = Vec::with_capacity(len);
                    let read = driver.body(len as u64, &mut |piece| kept.extend_from_slice(piece)).await;
                    self.on_small(read.map(|()| kept))?;
                }
                Step::Discard(len) => self.on_discarded(driver.body(len, &mut |_| {}).await)?,
                Step::ReadListing(len) => {
                    let mut each = |entry| report.listed(entry);
                    let mut lines = ListingLines::new(&mut each);
                    let read = driver.body(len, &mut |piece| lines.feed(piece)).await;
                    self.on_listing(read, lines.finish())?;
                }
                Step::ReadTree(len) => {
                    let mut each = |entry| report.found(entry);
                    let mut lines = TreeLines::new(&mut each);
                    // In slices, so that a reader that has seen enough of
                    // an endless tree stops reading it.
                    let (mut left, mut read) = (len, Ok(()));
                    while left > 0 && read.is_ok() && lines.stopped().is_none() {
                        let slice = left.min(TREE_SLICE);
                        read = driver.body(slice, &mut |piece| lines.feed(piece)).await;
                        left -= slice;
                    }
                    let stopped = lines.stopped().map(str::to_owned);
                    self.on_tree(read, stopped, lines.finish())?;
                }
                Step::Commit { item, file, digest } => self.on_committed(driver.commit(item, file, digest).await),
                Step::Report { item, outcome } => report.record(item, outcome),
                Step::Done => return Ok(self),
            }
        }
    }
}
