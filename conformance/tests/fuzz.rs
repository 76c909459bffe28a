//! A short fuzz of every server in this repository (the longer one is
//! `ferry-conformance --fuzz 20000`), and a server whose error lines can
//! exceed 8192 bytes, which the fuzzer must catch.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

use ferry_conformance::fixture::Fixture;
use ferry_conformance::fuzz::fuzz;
use ferry_conformance::implementation::{Implementation, WORKSPACE};
use ferry_conformance::process::Server;

/// Requests per implementation in `cargo test`.
const SHORT: usize = 3000;

fn fuzz_workspace(name: &str) {
    let (_, package) = WORKSPACE.iter().find(|(n, _)| *n == name).expect("a workspace implementation");
    let implementation = Implementation::workspace(name, package).unwrap_or_else(|e| panic!("{e}"));
    let fixture = Fixture::build().expect("fixture");
    let launch = implementation.server.as_ref().expect("a server");
    let server = Server::start(launch, fixture.root(), &[]).expect("server");
    if let Err(failure) = fuzz(server.addr, &fixture, SHORT, 0xfe11) {
        panic!("{name}: {failure}");
    }
}

#[test]
fn fuzz_std() {
    fuzz_workspace("std");
}

#[test]
fn fuzz_tokio() {
    fuzz_workspace("tokio");
}

#[test]
fn fuzz_smol() {
    fuzz_workspace("smol");
}

#[test]
fn fuzz_async_std() {
    fuzz_workspace("async-std");
}

#[test]
fn fuzz_compio() {
    fuzz_workspace("compio");
}

/// Answers every line `ERR NOT_FOUND` quoting it three times (printable
/// bytes only): a well-formed answer, until the line is long.
fn echoing_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = stream.write_all(b"FERRY/1 echo\n");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let quoted: String =
                        line.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect();
                    if stream.write_all(format!("ERR NOT_FOUND {quoted}{quoted}{quoted}\n").as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[test]
fn the_fuzzer_catches_error_lines_over_the_limit() {
    let fixture = Fixture::build().expect("fixture");
    let failure = fuzz(echoing_server(), &fixture, SHORT, 0xfe11).expect_err("the echoing server must fail");
    assert!(failure.why.contains("over the 8192"), "{failure}");
    assert!(failure.input.len() > 2000, "the smallest input is the long line: {failure}");
}
