//! Lines read from the front of a receive buffer, and the errors of
//! reading them: the part of reading a connection that is the same on every
//! runtime. Each driver's `read_line` is a loop of [`take_line`] and its
//! runtime's read.

use std::io;

use crate::Parsed;

/// How many bytes a driver asks for per read while it waits for a line.
pub const LINE_READ: usize = 8 * 1024;

/// What parses one line from the front of a receive buffer: the greeting,
/// an answer header, or a server's run of pipelined requests.
pub trait ParseLine<T, E>: FnMut(&[u8]) -> Result<Parsed<T>, E> {}

impl<T, E, P: FnMut(&[u8]) -> Result<Parsed<T>, E>> ParseLine<T, E> for P {}

/// Parses a line from the front of `buffer` with `parse`, and removes it:
/// `Some` once a whole line is there, `None` when more must be read.
pub fn take_line<T, E>(buffer: &mut Vec<u8>, parse: &mut impl ParseLine<T, E>) -> Result<Option<T>, LineError<E>> {
    match parse(buffer).map_err(LineError::Invalid)? {
        Parsed::Complete { value, consumed } => {
            buffer.drain(..consumed);
            Ok(Some(value))
        }
        Parsed::Incomplete => Ok(None),
    }
}

/// Reading a header line failed.
#[derive(Debug)]
pub enum LineError<E> {
    /// The peer closed the connection before a whole line.
    Closed,
    /// The deadline passed before a whole line.
    TimedOut,
    /// The line is not what FERRY/1 allows here.
    Invalid(E),
    /// The socket failed.
    Io(io::Error),
}

impl<E> LineError<E> {
    /// Classifies a failed read: an expired socket timeout is `TimedOut`.
    pub fn from_io(error: io::Error) -> LineError<E> {
        if is_timeout(&error) { LineError::TimedOut } else { LineError::Io(error) }
    }

    /// What one read towards a line means: `read` is `None` when the
    /// deadline came first. More bytes (their count) mean go on; the end of
    /// the stream before a whole line, or a failure, end the line.
    pub fn after_read(read: Option<io::Result<usize>>) -> Result<usize, LineError<E>> {
        match read {
            None => Err(LineError::TimedOut),
            Some(Ok(0)) => Err(LineError::Closed),
            Some(Ok(n)) => Ok(n),
            Some(Err(e)) => Err(LineError::from_io(e)),
        }
    }
}

/// The error of a write the peer did not take within its deadline: it has
/// stopped reading. One wording for every driver, server and client.
pub fn stopped_reading() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")
}

/// Whether an I/O error is an expired socket timeout.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Zeroed room at the end of a buffer for one read, taken off again when
/// dropped, but for the bytes the read [kept](Spare::kept): a read into it
/// that is cancelled half-way (dropped at a deadline, or by a race with
/// shutdown) leaves no zeros behind to be parsed as data. For the runtimes
/// whose reads take a `&mut [u8]` that must be initialised (futures-io:
/// smol, async-std); tokio's `read_buf` fills spare capacity instead.
#[derive(Debug)]
pub struct Spare<'a> {
    buffer: &'a mut Vec<u8>,
    filled: usize,
    kept: usize,
}

impl<'a> Spare<'a> {
    /// Room for as many bytes as are buffered (at least 1 KiB, at most `most`).
    pub fn grow(buffer: &'a mut Vec<u8>, most: usize) -> Spare<'a> {
        let filled = buffer.len();
        buffer.resize(filled + filled.clamp(1024, most), 0);
        Spare { buffer, filled, kept: 0 }
    }

    /// The room to read into.
    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.buffer[self.filled..]
    }

    /// Keeps what `read` filled, if it succeeded (`None`: it did not end
    /// by the deadline), and passes it on.
    pub fn kept(mut self, read: Option<io::Result<usize>>) -> Option<io::Result<usize>> {
        if let Some(Ok(n)) = &read {
            self.kept = *n;
        }
        read
    }
}

impl Drop for Spare<'_> {
    fn drop(&mut self) {
        self.buffer.truncate(self.filled + self.kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Answer, parse_answer};

    #[test]
    fn a_line_is_taken_once_whole_and_what_follows_stays() {
        let mut buffer = b"OK 3\nab".to_vec();
        let taken = take_line(&mut buffer, &mut parse_answer).expect("valid");
        assert!(matches!(taken, Some(Answer::Ok { len: 3 })));
        assert_eq!(buffer, b"ab");
        let mut partial = b"OK".to_vec();
        assert!(take_line(&mut partial, &mut parse_answer).expect("valid").is_none());
        assert_eq!(partial, b"OK", "an incomplete line is left for the next read");
    }

    #[test]
    fn a_cancelled_read_leaves_no_zeros() {
        let mut buffer = b"GET".to_vec();
        let mut spare = Spare::grow(&mut buffer, 4096);
        spare.bytes()[..2].copy_from_slice(b" a");
        assert!(matches!(spare.kept(Some(Ok(2))), Some(Ok(2))), "what the read said is passed on");
        assert_eq!(buffer, b"GET a");
        drop(Spare::grow(&mut buffer, 4096));
        assert_eq!(buffer, b"GET a", "room not kept is taken off again");
    }
}
