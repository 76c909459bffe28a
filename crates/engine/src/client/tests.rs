//! A client session driven by hand, step by step, with no socket.

use std::time::Duration;

use std::path::Path;

use super::*;
use crate::frame::LineError;
use crate::{Answer, AnswerError, ErrorCode, Greeting, Refusal, WirePath};

/// A file to fetch into a `.part` (or, when `streams`, to stdout).
#[derive(Debug)]
struct File {
    path: WirePath,
    streams: bool,
}

impl Fetch for File {
    fn path(&self) -> &WirePath {
        &self.path
    }
    fn offset(&self) -> u64 {
        0
    }
    fn sink(&self) -> &Path {
        Path::new(if self.streams { "stdout" } else { "x.part" })
    }
    fn streams(&self) -> bool {
        self.streams
    }
}

fn files(paths: &[&str]) -> Vec<File> {
    paths.iter().map(|path| File { path: WirePath::new(path).expect("valid"), streams: false }).collect()
}

fn config() -> ClientConfig {
    ClientConfig { addr: "h:1".to_owned(), timeout: Duration::from_secs(1), max_size: None, token: None }
}

type Test<'p> = Session<'p, File, ()>;

fn greeted(session: &mut Test<'_>) {
    assert!(matches!(session.step(), Step::ReadGreeting));
    session.on_greeting(Ok(Greeting::Ferry { implementation: "test".into() })).expect("greeted");
}

fn sent(step: Step<'_, File, ()>) -> String {
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
    let items = files(&["a", "my file"]);
    let mut session = Test::get(&items, false, &config());
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
    let items = files(&["a", "b"]);
    let mut session = Test::get(&items, true, &config());
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
    let items = files(&["a", "b"]);
    let mut session = Test::get(&items, false, &config());
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
    let items = files(&["a"]);
    let mut session = Test::get(&items, true, &config());
    greeted(&mut session);
    session.step();
    session.step();
    assert!(session.on_answer(Ok(Answer::Bye)).is_err(), "BYE instead of an answer");

    let mut session = Test::get(&items, true, &config());
    greeted(&mut session);
    session.step();
    session.step();
    session.on_answer(ok(1)).expect("ok");
    session.step();
    session.on_received(Ok(Received::File(()))).expect("ok");
    session.step();
    assert!(session.on_answer(ok(65)).is_err(), "a SUM body that is not 64 digits");

    let busy = Test::get(&items, true, &config()).on_greeting(Ok(Greeting::Busy { message: "full".into() }));
    assert!(matches!(busy, Err(ClientError::Busy { .. })));
}

#[test]
fn the_pipeline_keeps_a_bounded_window() {
    let names: Vec<String> = (0..PIPELINE_WINDOW + 2).map(|i| format!("f{i}")).collect();
    let paths: Vec<&str> = names.iter().map(String::as_str).collect();
    let items = files(&paths);
    let mut session = Test::get(&items, false, &config());
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
    let path = crate::Request::List { path: WirePath::new("docs").expect("valid") };
    let mut session = Test::list(&path, &config());
    greeted(&mut session);
    assert_eq!(sent(session.step()), "LIST docs\nQUIT\n");
    session.step();
    // Any length: a listing is read as it arrives, not into memory.
    session.on_answer(ok(u64::MAX)).expect("ok");
    assert!(matches!(session.step(), Step::ReadListing(u64::MAX)));
    session.on_listing(Ok(()), Ok(())).expect("listing");
    session.step();
    session.on_answer(Err(LineError::Closed)).expect("a missing BYE costs nothing");
    assert!(matches!(session.step(), Step::Done));
    let mut broken = Test::list(&path, &config());
    greeted(&mut broken);
    broken.step();
    broken.step();
    broken.on_answer(ok(3)).expect("ok");
    broken.step();
    let malformed = crate::ListingError { line: 1, reason: "no final LF" };
    assert!(broken.on_listing(Ok(()), Err(malformed)).is_err(), "a malformed listing breaks FERRY/1");
    let mut refused = Test::list(&path, &config());
    greeted(&mut refused);
    refused.step();
    refused.step();
    assert!(refused.on_answer(Ok(Answer::Err(Refusal::new(ErrorCode::NotFound, "no")))).is_err());
}

#[test]
fn a_tree_is_asked_for_and_read_as_a_tree() {
    let tree = crate::Request::Tree { path: WirePath::new("docs").expect("valid") };
    let mut session = Test::list(&tree, &config());
    greeted(&mut session);
    assert_eq!(sent(session.step()), "TREE docs\nQUIT\n");
    session.step();
    session.on_answer(ok(40)).expect("ok");
    assert!(matches!(session.step(), Step::ReadTree(40)));
    session.on_listing(Ok(()), Ok(())).expect("tree");
    assert!(matches!(session.step(), Step::ReadAnswer), "then BYE");
    // A server without TREE says BAD_REQUEST: the caller hears it, to walk
    // with LIST instead.
    let mut old = Test::list(&tree, &config());
    greeted(&mut old);
    old.step();
    old.step();
    let refused = old.on_answer(Ok(Answer::Err(Refusal::new(ErrorCode::BadRequest, "unknown command"))));
    assert!(
        matches!(refused, Err(ClientError::Refused { ref path, ref refusal }) if path == "docs" && refusal.code == ErrorCode::BadRequest),
        "{refused:?}"
    );
}

#[test]
fn a_streamed_body_is_checked_against_the_servers_digest() {
    let items = [File { path: WirePath::new("a").expect("valid"), streams: true }];
    let mut session = Test::get(&items, true, &config());
    greeted(&mut session);
    session.step();
    session.step();
    session.on_answer(ok(5)).expect("ok");
    assert!(matches!(session.step(), Step::Receive { hash: true, .. }), "a stream is hashed on its way");
    session.on_received(Ok(Received::Stream(Some(blake3::hash(b"hello"))))).expect("received");
    session.step();
    session.on_answer(ok(64)).expect("ok");
    session.step();
    let other = blake3::hash(b"other").to_hex().to_string().into_bytes();
    session.on_small(Ok(other)).expect("digest");
    let Step::Report { outcome: Err(error), .. } = session.step() else { panic!("not a failure") };
    assert!(error.to_string().starts_with("stdout: BLAKE3 digest"), "{error}");
}

#[test]
fn a_body_over_max_size_fails_its_file_and_a_huge_one_ends_the_connection() {
    let items = files(&["a", "b"]);
    let config = ClientConfig { max_size: Some(100), ..config() };
    let mut session = Test::get(&items, false, &config);
    greeted(&mut session);
    session.step();
    session.step();
    session.on_answer(ok(1000)).expect("a small excess is read and dropped");
    assert!(matches!(session.step(), Step::Discard(1000)));
    let Step::Report { outcome: Err(error), .. } = session.step() else { panic!("not a failure") };
    assert!(error.to_string().contains("more than --max-size 100"), "{error}");
    assert!(matches!(session.step(), Step::ReadAnswer));
    let ended = session.on_answer(ok(u64::MAX)).expect_err("16 EiB are not read to be dropped");
    assert!(matches!(ended, ClientError::TooLarge { len: u64::MAX, .. }));
}

#[test]
fn a_huge_body_whose_destination_refused_it_ends_the_connection() {
    let items = files(&["a"]);
    let mut session = Test::get(&items, false, &config());
    greeted(&mut session);
    session.step();
    session.step();
    session.on_answer(ok(DISCARD_MOST + 1)).expect("ok");
    session.step();
    let refused = SaveError::NoSpace { dest: "x".into(), folder: ".".into(), need: DISCARD_MOST + 1, free: 10 };
    let ended = session.on_received(Err(NotReceived::Unopened(refused))).expect_err("not read to be dropped");
    assert!(ended.to_string().contains("only 10 are free"), "{ended}");
}

#[test]
fn a_token_goes_first_alone_and_its_ok_lets_the_requests_go() {
    let token = crate::Token::new(b"s3cret").expect("token");
    let config = ClientConfig { token: Some(token), ..config() };
    let items = files(&["a"]);
    let mut session = Test::get(&items, false, &config);
    greeted(&mut session);
    assert_eq!(sent(session.step()), "AUTH s3cret\n");
    assert!(matches!(session.step(), Step::ReadAnswer), "nothing else is sent before its answer");
    session.on_answer(ok(0)).expect("accepted");
    assert_eq!(sent(session.step()), "GET a\nQUIT\n");
}

#[test]
fn unauthorized_ends_the_connection_saying_whether_a_token_was_given() {
    let refusal = || Ok(Answer::Err(Refusal::new(ErrorCode::Unauthorized, "needs a token")));
    let items = files(&["a", "b"]);
    let mut without = Test::get(&items, false, &config());
    greeted(&mut without);
    without.step();
    without.step();
    let error = without.on_answer(refusal()).expect_err("the connection ends, not one file");
    assert!(matches!(error, ClientError::Unauthorized { gave_token: false, .. }), "{error:?}");
    assert!(error.to_string().contains("requires an access token") && error.to_string().contains("--token-file"));

    let config = ClientConfig { token: Some(crate::Token::new(b"wrong").expect("token")), ..config() };
    let mut wrong = Test::get(&items, false, &config);
    greeted(&mut wrong);
    wrong.step();
    wrong.step();
    let error = wrong.on_answer(refusal()).expect_err("refused");
    assert!(error.to_string().contains("refused the access token"), "{error}");
}
