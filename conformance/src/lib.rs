//! Black-box conformance for FERRY/1.
//!
//! **Layer:** beside the house, not in it: it depends on no ferry crate (it
//! reads SPEC.md for itself) and drives real binaries over loopback.
//!
//! The suite knows FERRY/1 only from SPEC.md: it speaks raw bytes over
//! loopback TCP to real server binaries ([`cases::server`]) and plays
//! scripted servers, well- and ill-behaved, to real client binaries
//! ([`cases::client`]). It deliberately does not use `ferry-engine`, so a bug
//! in the shared core cannot hide behind the same bug in the checker.
//!
//! Every case has a stable id, the SPEC.md section it checks and a one-line
//! description; [`runner`] runs them concurrently and reports by id and
//! implementation.

pub mod cases;
pub mod fixture;
pub mod fuzz;
pub mod implementation;
pub mod process;
pub mod report;
pub mod runner;
pub mod script;
pub mod tls;
pub mod wire;

/// A case's verdict: `Err` says, in words, what went wrong.
pub type Check = Result<(), String>;
