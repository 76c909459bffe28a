//! The chat of `impl-*/examples/chat.rs`, the program ferry grew out of:
//! what its two sides say and when they stop, written once, so that the
//! examples differ only in how their runtime moves the lines.

use ferry_engine::show::escaped;

/// The server's first words.
pub const GREETING: &[u8] = b"welcome; take turns, one line each, and say bye to leave\n";

/// A turn longer than this arrives in pieces rather than being buffered
/// without bound: the peer decides how long its lines are.
pub const MAX_LINE: u64 = 4096;

/// What a side says for itself when its stdin ends, so that the peer is not
/// left waiting for a turn that will never come.
pub const BYE: &[u8] = b"bye\n";

/// Whether `line` ends the chat: the tutorial's ways of saying goodbye, in
/// any case, with any surrounding blanks.
///
/// ```
/// assert!(ferry_app::chat::is_bye(b"  See You\n"));
/// assert!(!ferry_app::chat::is_bye(b"bye now\n"));
/// ```
pub fn is_bye(line: &[u8]) -> bool {
    let said = String::from_utf8_lossy(line).trim().to_lowercase();
    ["bye", "byebye", "bubye", "bye bye", "tata", "see you"].contains(&said.as_str())
}

/// How a line from the peer is shown: its words are untrusted, so they are
/// printed, never obeyed (see [`escaped`]), and bytes that are not UTF-8
/// show as U+FFFD.
///
/// ```
/// assert_eq!(ferry_app::chat::shown(b"hi\x1b[2J\n"), "peer: hi\\x1b[2J");
/// ```
pub fn shown(line: &[u8]) -> String {
    format!("peer: {}", escaped(String::from_utf8_lossy(line).trim_end()))
}
