//! `ferry-tokio`: the command line is shared by every implementation; this
//! binary runs it on tokio.

use std::process::ExitCode;

fn main() -> ExitCode {
    ferry_app::main::<ferry_tokio::Tokio>()
}
