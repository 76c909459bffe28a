//! What a server sends for one request: bytes already in memory, a file's
//! body after its header, or nothing (heavy work stopped).

use ferry_engine::{Answer, Refusal};

use crate::*;

/// What a server sends for one request.
#[derive(Debug)]
pub enum Reply {
    /// No answer: heavy work was stopped because the client left or the
    /// server is shutting down. The connection closes.
    Abandon,
    /// A whole answer already in memory (ERR, BYE, LIST, SUM): one write.
    Bytes {
        /// Header and body.
        bytes: Vec<u8>,
        /// Whether the server closes the connection after sending it.
        closes: bool,
    },
    /// An `OK` header, then `body.len` bytes of a file.
    File {
        /// The `OK <n>` line.
        header: Vec<u8>,
        /// The bytes to send after it.
        body: FileBody,
    },
}

impl Reply {
    /// The reply to a request the parser refused.
    pub fn refuse(refusal: Refusal) -> Reply {
        let closes = refusal.code.closes_connection();
        let mut bytes = Vec::new();
        Answer::Err(refusal).encode(&mut bytes);
        Reply::Bytes { bytes, closes }
    }

    /// An `OK` answer whose body is in memory.
    pub(crate) fn body(body: &[u8]) -> Reply {
        let mut bytes = Vec::with_capacity(body.len() + 24);
        Answer::Ok { len: body.len() as u64 }.encode(&mut bytes);
        bytes.extend_from_slice(body);
        Reply::Bytes { bytes, closes: false }
    }

    /// Whether the connection ends after this reply.
    pub fn closes(&self) -> bool {
        matches!(self, Reply::Bytes { closes: true, .. } | Reply::Abandon)
    }
}
