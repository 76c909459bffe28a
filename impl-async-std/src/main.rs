//! `ferry-async-std`: the command line is shared by every implementation;
//! this binary runs it on async-std.

use std::process::ExitCode;

fn main() -> ExitCode {
    ferry_app::main::<ferry_async_std::AsyncStd>()
}
