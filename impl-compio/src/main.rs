//! `ferry-compio`: the command line is shared by every implementation; this
//! binary runs it on compio.

use std::process::ExitCode;

fn main() -> ExitCode {
    ferry_app::main::<ferry_compio::Compio>()
}
