//! Answering pipelined requests together.
//!
//! A client that pipelines (`ferry get` with several files, `ferry-load
//! --depth 32`) sends many requests in one segment. Answering them one at a
//! time costs the async servers a trip to their blocking pool per request
//! and every server a write per answer. A [`Batch`] is the answers to a run
//! of requests from the front of a connection's queue, gathered so that the
//! driver makes one trip and as few writes as the bytes allow: small
//! answers are joined into one buffer, and a file body goes between them
//! from the file.

use std::collections::VecDeque;

use ferry_engine::server::{Answers, Logged, starts_heavy};
use ferry_engine::{Answer, Parsed, Refusal, Request, parse_answer};

use crate::{FileBody, Reply, Root, Work};

/// How many pipelined requests a server takes from its buffer to answer in
/// one batch.
pub const BATCH_REQUESTS: usize = 64;

/// A batch stops gathering answers once it holds this many bytes of them,
/// which bounds a connection's memory while it is being answered.
pub const BATCH_BYTES: usize = 256 * 1024;

/// What a server writes for a run of requests, in order.
#[derive(Debug, Default)]
pub struct Batch {
    /// The writes, in order: no two `Bytes` are adjacent.
    pub parts: Vec<Part>,
    /// Whether the connection ends after the last part.
    pub closes: bool,
    /// One record per request answered, for the access log.
    pub log: Vec<Logged>,
    /// Whether it holds the answer to a heavy request (at most one).
    heavy: bool,
}

/// One write of a [`Batch`].
#[derive(Debug)]
pub enum Part {
    /// Headers and whole answers, joined.
    Bytes(Vec<u8>),
    /// A file's bytes, sent from the file after the header before it.
    Body(FileBody),
}

impl Batch {
    /// Bytes to write as they are (a greeting): no answer to log.
    pub fn bytes(bytes: Vec<u8>) -> Batch {
        Batch { parts: vec![Part::Bytes(bytes)], ..Batch::default() }
    }

    /// Whether it answers nothing.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() && self.parts.is_empty()
    }

    /// Adds a reply's bytes to the batch, and a log record for `request`.
    fn push(&mut self, request: Option<Request>, reply: Reply) {
        self.closes = reply.closes();
        self.log.push(logged(request, &reply));
        match reply {
            Reply::Abandon => {}
            Reply::Bytes { bytes, .. } => self.push_bytes(bytes),
            Reply::File { header, body } => {
                self.push_bytes(header);
                self.parts.push(Part::Body(body));
            }
        }
    }

    fn push_bytes(&mut self, bytes: Vec<u8>) {
        match self.parts.last_mut() {
            Some(Part::Bytes(joined)) => joined.extend_from_slice(&bytes),
            _ => self.parts.push(Part::Bytes(bytes)),
        }
    }

    /// Whether the batch is as large as it may get: it closes the connection,
    /// holds an open file (one a connection, so that 8,000 downloads need
    /// 8,000 descriptors, not more), or holds [`BATCH_BYTES`].
    fn is_full(&self) -> bool {
        self.closes
            || self.heavy
            || match self.parts.last() {
                Some(Part::Body(_)) => true,
                Some(Part::Bytes(bytes)) => bytes.len() >= BATCH_BYTES,
                None => false,
            }
    }
}

impl Answers for Batch {
    fn bytes(bytes: Vec<u8>) -> Batch {
        Batch::bytes(bytes)
    }

    fn closes(&self) -> bool {
        self.closes
    }

    fn take_log(&mut self) -> Vec<Logged> {
        std::mem::take(&mut self.log)
    }
}

impl From<Reply> for Batch {
    fn from(reply: Reply) -> Batch {
        let mut batch = Batch::default();
        batch.push(None, reply);
        batch
    }
}

/// What the access log says of `request` answered with `reply`.
fn logged(request: Option<Request>, reply: &Reply) -> Logged {
    let (status, bytes) = match reply {
        Reply::Abandon => ("-", 0),
        Reply::File { body, .. } => ("OK", body.len),
        Reply::Bytes { bytes, .. } => match parse_answer(bytes) {
            Ok(Parsed::Complete { value: Answer::Ok { len }, .. }) => ("OK", len),
            Ok(Parsed::Complete { value: Answer::Err(refusal), .. }) => (refusal.code.as_str(), 0),
            Ok(Parsed::Complete { value: Answer::Bye, .. }) => ("BYE", 0),
            _ => ("?", 0),
        },
    };
    Logged { request, status, bytes }
}

impl Root {
    /// Answers GETs from the front of `pending` for as long as each can be
    /// answered without waiting for a disk ([`Root::get_cached`]); stops at
    /// the first that is not a GET or would wait, which stays in `pending`
    /// for [`Root::batch`] on the blocking pool. Never blocks, so an async
    /// driver calls it on its event loop first: a hot file costs no trip to
    /// the pool, a cold one costs what it did.
    pub fn batch_cached(&self, pending: &mut VecDeque<Result<Request, Refusal>>) -> Batch {
        let mut batch = Batch::default();
        while !batch.is_full() {
            let reply = match pending.front() {
                Some(Ok(Request::Get { path, offset, length })) => self.get_cached(path, *offset, *length),
                Some(Ok(Request::Auth { .. })) => Some(Root::auth()),
                _ => None,
            };
            let Some(reply) = reply else { break };
            // The request just answered: a GET or an AUTH, so `Ok`.
            batch.push(pending.pop_front().and_then(Result::ok), reply);
        }
        batch
    }

    /// Answers requests from the front of `pending` (as
    /// [`ferry_engine::parse_pipelined`] queued them, refusals included), in
    /// order, until the batch [is full](Batch) or `pending` is empty. What
    /// is left waits for the next batch.
    ///
    /// A heavy request is answered only as the first of a batch, and ends
    /// it: the driver holds a permit for it (see [`starts_heavy`]), and
    /// answers queued behind it need none. `work` bounds it.
    ///
    /// Blocking, like [`Root::reply`].
    pub fn batch(&self, pending: &mut VecDeque<Result<Request, Refusal>>, work: &Work<'_>) -> Batch {
        let mut batch = Batch::default();
        while !batch.is_full() {
            if !batch.log.is_empty() && starts_heavy(pending) {
                break;
            }
            let Some(request) = pending.pop_front() else { break };
            match request {
                Ok(request) => {
                    batch.heavy = request.is_heavy();
                    let reply = self.reply(&request, work);
                    batch.push(Some(request), reply);
                }
                Err(refusal) => batch.push(None, Reply::refuse(refusal)),
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use ferry_engine::{Parsed, parse_pipelined};

    use super::*;
    use crate::INLINE_BODY;

    fn root_with(files: &[(&str, usize)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, len) in files {
            std::fs::write(dir.path().join(name), vec![b'x'; *len]).expect("write");
        }
        let root = Root::open(dir.path()).expect("root");
        (dir, root)
    }

    fn queue(lines: &str) -> VecDeque<Result<Request, Refusal>> {
        let mut pending = VecDeque::new();
        let parsed = parse_pipelined(lines.as_bytes(), &mut pending, BATCH_REQUESTS);
        assert!(matches!(parsed, Parsed::Complete { consumed, .. } if consumed == lines.len()));
        pending
    }

    fn request(line: &str) -> Request {
        queue(&format!("{line}\n")).pop_front().expect("one").expect("a request")
    }

    /// The bytes of each part, a body as its length.
    fn shape(batch: &Batch) -> Vec<String> {
        let part = |part: &Part| match part {
            Part::Bytes(bytes) => format!("{} bytes", bytes.len()),
            Part::Body(body) => format!("body {}", body.len),
        };
        batch.parts.iter().map(part).collect()
    }

    #[test]
    fn small_answers_are_joined_in_order() {
        let (_dir, root) = root_with(&[("a", 3)]);
        let mut pending = queue("GET a\nFETCH a\nGET missing\nGET a 1\n");
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert!(pending.is_empty());
        assert!(!batch.closes);
        let [Part::Bytes(bytes)] = batch.parts.as_slice() else { panic!("{:?}", shape(&batch)) };
        let text = String::from_utf8_lossy(bytes);
        let (first, rest) = text.split_once("ERR BAD_REQUEST ").expect("the refusal in its place");
        assert_eq!(first, "OK 3\nxxx");
        let (_, rest) = rest.split_once('\n').expect("one line");
        assert_eq!(rest, "ERR NOT_FOUND missing does not exist\nOK 2\nxx");
    }

    #[test]
    fn a_file_body_ends_the_batch() {
        let big = INLINE_BODY as usize + 1;
        let (_dir, root) = root_with(&[("a", 3), ("big", big)]);
        let mut pending = queue("GET a\nGET big\nGET a\n");
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert_eq!(shape(&batch), ["17 bytes".to_owned(), format!("body {big}")]);
        assert_eq!(pending.len(), 1);
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert_eq!(shape(&batch), ["8 bytes"]);
    }

    #[test]
    fn quit_and_closing_refusals_end_the_batch_and_close() {
        let (_dir, root) = root_with(&[("a", 3)]);
        let mut pending = queue("GET a\nQUIT\nGET a\n");
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert!(batch.closes);
        assert_eq!(shape(&batch), ["12 bytes"]);
        assert_eq!(pending.len(), 1, "nothing after QUIT is answered");
    }

    #[test]
    fn a_batch_holds_about_batch_bytes() {
        let (_dir, root) = root_with(&[("full", INLINE_BODY as usize)]);
        let mut pending = queue(&"GET full\n".repeat(10));
        let batch = root.batch(&mut pending, &Work::unbounded());
        let [Part::Bytes(bytes)] = batch.parts.as_slice() else { panic!("{:?}", shape(&batch)) };
        assert!(bytes.len() >= BATCH_BYTES && bytes.len() < BATCH_BYTES + INLINE_BODY as usize + 16);
        assert_eq!(pending.len(), 10 - BATCH_BYTES.div_ceil(INLINE_BODY as usize));
    }

    #[test]
    fn a_heavy_request_is_answered_alone_and_logged() {
        let (_dir, root) = root_with(&[("a", 3)]);
        let mut pending = queue("GET a\nSUM a\nLIST /\nGET nope\n");
        assert!(!starts_heavy(&pending));
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert_eq!(batch.log, [Logged { request: Some(request("GET a")), status: "OK", bytes: 3 }]);
        assert!(starts_heavy(&pending));
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert_eq!(batch.log, [Logged { request: Some(request("SUM a")), status: "OK", bytes: 64 }]);
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert_eq!(batch.log[0].request, Some(request("LIST /")));
        let batch = root.batch(&mut pending, &Work::unbounded());
        assert_eq!(batch.log, [Logged { request: Some(request("GET nope")), status: "NOT_FOUND", bytes: 0 }]);
        // A stopped heavy request is abandoned: no bytes, and the connection closes.
        let mut pending = queue("SUM a\nGET a\n");
        let batch = root.batch(&mut pending, &Work { stop: &|| true, ..Work::unbounded() });
        assert!(batch.closes && batch.parts.is_empty());
        assert_eq!(batch.log[0].status, "-");
    }

    #[test]
    fn a_single_reply_is_a_batch() {
        let batch = Batch::from(Reply::refuse(Refusal::new(ferry_engine::ErrorCode::Busy, "full")));
        assert!(batch.closes);
        assert_eq!(shape(&batch), ["14 bytes"]);
    }
}
