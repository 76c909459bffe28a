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
//! so a hostile client cannot put control bytes in the log; `bytes` is how
//! much of the body went to the socket (what `OK` promised, unless the
//! write failed: then what had gone, to the send window, 1 MiB); `ms` is the
//! time from reading the request to the last byte handed to the socket. A
//! write that failed adds `error`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Logged, WriteCut};
use crate::Request;
use crate::client::without_os_code;

/// The log target: `RUST_LOG=access=off` silences only this log.
pub const TARGET: &str = "access";

/// Logs the requests of one batch, answered in `took`, and how the write
/// went.
pub fn answered(peer: SocketAddr, log: &[Logged], took: Duration, written: &Result<(), WriteCut>) {
    // Off (`-q`), the lines are not even made: that is work on every request.
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let ms = format!("{:.2}", took.as_secs_f64() * 1000.0);
    for (at, entry) in log.iter().enumerate() {
        let bytes = sent(entry, at + 1 == log.len(), written);
        let request = entry.request.as_ref().map_or_else(|| "-".to_owned(), Request::shown);
        match written {
            Ok(()) => tracing::info!(
                target: TARGET, %peer, request = ?request, status = %entry.status, bytes, %ms
            ),
            Err(cut) => tracing::info!(
                target: TARGET, %peer, request = ?request, status = %entry.status, bytes, %ms,
                error = %without_os_code(&cut.error)
            ),
        }
    }
}

/// How many of `entry`'s body bytes went to the socket: all of them, but
/// for a write that failed. Then a file body (the batch's last answer, and
/// its last part) sent what the cut says, the answers before it all of
/// theirs; a failure before the file body leaves nothing known to be sent.
fn sent(entry: &Logged, last: bool, written: &Result<(), WriteCut>) -> u64 {
    match written {
        Ok(()) => entry.bytes,
        Err(WriteCut { body: Some(sent), .. }) if last => (*sent).min(entry.bytes),
        Err(WriteCut { body: Some(_), .. }) => entry.bytes,
        Err(WriteCut { body: None, .. }) => 0,
    }
}

/// Logs a connection refused without a request: `BUSY` at the limit,
/// `TIMEOUT` for no request line in time.
pub fn refused(peer: Option<SocketAddr>, status: &str) {
    let peer = peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string());
    tracing::info!(target: TARGET, %peer, request = "-", %status, bytes = 0, ms = %"0.00");
}

/// Logs a connection refused without a request for a reason worth
/// saying: `TLS_FAILED` with what the handshake said.
pub fn refused_because(peer: Option<SocketAddr>, status: &str, error: &str) {
    let peer = peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string());
    tracing::info!(target: TARGET, %peer, request = "-", %status, bytes = 0, ms = %"0.00", %error);
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn a_cut_body_logs_what_went_out_and_the_answers_before_it_whole() {
        let entry = |bytes| Logged { request: None, status: "OK", bytes };
        let cut = |body| Err(WriteCut { error: io::ErrorKind::BrokenPipe.into(), body });
        assert_eq!(sent(&entry(300), true, &Ok(())), 300);
        assert_eq!(sent(&entry(300), true, &cut(Some(101))), 101);
        assert_eq!(sent(&entry(10), false, &cut(Some(101))), 10);
        assert_eq!(sent(&entry(300), true, &cut(None)), 0);
        assert_eq!(sent(&entry(300), true, &cut(Some(999))), 300);
    }
}
