//! The suite catches a broken server by name. The server here is the
//! textbook mistake: it joins the requested path to its root and opens it,
//! with no `..` check and no care for symlinks. Files inside the root come
//! back fine; the traversal cases must fail, and say so.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;

use ferry_conformance::fixture::Fixture;
use ferry_conformance::fuzz::fuzz;
use ferry_conformance::implementation::{Implementation, Launch};
use ferry_conformance::runner::{Verdict, server_cases};

/// Serves `root` the naive way, one thread per connection, until the test
/// process ends.
fn naive_server(root: PathBuf) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            thread::spawn(move || serve(stream, &root));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, root: &Path) {
    let _ = stream.write_all(b"FERRY/1 naive\n");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let answer = match line.trim_end().strip_prefix("GET ") {
            Some(path) => match std::fs::read(root.join(decode(path))) {
                Ok(bytes) => [format!("OK {}\n", bytes.len()).into_bytes(), bytes].concat(),
                Err(_) => format!("ERR NOT_FOUND {path} does not exist\n").into_bytes(),
            },
            None => b"ERR BAD_REQUEST only GET\n".to_vec(),
        };
        if stream.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Percent-decoding, without the checks SPEC.md asks for.
fn decode(path: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = path.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            let value = std::str::from_utf8(&hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(value.unwrap_or(b'?'));
        } else {
            out.push(byte);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_server_without_traversal_checks_is_caught_by_name() {
    let fixture = Fixture::build().expect("fixture");
    let addr = naive_server(fixture.root().to_owned());
    let naive =
        Implementation { name: "naive".into(), greets_as: None, server: Some(Launch::Running(addr)), client: None };
    let expect_fail = ["path.traversal.dotdot", "path.traversal.encoded-dotdot", "path.symlink.file-outside"];
    let expect_pass = ["get.size.1m", "get.name.encoded", "get.missing"];
    let select =
        |case: &ferry_conformance::cases::Case| expect_fail.contains(&case.id) || expect_pass.contains(&case.id);
    let outcomes = server_cases(&naive, &fixture, &select, &|_| {}).expect("runs");
    assert_eq!(outcomes.len(), expect_fail.len() + expect_pass.len());
    for outcome in &outcomes {
        let id = outcome.case.id;
        if expect_fail.contains(&id) {
            assert!(
                matches!(outcome.verdict, Verdict::Fail(_)),
                "{id} did not catch the naive server: {:?}",
                outcome.verdict
            );
        } else {
            assert_eq!(outcome.verdict, Verdict::Pass, "{id} should pass on files inside the root");
        }
    }
}

#[test]
fn the_fuzzer_catches_the_naive_server_too() {
    let fixture = Fixture::build().expect("fixture");
    let addr = naive_server(fixture.root().to_owned());
    let failure = fuzz(addr, &fixture, 3000, 0xfe11).expect_err("the naive server must fail");
    println!("caught: {failure}");
}
