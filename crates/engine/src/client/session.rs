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
//! The loop that asks for steps and hands back results is written once, in
//! [`super::steps`], for blocking and for async drivers.
//!
//! `I` is the application's description of one file to fetch ([`Fetch`]:
//! its path, offset and where its bytes go); `F` is the driver's open
//! `.part` (a `std::fs::File`, a `Sink` over a pool). The session holds both
//! without looking inside.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ClientError, SaveError};
use super::step::{NotReceived, Received, Step};
use super::{ClientConfig, Fetch};
use crate::body::{BodyError, MAX_SMALL_BODY};
use crate::frame::LineError;
use crate::{Answer, AnswerError, ErrorCode, Greeting, GreetingError, ListingError, Request, WirePath, parse_digest};

/// How many items' requests a client keeps ahead of the answers it has read.
///
/// Pipelining hides the round trip per file; a bounded window keeps a client
/// with thousands of paths from writing requests while the server, blocked
/// on writing answers nobody reads yet, stops reading them: a deadlock.
pub const PIPELINE_WINDOW: usize = 32;

/// The largest body of a file that failed (its destination refused it)
/// that a client reads and drops to stay in step with the pipeline; past
/// it, ending the connection costs less than reading on.
pub const DISCARD_MOST: u64 = 16 << 20;

/// The length of a SUM body: 64 hex digits.
pub const DIGEST_HEX: usize = 64;

/// How long a client waits for the greeting (or `--timeout`, if shorter).
/// A FERRY/1 server greets as soon as it accepts; one that says nothing is
/// most often a server started with `--tls`, waiting for the TLS handshake
/// a plain client never begins, and the user should hear so within seconds.
pub const GREETING_WAIT: Duration = Duration::from_millis(1500);

/// One conversation with a server: a `get` of some files, or an `ls`.
#[derive(Debug)]
pub struct Session<'p, I, F> {
    job: Job<'p, I>,
    config: ClientConfig,
    /// Items whose requests are written, plus one once QUIT is.
    sent: usize,
    /// The item whose answers are being read.
    current: usize,
    phase: Phase<F>,
}

#[derive(Debug)]
enum Job<'p, I> {
    Get {
        items: &'p [I],
        verify: bool,
    },
    /// A LIST or a TREE.
    List(&'p Request),
}

// Not derived: a derive would ask `I: Copy`, and only the references are copied.
impl<I> Clone for Job<'_, I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I> Copy for Job<'_, I> {}

/// Where the conversation is. The phases a driver owes a call back from
/// (`Waiting`) hold nothing.
#[derive(Debug)]
enum Phase<F> {
    Greeting,
    /// The access token to send, before any request.
    Auth,
    /// Its answer.
    AuthAnswer,
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
        len: u64,
    },
    /// QUIT was sent and everything answered: the BYE comes next.
    Bye,
    /// The driver owes the session the result of the last step.
    Waiting,
    Done,
}

impl<'p, I: Fetch, F> Session<'p, I, F> {
    /// A session that fetches `items` from the server, in order, each
    /// followed by its SUM when `verify`.
    pub fn get(items: &'p [I], verify: bool, config: &ClientConfig) -> Self {
        Session::new(Job::Get { items, verify }, config)
    }

    /// A session that lists a folder on the server: `request` is a
    /// [`Request::List`] (its entries) or a [`Request::Tree`] (every entry
    /// under it); any other request is sent and its answer read as a LIST's.
    pub fn list(request: &'p Request, config: &ClientConfig) -> Self {
        Session::new(Job::List(request), config)
    }

    fn new(job: Job<'p, I>, config: &ClientConfig) -> Self {
        Session { job, config: config.clone(), sent: 0, current: 0, phase: Phase::Greeting }
    }

    /// How long the greeting may take to arrive whole.
    pub fn greeting_wait(&self) -> Duration {
        self.config.timeout.min(GREETING_WAIT)
    }

    /// How long any other line (an answer header) may take.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// What to do next.
    pub fn step(&mut self) -> Step<'p, I, F> {
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
                Phase::Auth => {
                    let mut request = Vec::new();
                    if let Some(token) = &self.config.token {
                        Request::Auth { token: token.clone() }.encode(&mut request);
                    }
                    (Phase::AuthAnswer, Some(Step::Send(request)))
                }
                Phase::Start => match self.job {
                    Job::Get { items: [], .. } => (Phase::Bye, None),
                    Job::Get { .. } => (Phase::Get, None),
                    Job::List(request) => {
                        let mut requests = Vec::new();
                        request.encode(&mut requests);
                        Request::Quit.encode(&mut requests);
                        (Phase::ListAnswer, Some(Step::Send(requests)))
                    }
                },
                Phase::AuthAnswer
                | Phase::Get
                | Phase::Sum { .. }
                | Phase::SkipSum { .. }
                | Phase::ListAnswer
                | Phase::Bye => {
                    // Still waiting for that answer: put the phase back.
                    (phase, Some(Step::ReadAnswer))
                }
                Phase::Body { len } => {
                    let item = self.item();
                    let hash = verify && item.streams();
                    (Phase::Receiving { len }, Some(Step::Receive { item, len, hash }))
                }
                Phase::Digest { received } => (Phase::Digest { received }, Some(Step::ReadSmall(DIGEST_HEX))),
                Phase::ListBody { len } => match self.job {
                    Job::List(Request::Tree { .. }) => (Phase::ListBody { len }, Some(Step::ReadTree(len))),
                    _ => (Phase::ListBody { len }, Some(Step::ReadListing(len))),
                },
                Phase::Commit { received: Received::File(file), digest } => {
                    (Phase::Committing { digest }, Some(Step::Commit { item: self.item(), file, digest }))
                }
                Phase::Commit { received: Received::Stream(local), digest } => {
                    let checked = match (local, digest) {
                        (Some(local), Some(remote)) => check_stream(self.item().sink(), &local, &remote),
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
        let (addr, waited) = (&self.config.addr, self.greeting_wait());
        match greeting.map_err(|e| e.into_client(addr, waited))? {
            Greeting::Ferry { implementation } => {
                tracing::debug!(%addr, %implementation, "connected");
                self.phase = if self.config.token.is_some() { Phase::Auth } else { Phase::Start };
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
        if let Answer::Err(refusal) = &answer
            && refusal.code == ErrorCode::Unauthorized
        {
            // Said instead of any answer once the server has refused this
            // client: nothing more will be answered, whatever was asked.
            let (addr, gave_token) = (self.config.addr.clone(), self.config.token.is_some());
            return Err(ClientError::Unauthorized { addr, gave_token, message: refusal.message.clone() });
        }
        let refused = |refusal| ClientError::Refused { path: self.path().to_owned(), refusal };
        self.phase = match (phase, answer) {
            (Phase::AuthAnswer, Answer::Ok { len: 0 }) => Phase::Start,
            (Phase::AuthAnswer, Answer::Ok { len }) => {
                return Err(self.broke(&format!("AUTH answered with a body of {len} bytes")));
            }
            (Phase::AuthAnswer, Answer::Err(refusal)) => {
                return Err(self.broke(&format!("AUTH refused with {}", refusal.code)));
            }
            (Phase::Get, Answer::Ok { len }) if self.config.max_size.is_some_and(|max| len > max) => {
                let (path, max) = (self.path().to_owned(), self.config.max_size.unwrap_or(len));
                self.drop_body(len, ClientError::TooLarge { path, len, max })?
            }
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
            (Phase::ListAnswer, Answer::Ok { len }) => Phase::ListBody { len },
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
            Err(NotReceived::Unopened(error)) => self.drop_body(len, error.into())?,
            Err(NotReceived::Cut(error)) => {
                let item = self.item();
                return Err(error.into_client(item.path().as_str(), len, item.sink(), self.config.timeout));
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
            other => other,
        };
        Ok(())
    }

    /// How a [`Step::ReadListing`] went: whether the body arrived whole, and
    /// whether its every line was well formed.
    pub fn on_listing(
        &mut self,
        read: Result<(), BodyError>,
        lines: Result<(), ListingError>,
    ) -> Result<(), ClientError> {
        read.map_err(|e| self.cut(e))?;
        lines.map_err(|e| self.broke(&e.to_string()))?;
        if let Phase::ListBody { .. } = self.phase {
            self.phase = Phase::Bye;
        }
        Ok(())
    }

    /// How a [`Step::ReadTree`] went: as [`Session::on_listing`], or
    /// `stopped` by the application, which ends the connection there.
    pub fn on_tree(
        &mut self,
        read: Result<(), BodyError>,
        stopped: Option<String>,
        lines: Result<(), ListingError>,
    ) -> Result<(), ClientError> {
        if let Some(reason) = stopped {
            lines.map_err(|e| self.broke(&e.to_string()))?;
            return Err(ClientError::Stopped { path: self.path().to_owned(), reason });
        }
        self.on_listing(read, lines)
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
        let Job::Get { items, verify } = self.job else { return None };
        if matches!(self.phase, Phase::Greeting | Phase::Auth | Phase::AuthAnswer) || self.sent > items.len() {
            return None;
        }
        let mut out = Vec::new();
        let until = (self.current + PIPELINE_WINDOW).min(items.len());
        while self.sent < until {
            let item = &items[self.sent];
            Request::Get { path: item.path().clone(), offset: item.offset(), length: None }.encode(&mut out);
            if verify {
                Request::Sum { path: item.path().clone() }.encode(&mut out);
            }
            self.sent += 1;
        }
        if self.sent == items.len() {
            Request::Quit.encode(&mut out);
            self.sent += 1;
        }
        (!out.is_empty()).then_some(out)
    }

    fn items(&self) -> &'p [I] {
        match self.job {
            Job::Get { items, .. } => items,
            Job::List(_) => &[],
        }
    }

    fn item(&self) -> &'p I {
        &self.items()[self.current]
    }

    fn verify(&self) -> bool {
        matches!(self.job, Job::Get { verify: true, .. })
    }

    /// The path the answer being read is about.
    fn path(&self) -> &str {
        match self.job {
            Job::Get { .. } => self.item().path().as_str(),
            Job::List(request) => request.path().map_or("/", WirePath::as_str),
        }
    }

    /// Checks that a body meant for memory (LIST, SUM) is of a sane size.
    fn small(&self, len: u64) -> Result<usize, ClientError> {
        usize::try_from(len)
            .ok()
            .filter(|_| len <= MAX_SMALL_BODY)
            .ok_or_else(|| self.broke(&format!("a body of {len} bytes where at most {MAX_SMALL_BODY} fit")))
    }

    /// The current file fails with `failure` before its body of `len` bytes
    /// is read: the body is read and dropped, to go on with the next file,
    /// unless it is too large to be worth it ([`DISCARD_MOST`]): then the
    /// connection ends, and the files after it fail with it.
    fn drop_body(&self, len: u64, failure: ClientError) -> Result<Phase<F>, ClientError> {
        if len > DISCARD_MOST {
            return Err(failure);
        }
        Ok(Phase::Discard { len, failure })
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

/// Checks the digest of bytes that were streamed to `sink` (computed on
/// their way out, since they cannot be read back) against the server's.
fn check_stream(sink: &Path, local: &blake3::Hash, remote: &[u8; 32]) -> Result<(), SaveError> {
    if local.as_bytes() == remote {
        return Ok(());
    }
    Err(SaveError::StreamMismatch {
        name: PathBuf::from(sink),
        local: local.to_hex().to_string(),
        remote: blake3::Hash::from_bytes(*remote).to_hex().to_string(),
    })
}
