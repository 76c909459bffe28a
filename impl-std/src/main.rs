//! `ferry-std`: the command line is shared by every implementation; this
//! binary runs it on blocking std I/O.

use std::process::ExitCode;

fn main() -> ExitCode {
    ferry_app::main::<ferry_std::Std>()
}
