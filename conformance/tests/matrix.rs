//! Every conformance case against every implementation in this workspace:
//! server cases against each server, and client cases with each client
//! against each server (the interop matrix). One test per implementation
//! and role, so `cargo test` names what failed.

use ferry_conformance::fixture::Fixture;
use ferry_conformance::implementation::{ClientLaunch, Implementation, Launch, WORKSPACE};
use ferry_conformance::runner::{Outcome, assert_passed, client_cases, server_cases};

fn implementation(name: &str) -> Implementation {
    if name == "compio-poll" {
        return compio_on_poll();
    }
    let (_, package) = WORKSPACE.iter().find(|(n, _)| *n == name).expect("a workspace implementation");
    Implementation::workspace(name, package).unwrap_or_else(|e| panic!("{e}"))
}

/// ferry-compio forced onto compio's polling driver, as on a machine that
/// does not allow io_uring: the same binary behind a script that sets
/// `FERRY_COMPIO_DRIVER=poll` and `exec`s it. (Plain `compio` is io_uring
/// wherever the kernel allows it, which `impl-compio/tests/drivers.rs`
/// checks.)
fn compio_on_poll() -> Implementation {
    use std::os::unix::fs::PermissionsExt;
    let compio = Implementation::workspace("compio", "ferry-compio").unwrap_or_else(|e| panic!("{e}"));
    let Some(ClientLaunch::Ferry(binary)) = &compio.client else { panic!("ferry-compio has a client") };
    let script = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferry-compio-poll");
    let quoted = binary.display().to_string().replace('\'', r"'\''");
    // Written whole to a new name, then renamed: tests in parallel may
    // write it at once, and none may run it half-written.
    let partial = script.with_extension(format!("{}", std::process::id()));
    std::fs::write(&partial, format!("#!/bin/sh\nFERRY_COMPIO_DRIVER=poll exec '{quoted}' \"$@\"\n")).expect("script");
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&partial, &script).expect("rename");
    Implementation {
        name: "compio-poll".to_owned(),
        greets_as: Some("compio".to_owned()),
        server: Some(Launch::Ferry(script.clone())),
        client: Some(ClientLaunch::Ferry(script)),
    }
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
    for server in WORKSPACE.iter().map(|(name, _)| *name).chain(["compio-poll"]) {
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

#[test]
fn server_compio() {
    server("compio");
}

#[test]
fn client_compio() {
    client("compio");
}

#[test]
fn server_compio_poll() {
    server("compio-poll");
}

#[test]
fn client_compio_poll() {
    client("compio-poll");
}
