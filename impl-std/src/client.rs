//! The client's saving with blocking std I/O ([`Save`]): what a received
//! body is written to.
//!
//! The session decides every step of the conversation and what each result
//! means; `ferry_app::link::Client` does its steps on a [`Connection`]. What
//! is std's own is saving: straight into the file, on the calling thread,
//! since one connection has nothing to overlap with.

use std::fs::File;

use ferry_app::Item;
use ferry_app::link::Save;
use ferry_engine::client::SaveError;

use crate::connection::Connection;

impl Save for Connection {
    fn open(&mut self, item: &Item, len: u64) -> Result<File, SaveError> {
        item.dest.open(item.offset, len)
    }

    fn commit(&mut self, item: &Item, file: File, digest: Option<[u8; 32]>) -> Result<(), SaveError> {
        item.dest.commit(file, digest.as_ref())
    }
}
