//! Access tokens (SPEC.md §4 "AUTH"): what a server may require before any
//! other request, checked in time that does not depend on where a guess
//! first differs.

use std::fmt;

/// The longest token FERRY/1 allows.
pub const MAX_TOKEN: usize = 256;

/// A shared secret: 1 to [`MAX_TOKEN`] bytes of `A-Z a-z 0-9 - . _ ~` (the
/// URL-safe unreserved set, so it survives a shell, a URL and a config
/// file unquoted). Its `Debug` never shows it, so no log line can.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

/// Why some bytes are not a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing.
    #[error("the token is empty")]
    Empty,
    /// More than [`MAX_TOKEN`] bytes.
    #[error("the token is longer than {MAX_TOKEN} bytes")]
    TooLong,
    /// A byte outside the allowed set.
    #[error("the token holds a byte other than A-Z a-z 0-9 - . _ ~")]
    Byte,
}

impl Token {
    /// `bytes` as a token, if FERRY/1 allows it.
    pub fn new(bytes: &[u8]) -> Result<Token, TokenError> {
        match bytes.len() {
            0 => Err(TokenError::Empty),
            n if n > MAX_TOKEN => Err(TokenError::TooLong),
            _ if !bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) => Err(TokenError::Byte),
            _ => Ok(Token(bytes.to_vec())),
        }
    }

    /// The token's bytes, to send in `AUTH`.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether `guess` is this token, in time that depends only on the
    /// longest length allowed: every byte position up to [`MAX_TOKEN`] is
    /// compared whatever the lengths, and the differences are folded
    /// together before anything is decided, so that timing tells a guesser
    /// neither where a guess went wrong nor how long the token is.
    pub fn matches(&self, guess: &Token) -> bool {
        let (ours, theirs) = (&self.0, &guess.0);
        let mut differ = u32::from(ours.len() != theirs.len());
        for i in 0..MAX_TOKEN {
            let a = ours.get(i).copied().unwrap_or(0);
            let b = theirs.get(i).copied().unwrap_or(0);
            differ |= u32::from(a ^ b);
        }
        std::hint::black_box(differ) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_length_and_bytes() {
        assert_eq!(Token::new(b""), Err(TokenError::Empty));
        assert_eq!(Token::new(&[b'a'; MAX_TOKEN + 1]), Err(TokenError::TooLong));
        assert!(Token::new(&[b'a'; MAX_TOKEN]).is_ok());
        for bad in [&b"a b"[..], b"a/b", b"a\nb", b"\xc3\xa9", b"a+b", b"a=b"] {
            assert_eq!(Token::new(bad), Err(TokenError::Byte), "{bad:?}");
        }
        assert!(Token::new(b"Az09-._~").is_ok());
    }

    #[test]
    fn matches_needs_every_byte_and_the_length() {
        let token = Token::new(b"s3cret-token").expect("token");
        assert!(token.matches(&Token::new(b"s3cret-token").expect("token")));
        for other in [&b"s3cret-tokeN"[..], b"s3cret-toke", b"s3cret-token0", b"x3cret-token"] {
            assert!(!token.matches(&Token::new(other).expect("token")), "{other:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::new(b"hunter2").expect("token");
        assert!(!format!("{token:?}").contains("hunter2"));
    }
}
