//! Paths on the wire (SPEC.md §2 "Paths in requests" and §5 "Paths").
//!
//! A client percent-encodes every byte outside `A-Z a-z 0-9 - . _ ~ /`. The
//! server decodes `%XX` exactly once, requires UTF-8, refuses NUL and
//! backslash, and only then splits at `/`. Decoding before splitting is what
//! makes `%2e%2e` a `..` component and `%2F` a separator: there is one
//! meaning for a path, whichever bytes spelled it.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

use crate::code::{ErrorCode, Refusal};

/// Bytes a path keeps as they are: RFC 3986's unreserved set and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Bytes a single name in a listing keeps: as [`PATH`], but `/` is encoded
/// too, since a name is one component.
pub(crate) const NAME: &AsciiSet = &PATH.add(b'/');

/// Percent-encodes a path for a request line.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// Percent-encodes one name for a LIST body.
pub(crate) fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, NAME).to_string()
}

/// Decodes `%XX` escapes, refusing a `%` that is not followed by two hex
/// digits (percent-encoding's own decoder would pass it through silently),
/// then requires UTF-8.
pub(crate) fn decode_text(raw: &[u8]) -> Result<String, Refusal> {
    let mut i = 0;
    while let Some(offset) = raw[i..].iter().position(|&b| b == b'%') {
        let at = i + offset;
        let escape = raw.get(at + 1..at + 3).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        if escape.is_none() {
            let shown = String::from_utf8_lossy(&raw[at..raw.len().min(at + 3)]).into_owned();
            return Err(Refusal::new(ErrorCode::BadRequest, format!("malformed percent escape {:?} in path", shown)));
        }
        i = at + 3;
    }
    let bytes: Vec<u8> = percent_decode(raw).collect();
    String::from_utf8(bytes).map_err(|_| Refusal::new(ErrorCode::BadRequest, "decoded path is not valid UTF-8"))
}

/// A decoded, validated path relative to the served root.
///
/// Holding one proves the path had no `..`, NUL or backslash; empty and `.`
/// components are already gone from [`WirePath::components`]. Whether it
/// exists, and where its symlinks lead, is for the server's file system layer
/// to find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePath {
    /// The decoded path as the client wrote it, for messages and re-encoding.
    text: String,
    /// Its meaningful components, in order.
    components: Vec<String>,
}

impl WirePath {
    /// Validates a decoded path.
    ///
    /// Clients use this before sending, so that a path the server would
    /// refuse is refused locally with the same code and message.
    pub fn new(text: &str) -> Result<WirePath, Refusal> {
        if text.is_empty() {
            // The wire cannot carry it: it would be an empty token.
            return Err(Refusal::new(ErrorCode::BadRequest, "empty path; use / for the root"));
        }
        if text.contains('\0') {
            return Err(Refusal::new(ErrorCode::BadRequest, "path contains a NUL byte"));
        }
        if text.contains('\\') {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("{}: path contains a backslash; use / between components", escape(text)),
            ));
        }
        let mut components = Vec::new();
        for component in text.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        format!("{}: '..' is not allowed in paths", escape(text)),
                    ));
                }
                name => components.push(name.to_owned()),
            }
        }
        Ok(WirePath { text: text.to_owned(), components })
    }

    /// Decodes and validates a path token from a request line.
    pub fn decode(raw: &[u8]) -> Result<WirePath, Refusal> {
        WirePath::new(&decode_text(raw)?)
    }

    /// The path as the client wrote it (decoded).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its components; empty for the root.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Whether it names the served root itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The last component, if any: where a client saves a file by default.
    pub fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// The path relative to the root, for the file system (`.` for the root).
    pub fn to_relative(&self) -> PathBuf {
        if self.is_root() { PathBuf::from(".") } else { self.components.iter().collect() }
    }

    /// The percent-encoded form for a request line.
    pub fn encoded(&self) -> String {
        encode_path(&self.text)
    }
}

/// Shows the path for people, with control characters escaped so that a name
/// holding LF cannot break an `ERR` line or a terminal.
impl fmt::Display for WirePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.text))
    }
}

/// Replaces control characters, and the bidirectional controls that would
/// reorder what a terminal shows, with `%XX` so text fits on one line and
/// reads as it is ([`crate::show`] decides which characters those are).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if crate::show::needs_escape(c) {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_controls_and_bidirectional_overrides_escaped() {
        assert_eq!(escape("a\nb"), "a%0Ab");
        assert_eq!(escape("evil\u{202e}txt.exe"), "evil%E2%80%AEtxt.exe");
        assert_eq!(escape("naïve café"), "naïve café");
    }

    fn code(raw: &[u8]) -> ErrorCode {
        WirePath::decode(raw).expect_err("should be refused").code
    }

    #[test]
    fn encoding_keeps_only_unreserved_and_slash() {
        assert_eq!(encode_path("docs/a-b_c.d~e"), "docs/a-b_c.d~e");
        assert_eq!(encode_path("my file.txt"), "my%20file.txt");
        assert_eq!(encode_path("été/%"), "%C3%A9t%C3%A9/%25");
        assert_eq!(encode_name("a/b"), "a%2Fb");
    }

    #[test]
    fn decoding_normalises_components() {
        let path = WirePath::decode(b"/docs//./r%C3%A9sum%c3%a9.pdf").expect("valid");
        assert_eq!(path.components(), ["docs", "résumé.pdf"]);
        assert_eq!(path.as_str(), "/docs//./résumé.pdf");
        assert_eq!(path.to_relative(), PathBuf::from("docs/résumé.pdf"));
        assert_eq!(path.file_name(), Some("résumé.pdf"));
        for root in [&b"/"[..], b".", b"/./", b"//"] {
            assert!(WirePath::decode(root).expect("valid").is_root());
        }
    }

    #[test]
    fn decoding_happens_once_and_before_splitting() {
        // %252e decodes to the text "%2e", a plain name, not "..".
        assert_eq!(WirePath::decode(b"%252e%252e").expect("valid").components(), ["%2e%2e"]);
        // An encoded slash separates, since splitting comes after decoding.
        assert_eq!(WirePath::decode(b"a%2Fb").expect("valid").components(), ["a", "b"]);
        // Bytes other than escapes are taken as they are.
        assert_eq!(WirePath::decode("ü+=".as_bytes()).expect("valid").components(), ["ü+="]);
    }

    #[test]
    fn refusals() {
        assert_eq!(code(b".."), ErrorCode::Forbidden);
        assert_eq!(code(b"a/../../x"), ErrorCode::Forbidden);
        assert_eq!(code(b"%2e%2e/x"), ErrorCode::Forbidden);
        assert_eq!(code(b"%2E%2E"), ErrorCode::Forbidden);
        assert_eq!(code(b"%zz"), ErrorCode::BadRequest);
        assert_eq!(code(b"a%"), ErrorCode::BadRequest);
        assert_eq!(code(b"a%4"), ErrorCode::BadRequest);
        assert_eq!(code(b"%00"), ErrorCode::BadRequest);
        assert_eq!(code(b"a%5Cb"), ErrorCode::BadRequest);
        assert_eq!(code(b"a\\b"), ErrorCode::BadRequest);
        assert_eq!(code(b"%ff"), ErrorCode::BadRequest);
        assert_eq!(code(&[0xc3]), ErrorCode::BadRequest);
        assert_eq!(WirePath::new("").expect_err("empty").code, ErrorCode::BadRequest);
    }

    #[test]
    fn display_escapes_control_characters() {
        let path = WirePath::decode(b"a%0Ab%0D").expect("valid");
        assert_eq!(path.to_string(), "a%0Ab%0D");
        assert_eq!(path.components(), ["a\nb\r"]);
    }
}
