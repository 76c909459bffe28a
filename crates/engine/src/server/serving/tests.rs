//! `Serving` driven by hand with a fake clock: each step's order, every
//! deadline, the gate on the access token.

use super::*;

/// Answers as bytes in memory, the way the share's batches look to the
/// session.
#[derive(Debug, Default)]
struct Written {
    bytes: Vec<u8>,
    closes: bool,
    log: Vec<Logged>,
}

impl Answers for Written {
    fn bytes(bytes: Vec<u8>) -> Written {
        Written { bytes, ..Written::default() }
    }
    fn closes(&self) -> bool {
        self.closes
    }
    fn take_log(&mut self) -> Vec<Logged> {
        std::mem::take(&mut self.log)
    }
}

const IDLE: Duration = Duration::from_secs(1);

fn peer() -> SocketAddr {
    "127.0.0.1:9".parse().expect("addr")
}

fn bytes(next: Next<Written>) -> Vec<u8> {
    let Next::Write { batch, .. } = next else { panic!("expected Write, got {next:?}") };
    batch.bytes
}

fn request(line: &str) -> Result<Request, Refusal> {
    match crate::parse_request(line.as_bytes()) {
        crate::Parsed::Complete { value, .. } => value,
        crate::Parsed::Incomplete => panic!("incomplete"),
    }
}

/// A session past its greeting, waiting for requests, at `now`.
fn greeted(now: Instant) -> Serving<Written> {
    let mut serving = Serving::new(peer(), "test", IDLE, now);
    assert_eq!(bytes(serving.next(now, false)), b"FERRY/1 test\n");
    serving.on_written(Ok(()), now).expect("written");
    serving
}

#[test]
fn greet_read_answer_write_and_read_again() {
    let now = Instant::now();
    let mut serving = greeted(now);
    assert!(matches!(serving.next(now, false), Next::Read { .. }));
    serving.pending().push_back(request("SUM a\n"));
    serving.on_read(Some(Ok(()))).expect("read");
    assert!(matches!(serving.next(now, false), Next::Answer { heavy: true, .. }));
    let pending = serving.take_pending();
    assert_eq!(pending.len(), 1);
    serving.on_answered((Written::bytes(b"OK 0\n".to_vec()), VecDeque::new()));
    assert_eq!(bytes(serving.next(now, false)), b"OK 0\n");
    serving.on_written(Ok(()), now).expect("written");
    assert!(matches!(serving.next(now, false), Next::Read { .. }));
}

#[test]
fn every_deadline_counts_from_the_time_it_is_given() {
    let start = Instant::now();
    let mut serving = greeted(start);
    // The wait for a request line starts when the session is asked.
    let later = start + Duration::from_secs(7);
    let Next::Read { deadline } = serving.next(later, false) else { panic!("not Read") };
    assert_eq!(deadline, later + IDLE);
    // An answer must be ready one idle timeout after its request was read.
    serving.pending().push_back(request("LIST /\n"));
    serving.on_read(Some(Ok(()))).expect("read");
    let read = later + Duration::from_millis(300);
    let Next::Answer { deadline, heavy: true } = serving.next(read, false) else { panic!("not Answer") };
    assert_eq!(deadline, read + IDLE);
    // A pipelined GET behind it is not heavy.
    serving.on_answered((Written::bytes(b"OK 0\n".to_vec()), VecDeque::from([request("GET a\n")])));
    serving.next(read, false);
    serving.on_written(Ok(()), read).expect("written");
    let Next::Answer { heavy: false, .. } = serving.next(read, false) else { panic!("not Answer") };
}

#[test]
fn silence_is_answered_timeout_and_closed() {
    let now = Instant::now();
    let mut serving = Serving::<Written>::new(peer(), "test", Duration::from_millis(500), now);
    serving.next(now, false);
    serving.on_written(Ok(()), now).expect("written");
    serving.next(now, false);
    serving.on_read(Some(Err(LineError::TimedOut))).expect("read");
    let line = String::from_utf8(bytes(serving.next(now, false))).expect("utf-8");
    assert!(line.starts_with("ERR TIMEOUT ") && line.contains("0.5 s"), "{line}");
    serving.on_written(Ok(()), now).expect("written");
    assert!(matches!(serving.next(now, false), Next::Close));
}

#[test]
fn shutdown_between_requests_and_a_departed_peer_stop_at_once() {
    let now = Instant::now();
    let mut serving = Serving::<Written>::new(peer(), "test", IDLE, now);
    serving.next(now, true);
    serving.on_written(Ok(()), now).expect("the greeting goes out even at shutdown");
    assert!(matches!(serving.next(now, true), Next::Stop));

    let mut serving = greeted(now);
    serving.next(now, false);
    serving.on_read(Some(Err(LineError::Closed))).expect("read");
    assert!(matches!(serving.next(now, false), Next::Stop));

    let mut serving = greeted(now);
    serving.next(now, false);
    serving.on_read(None).expect("shutdown came first");
    assert!(matches!(serving.next(now, false), Next::Stop));
}

#[test]
fn a_closing_answer_closes_and_busy_says_so_and_stops() {
    let now = Instant::now();
    let mut serving = greeted(now);
    serving.next(now, false);
    serving.on_read(Some(Ok(()))).expect("read");
    serving.next(now, false);
    serving.on_answered((Written { bytes: b"BYE\n".to_vec(), closes: true, log: Vec::new() }, VecDeque::new()));
    serving.next(now, false);
    serving.on_written(Ok(()), now).expect("written");
    assert!(matches!(serving.next(now, false), Next::Close));

    let mut busy = Serving::<Written>::busy(peer(), 2, now);
    let Next::Write { batch, within } = busy.next(now, false) else { panic!("not Write") };
    let line = String::from_utf8(batch.bytes).expect("utf-8");
    assert!(line.starts_with("ERR BUSY serving 2 connections"), "{line}");
    assert_eq!(within, BUSY_WRITE, "a client past the limit gets a second to take its answer");
    busy.on_written(Ok(()), now).expect("written");
    assert!(matches!(busy.next(now, false), Next::Stop));
}

fn with_token(now: Instant) -> Serving<Written> {
    let token = Arc::new(Token::new(b"right").expect("token"));
    let mut serving = Serving::new(peer(), "test", IDLE, now).requiring(Some(token));
    serving.next(now, false);
    serving.on_written(Ok(()), now).expect("written");
    assert!(matches!(serving.next(now, false), Next::Read { .. }));
    serving
}

#[test]
fn the_right_token_first_is_answered_like_any_request_and_opens_the_connection() {
    let now = Instant::now();
    let mut serving = with_token(now);
    serving.pending().extend([request("AUTH right\n"), request("GET a\n")]);
    serving.on_read(Some(Ok(()))).expect("read");
    assert!(matches!(serving.next(now, false), Next::Answer { .. }));
    assert_eq!(serving.take_pending().len(), 2, "AUTH and the GET behind it go to the share");
    serving.on_answered((Written::bytes(b"OK 0\n".to_vec()), VecDeque::from([request("GET b\n")])));
    serving.next(now, false);
    serving.on_written(Ok(()), now).expect("written");
    assert!(matches!(serving.next(now, false), Next::Answer { .. }), "no token is asked twice");
}

#[test]
fn a_wrong_or_missing_token_waits_drops_what_comes_then_refuses_and_closes() {
    for first in ["AUTH wrong\n", "GET a\n", "AUTH righ\n", "QUIT\n"] {
        let now = Instant::now();
        let mut serving = with_token(now);
        serving.pending().extend([request(first), request("AUTH right\n")]);
        serving.on_read(Some(Ok(()))).expect("read");
        let Next::Read { deadline } = serving.next(now, false) else { panic!("{first}: not a wait") };
        assert_eq!(deadline, now + AUTH_PENALTY, "{first}");
        // More requests in the meantime are dropped, even the right token.
        serving.pending().push_back(request("AUTH right\n"));
        serving.on_read(Some(Ok(()))).expect("read");
        assert!(serving.pending().is_empty(), "{first}");
        let early = now + AUTH_PENALTY / 2;
        assert!(matches!(serving.next(early, false), Next::Read { deadline: d } if d == deadline), "{first}");
        serving.on_read(Some(Err(LineError::TimedOut))).expect("read");
        let line = String::from_utf8(bytes(serving.next(deadline, false))).expect("utf-8");
        assert!(line.starts_with("ERR UNAUTHORIZED "), "{first}: {line}");
        serving.on_written(Ok(()), deadline).expect("written");
        assert!(matches!(serving.next(deadline, false), Next::Close), "{first}");
    }
    // A refused client that leaves, or a shutdown, ends it at once.
    let now = Instant::now();
    let mut serving = with_token(now);
    serving.pending().push_back(request("GET a\n"));
    serving.on_read(Some(Ok(()))).expect("read");
    serving.next(now, false);
    serving.on_read(Some(Err(LineError::Closed))).expect("read");
    assert!(matches!(serving.next(now, false), Next::Stop));
    let mut serving = with_token(now);
    serving.pending().push_back(request("GET a\n"));
    serving.on_read(Some(Ok(()))).expect("read");
    serving.next(now, false);
    assert!(matches!(serving.next(now, true), Next::Stop));
}

#[test]
fn a_failed_write_is_passed_on() {
    let now = Instant::now();
    let mut serving = Serving::<Written>::new(peer(), "test", IDLE, now);
    serving.next(now, false);
    let failed = serving.on_written(Err(io::Error::from(io::ErrorKind::BrokenPipe).into()), now);
    assert_eq!(failed.expect_err("passed on").kind(), io::ErrorKind::BrokenPipe);
}
