//! `ferry-smol`: the command line is shared by every implementation; this
//! binary runs it on smol.

use std::process::ExitCode;

fn main() -> ExitCode {
    ferry_app::main::<ferry_smol::Smol>()
}
