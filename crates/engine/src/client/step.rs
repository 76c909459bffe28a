//! What a [`super::Session`] asks of its driver ([`Step`]) and what a body's
//! receipt gives back ([`Received`], [`NotReceived`]): the vocabulary the
//! session and the loop that drives it ([`super::steps`]) share.

use super::error::{ClientError, SaveError};
use crate::body::BodyError;

/// Why a [`Step::Receive`] did not bring a whole body.
#[derive(Debug)]
pub enum NotReceived {
    /// The destination could not be opened; nothing was read.
    Unopened(SaveError),
    /// The body was cut short (or could not be written).
    Cut(BodyError),
}

/// A body that arrived whole, before it is committed.
#[derive(Debug)]
pub enum Received<F> {
    /// Streamed to stdout or a device; its digest, when verifying.
    Stream(Option<blake3::Hash>),
    /// In the `.part`, still open and locked.
    File(F),
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step<'p, I, F> {
    /// Read the server's first line; pass it to [`super::Session::on_greeting`].
    ReadGreeting,
    /// Write these request lines, then ask again.
    Send(Vec<u8>),
    /// Read the next answer header; pass it to [`super::Session::on_answer`].
    ReadAnswer,
    /// Receive `len` body bytes for `item` into its destination, opened
    /// for the purpose, counting them (and hashing them when `hash`); pass
    /// the result to [`super::Session::on_received`].
    Receive {
        /// The file.
        item: &'p I,
        /// The body's length.
        len: u64,
        /// Whether to hash the bytes on their way (a stream being verified).
        hash: bool,
    },
    /// Read `len` bytes into memory; pass them to [`super::Session::on_small`].
    ReadSmall(usize),
    /// Read a listing of `len` bytes as it arrives, each entry reported as
    /// soon as its line is whole; pass the result to [`super::Session::on_listing`].
    ReadListing(u64),
    /// Read a TREE body of `len` bytes the same way, each entry (or why its
    /// name is refused) reported as soon as its line is whole; pass the
    /// result to [`super::Session::on_listing`].
    ReadTree(u64),
    /// Read and drop `len` body bytes, then ask again.
    Discard(u64),
    /// Make `file` the destination of `item`; pass the result to
    /// [`super::Session::on_committed`].
    Commit {
        /// The file it is.
        item: &'p I,
        /// The complete `.part`.
        file: F,
        /// The server's digest to check it against, when verifying.
        digest: Option<[u8; 32]>,
    },
    /// An item is done: tell the user ([`super::Outcomes::record`]).
    Report {
        /// The file.
        item: &'p I,
        /// Saved (with the digest it was verified against), or why not.
        outcome: Result<Option<[u8; 32]>, ClientError>,
    },
    /// The conversation is over.
    Done,
}
