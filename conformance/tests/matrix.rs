//! Every conformance case against every implementation in this workspace:
//! server cases against each server, and client cases with each client
//! against each server (the interop matrix). One test per implementation
//! and role, so `cargo test` names what failed.

use ferry_conformance::fixture::Fixture;
use ferry_conformance::implementation::{Implementation, WORKSPACE};
use ferry_conformance::runner::{Outcome, assert_passed, client_cases, server_cases};

fn implementation(name: &str) -> Implementation {
    let (_, package) = WORKSPACE.iter().find(|(n, _)| *n == name).expect("a workspace implementation");
    Implementation::workspace(name, package).unwrap_or_else(|e| panic!("{e}"))
}

/// The server cases against `name`'s server.
fn server(name: &str) {
    let fixture = Fixture::build().expect("fixture");
    let outcomes =
        server_cases(&implementation(name), &fixture, &|_| true, &|_| {}).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_passed(&outcomes);
}

/// The client cases with `name`'s client, against every server.
fn client(name: &str) {
    let fixture = Fixture::build().expect("fixture");
    let client = implementation(name);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (server, _) in WORKSPACE {
        let server = implementation(server);
        outcomes.extend(client_cases(&client, &server, &fixture, &|_| true, &|_| {}).unwrap_or_else(|e| panic!("{e}")));
    }
    assert_passed(&outcomes);
}

#[test]
fn server_std() {
    server("std");
}

#[test]
fn server_tokio() {
    server("tokio");
}

#[test]
fn client_std() {
    client("std");
}

#[test]
fn client_tokio() {
    client("tokio");
}

#[test]
fn server_smol() {
    server("smol");
}

#[test]
fn client_smol() {
    client("smol");
}

#[test]
fn server_async_std() {
    server("async-std");
}

#[test]
fn client_async_std() {
    client("async-std");
}
