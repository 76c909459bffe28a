//! Text from a server, made safe to print on a terminal.
//!
//! A server chooses the words of its `ERR` messages, its `BUSY` greeting,
//! its listing names and anything else a client may echo. Printed raw, an
//! escape sequence among them could retitle the window, clear the screen,
//! rewrite earlier lines or, on some terminals, answer back as if typed.
//! Every piece of server-supplied text a client shows goes through
//! [`escaped`] first: one convention everywhere, so a test can hold every
//! message to it.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every character that a terminal would act on instead of
/// printing shown as a Rust-style escape: C0 controls (including tab and
/// line feed, since a message is one line), DEL, C1 controls, and the
/// Unicode bidirectional overrides that reorder what is displayed.
///
/// ```
/// assert_eq!(ferry_engine::show::escaped("a\x1b]0;x\x07b"), "a\\x1b]0;x\\x07b");
/// assert_eq!(ferry_engine::show::escaped("naïve"), "naïve");
/// ```
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if c.is_ascii() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Whether a terminal could act on `c` rather than print it.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_sent() {
        let hostile = "\x1b[2J\x1b]0;pwned\x07\r\n\t\x7f\u{9b}31m\u{202e}txt.exe";
        let shown = escaped(hostile);
        assert!(shown.chars().all(|c| !c.is_control()), "{shown}");
        assert_eq!(shown, "\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\x0a\\x09\\x7f\\u{9b}31m\\u{202e}txt.exe");
    }

    #[test]
    fn ordinary_text_is_borrowed() {
        assert!(matches!(escaped("docs/q3 report.pdf does not exist"), Cow::Borrowed(_)));
        assert_eq!(escaped("café 日本"), "café 日本");
    }
}
