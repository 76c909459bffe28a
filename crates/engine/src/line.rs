//! Line framing (SPEC.md §1 "Lines"): LF-terminated, one CR before the LF is
//! dropped, at most [`MAX_LINE`] bytes.

/// The longest request line a server accepts, LF included (SPEC.md §1).
///
/// Clients apply the same bound to the server's header lines, so a hostile
/// peer cannot make either side buffer without limit.
pub const MAX_LINE: usize = 8192;

/// The result of parsing from the front of a receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The buffer does not yet hold a whole line: read more and call again.
    Incomplete,
    /// A whole line was parsed; the driver removes `consumed` bytes from the
    /// front of its buffer before it parses again.
    Complete {
        /// What the line said.
        value: T,
        /// How many bytes of the buffer the line took, terminator included.
        consumed: usize,
    },
}

/// Where the next line in `buf` ends.
pub(crate) enum Line<'a> {
    /// No LF yet, and fewer than [`MAX_LINE`] bytes: more may complete it.
    Incomplete,
    /// No LF within the first [`MAX_LINE`] bytes.
    TooLong,
    /// A line: its content without the terminator, and the bytes consumed.
    Complete(&'a [u8], usize),
}

/// Splits the first line off `buf`.
pub(crate) fn next_line(buf: &[u8]) -> Line<'_> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let content = &buf[..lf];
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            Line::Complete(content, lf + 1)
        }
        None if buf.len() >= MAX_LINE => Line::TooLong,
        None => Line::Incomplete,
    }
}

/// Parses a decimal `u64` the way SPEC.md §2 allows: ASCII digits only, no
/// sign, no spaces, and the value must fit.
pub(crate) fn parse_u64(token: &[u8]) -> Option<u64> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Digits only, so this is valid UTF-8 and `parse` fails only on overflow.
    std::str::from_utf8(token).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_lf_end_a_line() {
        assert!(matches!(next_line(b"QUIT\r\nrest"), Line::Complete(b"QUIT", 6)));
        assert!(matches!(next_line(b"QUIT\nrest"), Line::Complete(b"QUIT", 5)));
        // Only one CR directly before the LF is dropped.
        assert!(matches!(next_line(b"QUIT\r\r\n"), Line::Complete(b"QUIT\r", 7)));
        assert!(matches!(next_line(b"QU\rIT\n"), Line::Complete(b"QU\rIT", 6)));
    }

    #[test]
    fn the_limit_counts_the_lf() {
        let mut exact = vec![b'a'; MAX_LINE - 1];
        exact.push(b'\n');
        assert!(matches!(next_line(&exact), Line::Complete(_, MAX_LINE)));

        let mut over = vec![b'a'; MAX_LINE];
        assert!(matches!(next_line(&over[..MAX_LINE - 1]), Line::Incomplete));
        assert!(matches!(next_line(&over), Line::TooLong));
        over.push(b'\n');
        assert!(matches!(next_line(&over), Line::TooLong));
    }

    #[test]
    fn numbers_are_plain_decimal_u64() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        for bad in [&b""[..], b"+1", b"-1", b"1a", b" 1", b"0x10", "１".as_bytes()] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }
}
