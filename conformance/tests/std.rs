//! The conformance cases against `ferry-std`, as server and as client.

use ferry_conformance::fixture::Fixture;
use ferry_conformance::implementation::Implementation;
use ferry_conformance::runner::{assert_passed, client_cases, server_cases};

fn std_impl() -> Implementation {
    Implementation::workspace("std", "ferry-std").expect("ferry-std builds")
}

#[test]
fn server() {
    let fixture = Fixture::build().expect("fixture");
    let outcomes = server_cases(&std_impl(), &fixture, &|_| true).expect("server starts");
    assert_passed(&outcomes);
}

#[test]
fn client() {
    let fixture = Fixture::build().expect("fixture");
    let implementation = std_impl();
    let outcomes = client_cases(&implementation, &implementation, &fixture, &|_| true).expect("server starts");
    assert_passed(&outcomes);
}
