//! The access log: one line on stderr per request answered and per
//! connection refused, at the default level, in a form an operator can grep
//! (`grep 'status=NOT_FOUND'`), like nginx's. `-q` turns it off.
//!
//! ```text
//! INFO access: peer=127.0.0.1:50644 request="GET hello.txt" status=OK bytes=13 ms=0.08
//! INFO access: peer=127.0.0.1:50650 request="-" status=BUSY bytes=0 ms=0.00
//! ```
//!
//! `request` is the request as ferry would send it, paths percent-encoded,
//! so a hostile client cannot put control bytes in the log; `bytes` is the
//! body's length as promised; `ms` is the time from reading the request to
//! the last byte handed to the socket. A write that failed adds `error`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::Logged;
use crate::client::without_os_code;

/// The log target: `RUST_LOG=access=off` silences only this log.
pub const TARGET: &str = "access";

/// Logs the requests of one batch, answered in `took`, and how the write
/// went.
pub fn answered(peer: SocketAddr, log: &[Logged], took: Duration, written: &io::Result<()>) {
    let ms = format!("{:.2}", took.as_secs_f64() * 1000.0);
    for entry in log {
        match written {
            Ok(()) => tracing::info!(
                target: TARGET, %peer, request = ?entry.request, status = %entry.status, bytes = entry.bytes, %ms
            ),
            Err(error) => tracing::info!(
                target: TARGET, %peer, request = ?entry.request, status = %entry.status, bytes = entry.bytes, %ms,
                error = %without_os_code(error)
            ),
        }
    }
}

/// Logs a connection refused without a request: `BUSY` at the limit,
/// `TIMEOUT` for no request line in time.
pub fn refused(peer: Option<SocketAddr>, status: &str) {
    let peer = peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string());
    tracing::info!(target: TARGET, %peer, request = "-", %status, bytes = 0, ms = %"0.00");
}
