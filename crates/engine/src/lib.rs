//! FERRY/1 without I/O: the protocol engine.
//!
//! **Layer:** the bottom one. It depends on no other ferry crate; the share
//! (`ferry-share`), the application (`ferry-app`) and every driver
//! (`impl-*`) depend on it.
//!
//! It parses and encodes every line of FERRY/1, frames lines and bodies,
//! keeps the pace a body must keep, and holds both sides of a conversation
//! as state machines: [`client::Session`] (one client conversation) and
//! [`server::Serving`] (one connection on a server), in the manner of
//! quinn-proto's `Connection`. It opens no sockets, spawns no threads,
//! awaits no futures and reads no clock: time is an argument, so every
//! deadline and pace rule is tested with a fake clock. Every implementation
//! is a driver around it, so the protocol is written once and a side-by-side
//! reading of the drivers shows only what the runtime changes.
//!
//! The design follows `httparse` and `quinn-proto`:
//!
//! - Parsers take the bytes received so far and return [`Parsed::Incomplete`]
//!   when a line has not fully arrived. Incomplete is a normal state, not an
//!   error; the driver reads more and calls again.
//! - Encoders append to a `Vec<u8>`, so a driver builds a whole header (or a
//!   whole small answer) and hands it to the socket in one write.
//!
//! `SPEC.md` at the root of the repository is the normative description of
//! FERRY/1; the module docs here point at the section each one implements.

mod answer;
pub mod body;
pub mod client;
mod code;
pub mod frame;
mod line;
mod listing;
mod path;
mod request;
pub mod server;
pub mod show;
mod token;
mod tree;

pub use answer::{
    Answer, AnswerError, CUT, Greeting, GreetingError, encode_greeting, parse_answer, parse_digest, parse_greeting,
};
pub use code::{ErrorCode, Refusal};
pub use line::{MAX_LINE, Parsed};
pub use listing::{
    Entry, Kind, ListingError, ListingLines, MAX_LISTING_LINE, encode_entry, encode_listing, parse_listing,
    sort_listing,
};
pub use path::{WirePath, encode_path};
pub use request::{Request, parse_pipelined, parse_request};
pub use token::{MAX_TOKEN, Token, TokenError};
pub use tree::{
    BadName, MAX_TREE_LINE, MAX_TREE_PATH, TreeEntry, TreeKind, TreeLines, check_name, encode_tree_entry, tree_key,
};
