//! The client's side of FERRY/1 as steps, without I/O.
//!
//! In the manner of quinn-proto beside quinn: a driver asks
//! [`Session::step`] what to do next, does it with its runtime (write the
//! request lines, read a header, receive a body into a file, commit it), and
//! hands the result back with the matching `on_*` method. The session makes
//! every protocol decision, once for every runtime: the greeting, the
//! pipelining window and the request lines to send, what each answer means
//! for the file in hand (a body of `n` bytes to receive, a digest to
//! compare, a refusal to report, an answer to read and drop to stay in
//! step), and QUIT and BYE. It never touches a socket, a file or a clock.
//!
//! Errors come in two kinds, and the types say which: what fails one file
//! (an `ERR`, a digest that does not match, a destination that cannot be
//! opened) becomes that file's [`Step::Report`] and the next file goes on;
//! what leaves part of an answer unread, or breaks FERRY/1, is the `Err` of
//! an `on_*` method and ends the connection.
//!
//! The loop that asks for steps and hands back results is written here once,
//! for blocking drivers ([`Session::run`] over [`Steps`]) and for async ones
//! ([`Session::run_async`] over [`AsyncSteps`]), the way quinn drives
//! quinn-proto over a runtime trait: each `impl-*/src/client.rs` is the
//! trait's implementation, every method a runtime call.
//!
//! `F` is the driver's open `.part`: a `std::fs::File`, a `tokio::fs::File`,
//! an `Unblock<File>`. The session holds it between the body and the commit
//! without looking at it.

use std::io;
use std::path::Path;

use ferry_proto::{
    Answer, AnswerError, Entry, Greeting, GreetingError, Request, WirePath, parse_answer, parse_digest, parse_greeting,
    parse_listing,
};

use crate::ClientConfig;
use crate::conn::{BodyCause, BodyError, LineError, MAX_SMALL_BODY, ParseLine};
use crate::error::{ClientError, SaveError};
use crate::progress::Progress;
use crate::save::{Dest, Item, Plan};

/// How many items' requests a client keeps ahead of the answers it has read.
///
/// Pipelining hides the round trip per file; a bounded window keeps a client
/// with thousands of paths from writing requests while the server, blocked
/// on writing answers nobody reads yet, stops reading them: a deadlock.
pub const PIPELINE_WINDOW: usize = 32;

/// The length of a SUM body: 64 hex digits.
pub const DIGEST_HEX: usize = 64;

/// One conversation with a server: a `get` of a [`Plan`], or an `ls`.
#[derive(Debug)]
pub struct Session<'p, F> {
    job: Job<'p>,
    config: ClientConfig,
    /// Items whose requests are written, plus one once QUIT is.
    sent: usize,
    /// The item whose answers are being read.
    current: usize,
    phase: Phase<F>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
enum Job<'p> {
    Get(&'p Plan),
    List(&'p WirePath),
}

/// Where the conversation is. The phases a driver owes a call back from
/// (`Waiting`) hold nothing.
#[derive(Debug)]
enum Phase<F> {
    Greeting,
    Start,
    /// The answer to the current item's GET.
    Get,
    /// A body of `len` bytes to receive.
    Body {
        len: u64,
    },
    /// Receiving it.
    Receiving {
        len: u64,
    },
    /// The body arrived whole; the SUM's answer comes next.
    Sum {
        received: Received<F>,
    },
    /// The SUM said OK: its digest comes next.
    Digest {
        received: Received<F>,
    },
    /// Ready to commit.
    Commit {
        received: Received<F>,
        digest: Option<[u8; 32]>,
    },
    /// Committing, with the digest it was checked against.
    Committing {
        digest: Option<[u8; 32]>,
    },
    /// The body of a file that failed before it was received, to drop.
    Discard {
        len: u64,
        failure: ClientError,
    },
    /// The file failed; its SUM's answer is still to be read and dropped.
    SkipSum {
        failure: ClientError,
    },
    /// That answer's body, to drop.
    SkipBody {
        len: u64,
        failure: ClientError,
    },
    /// The current item's outcome, to report.
    Report(Result<Option<[u8; 32]>, ClientError>),
    /// LIST: its answer, then its body.
    ListAnswer,
    ListBody {
        len: usize,
    },
    /// QUIT was sent and everything answered: the BYE comes next.
    Bye,
    /// The driver owes the session the result of the last step.
    Waiting,
    Done,
}

/// Why a [`Step::Receive`] did not bring a whole body.
#[derive(Debug)]
pub enum NotReceived {
    /// The destination could not be opened; nothing was read.
    Unopened(SaveError),
    /// The body was cut short (or could not be written).
    Cut(BodyError),
}

/// A body that arrived whole, before it is committed.
#[derive(Debug)]
pub enum Received<F> {
    /// Streamed to stdout or a device; its digest, when verifying.
    Stream(Option<blake3::Hash>),
    /// In the `.part`, still open and locked.
    File(F),
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step<'p, F> {
    /// Read the server's first line; pass it to [`Session::on_greeting`].
    ReadGreeting,
    /// Write these request lines, then ask again.
    Send(Vec<u8>),
    /// Read the next answer header; pass it to [`Session::on_answer`].
    ReadAnswer,
    /// Receive `len` body bytes for `item` into its destination, opened
    /// for the purpose, counting them with a [`Tally`] (which hashes them
    /// when `hash`); pass the result to [`Session::on_received`].
    Receive {
        /// The file.
        item: &'p Item,
        /// The body's length.
        len: u64,
        /// Whether to hash the bytes on their way (a stream being verified).
        hash: bool,
    },
    /// Read `len` bytes into memory; pass them to [`Session::on_small`].
    ReadSmall(usize),
    /// Read and drop `len` body bytes, then ask again.
    Discard(u64),
    /// Make `file` the destination ([`Dest::commit`]); pass the result to
    /// [`Session::on_committed`].
    Commit {
        /// Where it goes.
        dest: &'p Dest,
        /// The complete `.part`.
        file: F,
        /// The server's digest to check it against, when verifying.
        digest: Option<[u8; 32]>,
    },
    /// An item is done: tell the user ([`crate::Report::record`]).
    Report {
        /// The file.
        item: &'p Item,
        /// Saved (with the digest it was verified against), or why not.
        outcome: Result<Option<[u8; 32]>, ClientError>,
    },
    /// The conversation is over.
    Done,
}

impl<'p, F> Session<'p, F> {
    /// A session that fetches every item of `plan` from the server.
    pub fn get(plan: &'p Plan, config: &ClientConfig) -> Self {
        Session::new(Job::Get(plan), config)
    }

    /// A session that lists the folder `path` on the server.
    pub fn list(path: &'p WirePath, config: &ClientConfig) -> Self {
        Session::new(Job::List(path), config)
    }

    fn new(job: Job<'p>, config: &ClientConfig) -> Self {
        Session { job, config: config.clone(), sent: 0, current: 0, phase: Phase::Greeting, entries: Vec::new() }
    }

    /// The entries a finished `list` session read.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// What to do next.
    pub fn step(&mut self) -> Step<'p, F> {
        loop {
            if let Some(requests) = self.refill() {
                return Step::Send(requests);
            }
            let verify = self.verify();
            // Each phase gives the next one and, unless it needs nothing
            // from the driver (`None`), the step to return.
            let phase = std::mem::replace(&mut self.phase, Phase::Waiting);
            let (next, step) = match phase {
                Phase::Greeting => (Phase::Waiting, Some(Step::ReadGreeting)),
                Phase::Start => match self.job {
                    Job::Get(plan) if plan.items.is_empty() => (Phase::Bye, None),
                    Job::Get(_) => (Phase::Get, None),
                    Job::List(path) => {
                        let mut requests = Vec::new();
                        Request::List { path: path.clone() }.encode(&mut requests);
                        Request::Quit.encode(&mut requests);
                        (Phase::ListAnswer, Some(Step::Send(requests)))
                    }
                },
                Phase::Get | Phase::Sum { .. } | Phase::SkipSum { .. } | Phase::ListAnswer | Phase::Bye => {
                    // Still waiting for that answer: put the phase back.
                    (phase, Some(Step::ReadAnswer))
                }
                Phase::Body { len } => {
                    let item = self.item();
                    let hash = verify && matches!(item.dest, Dest::Stream(_));
                    (Phase::Receiving { len }, Some(Step::Receive { item, len, hash }))
                }
                Phase::Digest { received } => (Phase::Digest { received }, Some(Step::ReadSmall(DIGEST_HEX))),
                Phase::ListBody { len } => (Phase::ListBody { len }, Some(Step::ReadSmall(len))),
                Phase::Commit { received: Received::File(file), digest } => {
                    (Phase::Committing { digest }, Some(Step::Commit { dest: &self.item().dest, file, digest }))
                }
                Phase::Commit { received: Received::Stream(local), digest } => {
                    let checked = match (local, digest) {
                        (Some(local), Some(remote)) => self.item().dest.check(&local, &remote),
                        _ => Ok(()),
                    };
                    (Phase::Report(checked.map(|()| digest).map_err(ClientError::from)), None)
                }
                Phase::Discard { len, failure } => {
                    let next = if verify { Phase::SkipSum { failure } } else { Phase::Report(Err(failure)) };
                    (next, Some(Step::Discard(len)))
                }
                Phase::SkipBody { len, failure } => (Phase::Report(Err(failure)), Some(Step::Discard(len))),
                Phase::Report(outcome) => {
                    let item = self.item();
                    self.current += 1;
                    let next = if self.current < self.items().len() { Phase::Get } else { Phase::Bye };
                    (next, Some(Step::Report { item, outcome }))
                }
                // A driver that asks again without the call back it owes
                // ends the conversation rather than guess.
                Phase::Receiving { .. } | Phase::Committing { .. } | Phase::Waiting | Phase::Done => {
                    (Phase::Done, Some(Step::Done))
                }
            };
            self.phase = next;
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// The server's first line, as the driver read it (or why it could not).
    pub fn on_greeting(&mut self, greeting: Result<Greeting, LineError<GreetingError>>) -> Result<(), ClientError> {
        let (addr, timeout) = (&self.config.addr, self.config.timeout);
        match greeting.map_err(|e| e.into_client(addr, timeout))? {
            Greeting::Ferry { implementation } => {
                tracing::debug!(%addr, %implementation, "connected");
                self.phase = Phase::Start;
                Ok(())
            }
            Greeting::Busy { message } => Err(ClientError::Busy { addr: addr.clone(), message }),
        }
    }

    /// How a [`Step::Send`] went.
    pub fn on_sent(&self, sent: io::Result<()>) -> Result<(), ClientError> {
        sent.map_err(|e| ClientError::io(&self.config.addr, self.config.timeout, e))
    }

    /// An answer header, as the driver read it (or why it could not).
    pub fn on_answer(&mut self, answer: Result<Answer, LineError<AnswerError>>) -> Result<(), ClientError> {
        let answer = answer.map_err(|e| e.into_client(&self.config.addr, self.config.timeout));
        let phase = std::mem::replace(&mut self.phase, Phase::Waiting);
        if let Phase::Bye = phase {
            // Every file is saved or reported already, so a server that
            // closes without its BYE costs nothing.
            if let Err(error) = answer {
                tracing::debug!(%error, "no BYE");
            }
            self.phase = Phase::Done;
            return Ok(());
        }
        let answer = answer?;
        let refused = |refusal| ClientError::Refused { path: self.path().to_owned(), refusal };
        self.phase = match (phase, answer) {
            (Phase::Get, Answer::Ok { len }) => Phase::Body { len },
            (Phase::Get, Answer::Err(refusal)) if self.verify() => Phase::SkipSum { failure: refused(refusal) },
            (Phase::Get, Answer::Err(refusal)) => Phase::Report(Err(refused(refusal))),
            (Phase::Sum { received }, Answer::Ok { len }) if len == DIGEST_HEX as u64 => Phase::Digest { received },
            (Phase::Sum { .. }, Answer::Ok { len }) => {
                return Err(self.broke(&format!("SUM body of {len} bytes, not {DIGEST_HEX}")));
            }
            (Phase::Sum { .. }, Answer::Err(refusal)) => Phase::Report(Err(refused(refusal))),
            (Phase::SkipSum { failure }, Answer::Ok { len }) => {
                Phase::SkipBody { len: self.small(len)? as u64, failure }
            }
            (Phase::SkipSum { failure }, Answer::Err(_)) => Phase::Report(Err(failure)),
            (Phase::ListAnswer, Answer::Ok { len }) => Phase::ListBody { len: self.small(len)? },
            (Phase::ListAnswer, Answer::Err(refusal)) => return Err(refused(refusal)),
            (_, Answer::Bye) => return Err(self.broke("BYE before every request was answered")),
            (_, _) => return Err(self.broke("an answer where none was expected")),
        };
        Ok(())
    }

    /// What became of a [`Step::Receive`]: the body arrived whole; or the
    /// destination could not be opened, so the body is dropped and the file
    /// fails alone; or the body was cut short, which ends the connection.
    pub fn on_received(&mut self, received: Result<Received<F>, NotReceived>) -> Result<(), ClientError> {
        let Phase::Receiving { len } = self.phase else { return Ok(()) };
        self.phase = match received {
            Ok(received) if self.verify() => Phase::Sum { received },
            Ok(received) => Phase::Commit { received, digest: None },
            Err(NotReceived::Unopened(error)) => Phase::Discard { len, failure: error.into() },
            Err(NotReceived::Cut(error)) => {
                let item = self.item();
                return Err(error.into_client(item.path.as_str(), len, item.dest.name(), self.config.timeout));
            }
        };
        Ok(())
    }

    /// How a [`Step::Discard`] went.
    pub fn on_discarded(&self, discarded: Result<(), BodyError>) -> Result<(), ClientError> {
        discarded.map_err(|e| self.cut(e))
    }

    /// The bytes of a [`Step::ReadSmall`], or why they did not all come.
    pub fn on_small(&mut self, body: Result<Vec<u8>, BodyError>) -> Result<(), ClientError> {
        let body = body.map_err(|e| self.cut(e))?;
        self.phase = match std::mem::replace(&mut self.phase, Phase::Waiting) {
            Phase::Digest { received } => {
                let digest =
                    parse_digest(&body).ok_or_else(|| self.broke("SUM body is not 64 lower-case hex digits"))?;
                Phase::Commit { received, digest: Some(digest) }
            }
            Phase::ListBody { .. } => {
                self.entries = parse_listing(&body).map_err(|e| self.broke(&e.to_string()))?;
                Phase::Bye
            }
            other => other,
        };
        Ok(())
    }

    /// What became of a [`Step::Commit`].
    pub fn on_committed(&mut self, committed: Result<(), SaveError>) {
        if let Phase::Committing { digest } = self.phase {
            self.phase = Phase::Report(committed.map(|()| digest).map_err(ClientError::from));
        }
    }

    /// The request lines that keep [`PIPELINE_WINDOW`] items in flight,
    /// and QUIT after the last, so the server closes once it has answered
    /// everything; `None` when there is nothing new to send.
    fn refill(&mut self) -> Option<Vec<u8>> {
        let Job::Get(plan) = self.job else { return None };
        if matches!(self.phase, Phase::Greeting) || self.sent > plan.items.len() {
            return None;
        }
        let mut out = Vec::new();
        let until = (self.current + PIPELINE_WINDOW).min(plan.items.len());
        while self.sent < until {
            let item = &plan.items[self.sent];
            Request::Get { path: item.path.clone(), offset: item.offset, length: None }.encode(&mut out);
            if plan.verify {
                Request::Sum { path: item.path.clone() }.encode(&mut out);
            }
            self.sent += 1;
        }
        if self.sent == plan.items.len() {
            Request::Quit.encode(&mut out);
            self.sent += 1;
        }
        (!out.is_empty()).then_some(out)
    }

    fn items(&self) -> &'p [Item] {
        match self.job {
            Job::Get(plan) => &plan.items,
            Job::List(_) => &[],
        }
    }

    fn item(&self) -> &'p Item {
        &self.items()[self.current]
    }

    fn verify(&self) -> bool {
        matches!(self.job, Job::Get(plan) if plan.verify)
    }

    /// The path the answer being read is about.
    fn path(&self) -> &str {
        match self.job {
            Job::Get(_) => self.item().path.as_str(),
            Job::List(path) => path.as_str(),
        }
    }

    /// Checks that a body meant for memory (LIST, SUM) is of a sane size.
    fn small(&self, len: u64) -> Result<usize, ClientError> {
        usize::try_from(len)
            .ok()
            .filter(|_| len <= MAX_SMALL_BODY)
            .ok_or_else(|| self.broke(&format!("a body of {len} bytes where at most {MAX_SMALL_BODY} fit")))
    }

    /// The server sent something FERRY/1 does not allow.
    fn broke(&self, detail: &str) -> ClientError {
        ClientError::Protocol { addr: self.config.addr.clone(), detail: detail.to_owned() }
    }

    /// A body read into memory or dropped did not arrive whole.
    fn cut(&self, error: BodyError) -> ClientError {
        error.into_client(&self.config.addr, 0, Path::new("memory"), self.config.timeout)
    }
}

/// How a blocking driver does each step of a [`Session`].
pub trait Steps {
    /// The driver's open file.
    type File;
    /// Reads one line with `parse` (the greeting, an answer header), within
    /// the client's timeout.
    fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>>;
    /// Writes request lines ([`Step::Send`]).
    fn send(&mut self, requests: &[u8]) -> io::Result<()>;
    /// Receives a body into its destination ([`Step::Receive`]).
    fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<Self::File>, NotReceived>;
    /// Reads a body into memory ([`Step::ReadSmall`]).
    fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError>;
    /// Reads and drops a body ([`Step::Discard`]).
    fn discard(&mut self, len: u64) -> Result<(), BodyError>;
    /// Commits a received file ([`Step::Commit`]).
    fn commit(&mut self, dest: &Dest, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;
}

/// How an async driver does each step of a [`Session`]: [`Steps`], awaited.
// The futures are awaited where they are made, on the client's own
// single-threaded executor, so no `Send` bound is needed on them.
#[allow(async_fn_in_trait)]
pub trait AsyncSteps {
    /// The driver's open file.
    type File;
    /// Reads one line with `parse` (the greeting, an answer header), within
    /// the client's timeout.
    async fn line<T, E>(&mut self, parse: impl ParseLine<T, E>) -> Result<T, LineError<E>>;
    /// Writes request lines ([`Step::Send`]).
    async fn send(&mut self, requests: &[u8]) -> io::Result<()>;
    /// Receives a body into its destination ([`Step::Receive`]).
    async fn receive(&mut self, item: &Item, len: u64, hash: bool) -> Result<Received<Self::File>, NotReceived>;
    /// Reads a body into memory ([`Step::ReadSmall`]).
    async fn small(&mut self, len: usize) -> Result<Vec<u8>, BodyError>;
    /// Reads and drops a body ([`Step::Discard`]).
    async fn discard(&mut self, len: u64) -> Result<(), BodyError>;
    /// Commits a received file ([`Step::Commit`]).
    async fn commit(&mut self, dest: &Dest, file: Self::File, digest: Option<[u8; 32]>) -> Result<(), SaveError>;
}

impl<'p, F> Session<'p, F> {
    /// Does the steps with a blocking `driver` until the conversation is
    /// over, telling `report` how each file went.
    pub fn run(mut self, driver: &mut impl Steps<File = F>, report: &mut crate::Report) -> Result<Self, ClientError> {
        loop {
            match self.step() {
                Step::ReadGreeting => self.on_greeting(driver.line(parse_greeting))?,
                Step::Send(requests) => self.on_sent(driver.send(&requests))?,
                Step::ReadAnswer => self.on_answer(driver.line(parse_answer))?,
                Step::Receive { item, len, hash } => self.on_received(driver.receive(item, len, hash))?,
                Step::ReadSmall(len) => self.on_small(driver.small(len))?,
                Step::Discard(len) => self.on_discarded(driver.discard(len))?,
                Step::Commit { dest, file, digest } => self.on_committed(driver.commit(dest, file, digest)),
                Step::Report { item, outcome } => report.record(item, outcome),
                Step::Done => return Ok(self),
            }
        }
    }

    /// [`Session::run`], with an async `driver`.
    pub async fn run_async(
        mut self,
        driver: &mut impl AsyncSteps<File = F>,
        report: &mut crate::Report,
    ) -> Result<Self, ClientError> {
        loop {
            match self.step() {
                Step::ReadGreeting => self.on_greeting(driver.line(parse_greeting).await)?,
                Step::Send(requests) => self.on_sent(driver.send(&requests).await)?,
                Step::ReadAnswer => self.on_answer(driver.line(parse_answer).await)?,
                Step::Receive { item, len, hash } => self.on_received(driver.receive(item, len, hash).await)?,
                Step::ReadSmall(len) => self.on_small(driver.small(len).await)?,
                Step::Discard(len) => self.on_discarded(driver.discard(len).await)?,
                Step::Commit { dest, file, digest } => self.on_committed(driver.commit(dest, file, digest).await),
                Step::Report { item, outcome } => report.record(item, outcome),
                Step::Done => return Ok(self),
            }
        }
    }
}

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
    /// A tally for `item`'s body of `len` bytes; `hash` as [`Step::Receive`] says.
    pub fn new(item: &Item, len: u64, hash: bool) -> Tally {
        let stream = matches!(item.dest, crate::Dest::Stream(_));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;
    use ferry_proto::{ErrorCode, Refusal};

    use super::*;
    use crate::args::{Cli, Command};

    /// A plan for `paths` into a fresh folder, and that folder.
    fn plan(paths: &[&str], flags: &[&str]) -> (tempfile::TempDir, Plan) {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().to_str().expect("utf-8").to_owned();
        let mut args = vec!["ferry", "get", "127.0.0.1:1"];
        args.extend(paths);
        args.extend(["-o", &folder]);
        args.extend(flags);
        let Command::Get(get) = Cli::try_parse_from(args).expect("parses").command else { panic!("not get") };
        let plan = Plan::new(&get).expect("plan");
        (dir, plan)
    }

    fn config() -> ClientConfig {
        ClientConfig { addr: "h:1".to_owned(), timeout: Duration::from_secs(1) }
    }

    fn greeted<'p>(session: &mut Session<'p, ()>) {
        assert!(matches!(session.step(), Step::ReadGreeting));
        session.on_greeting(Ok(Greeting::Ferry { implementation: "test".into() })).expect("greeted");
    }

    fn sent(step: Step<'_, ()>) -> String {
        match step {
            Step::Send(bytes) => String::from_utf8(bytes).expect("utf-8"),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    fn ok(len: u64) -> Result<Answer, LineError<AnswerError>> {
        Ok(Answer::Ok { len })
    }

    #[test]
    fn a_plain_get_pipelines_receives_commits_reports_and_says_quit() {
        let (_dir, plan) = plan(&["a", "my file"], &[]);
        let mut session = Session::<()>::get(&plan, &config());
        greeted(&mut session);
        assert_eq!(sent(session.step()), "GET a\nGET my%20file\nQUIT\n");
        assert!(matches!(session.step(), Step::ReadAnswer));
        session.on_answer(ok(3)).expect("answer");
        let Step::Receive { item, len: 3, hash: false } = session.step() else { panic!("not Receive") };
        assert_eq!(item.path.as_str(), "a");
        session.on_received(Ok(Received::File(()))).expect("received");
        assert!(matches!(session.step(), Step::Commit { digest: None, .. }));
        session.on_committed(Ok(()));
        assert!(matches!(session.step(), Step::Report { outcome: Ok(None), .. }));
        // The second is refused: reported, and the connection goes on.
        assert!(matches!(session.step(), Step::ReadAnswer));
        session.on_answer(Ok(Answer::Err(Refusal::new(ErrorCode::NotFound, "my file does not exist")))).expect("ok");
        let Step::Report { outcome: Err(error), .. } = session.step() else { panic!("not a failure") };
        assert!(error.to_string().contains("NOT_FOUND"), "{error}");
        assert!(matches!(session.step(), Step::ReadAnswer));
        session.on_answer(Ok(Answer::Bye)).expect("bye");
        assert!(matches!(session.step(), Step::Done));
    }

    #[test]
    fn verifying_pairs_each_get_with_its_sum_and_skips_the_sum_of_a_refusal() {
        let (_dir, plan) = plan(&["a", "b"], &["--verify"]);
        let mut session = Session::<()>::get(&plan, &config());
        greeted(&mut session);
        assert_eq!(sent(session.step()), "GET a\nSUM a\nGET b\nSUM b\nQUIT\n");
        // a: refused; its SUM's answer (OK 64) is read and dropped.
        session.step();
        session.on_answer(Ok(Answer::Err(Refusal::new(ErrorCode::Forbidden, "no")))).expect("ok");
        assert!(matches!(session.step(), Step::ReadAnswer));
        session.on_answer(ok(64)).expect("ok");
        assert!(matches!(session.step(), Step::Discard(64)));
        assert!(matches!(session.step(), Step::Report { outcome: Err(_), .. }));
        // b: body, then digest, then commit against it.
        session.step();
        session.on_answer(ok(5)).expect("ok");
        assert!(matches!(session.step(), Step::Receive { len: 5, .. }));
        session.on_received(Ok(Received::File(()))).expect("received");
        session.step();
        session.on_answer(ok(64)).expect("ok");
        assert!(matches!(session.step(), Step::ReadSmall(64)));
        let digest = blake3::hash(b"hello").to_hex().to_string().into_bytes();
        session.on_small(Ok(digest)).expect("digest");
        assert!(matches!(session.step(), Step::Commit { digest: Some(_), .. }));
        session.on_committed(Ok(()));
        assert!(matches!(session.step(), Step::Report { outcome: Ok(Some(_)), .. }));
    }

    #[test]
    fn a_destination_that_cannot_open_fails_alone_and_its_body_is_dropped() {
        let (_dir, plan) = plan(&["a", "b"], &[]);
        let mut session = Session::<()>::get(&plan, &config());
        greeted(&mut session);
        session.step();
        session.step();
        session.on_answer(ok(1000)).expect("ok");
        session.step();
        let refused = SaveError::NoFolder { path: "x".into() };
        session.on_received(Err(NotReceived::Unopened(refused))).expect("the file fails, not the connection");
        assert!(matches!(session.step(), Step::Discard(1000)));
        assert!(matches!(session.step(), Step::Report { outcome: Err(_), .. }));
        assert!(matches!(session.step(), Step::ReadAnswer));
    }

    #[test]
    fn what_breaks_ferry_ends_the_connection() {
        let (_dir, plan) = plan(&["a"], &["--verify"]);
        let mut session = Session::<()>::get(&plan, &config());
        greeted(&mut session);
        session.step();
        session.step();
        assert!(session.on_answer(Ok(Answer::Bye)).is_err(), "BYE instead of an answer");

        let mut session = Session::<()>::get(&plan, &config());
        greeted(&mut session);
        session.step();
        session.step();
        session.on_answer(ok(1)).expect("ok");
        session.step();
        session.on_received(Ok(Received::File(()))).expect("ok");
        session.step();
        assert!(session.on_answer(ok(65)).is_err(), "a SUM body that is not 64 digits");

        let busy = Session::<()>::get(&plan, &config()).on_greeting(Ok(Greeting::Busy { message: "full".into() }));
        assert!(matches!(busy, Err(ClientError::Busy { .. })));
    }

    #[test]
    fn the_pipeline_keeps_a_bounded_window() {
        let names: Vec<String> = (0..PIPELINE_WINDOW + 2).map(|i| format!("f{i}")).collect();
        let paths: Vec<&str> = names.iter().map(String::as_str).collect();
        let (_dir, plan) = plan(&paths, &[]);
        let mut session = Session::<()>::get(&plan, &config());
        greeted(&mut session);
        assert_eq!(sent(session.step()).lines().count(), PIPELINE_WINDOW);
        for _ in 0..2 {
            assert!(matches!(session.step(), Step::ReadAnswer));
            session.on_answer(Ok(Answer::Err(Refusal::new(ErrorCode::NotFound, "gone")))).expect("ok");
            assert!(matches!(session.step(), Step::Report { .. }));
            // Each answered item lets one more in; the last one brings QUIT.
            let more = sent(session.step());
            assert!(more.starts_with("GET f3"), "{more}");
        }
        assert!(matches!(session.step(), Step::ReadAnswer));
    }

    #[test]
    fn a_listing_is_read_then_bye() {
        let path = WirePath::new("docs").expect("valid");
        let mut session = Session::<()>::list(&path, &config());
        greeted(&mut session);
        assert_eq!(sent(session.step()), "LIST docs\nQUIT\n");
        session.step();
        session.on_answer(ok(8)).expect("ok");
        assert!(matches!(session.step(), Step::ReadSmall(8)));
        session.on_small(Ok(b"f 1 a.b\n".to_vec())).expect("listing");
        session.step();
        session.on_answer(Err(LineError::Closed)).expect("a missing BYE costs nothing");
        assert!(matches!(session.step(), Step::Done));
        assert_eq!(session.into_entries().len(), 1);
        let mut refused = Session::<()>::list(&path, &config());
        greeted(&mut refused);
        refused.step();
        refused.step();
        assert!(refused.on_answer(Ok(Answer::Err(Refusal::new(ErrorCode::NotFound, "no")))).is_err());
    }
}
