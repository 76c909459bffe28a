//! Which servers a client trusts, as ssh decides it: a fingerprint pinned
//! on the command line, or the one remembered for the address in the
//! `known_servers` file (asked once on a terminal, trust on first use), or
//! a CA's signature over the host name (`--ca`).
//!
//! The certificate is checked inside the handshake ([`Verifier`]); that the
//! server holds its key is checked by rustls against the handshake's
//! signature, so a copied certificate proves nothing. What is not known
//! yet is settled after the handshake and before any request is sent
//! ([`super::ClientTls::settle`]): nothing has crossed then but the
//! handshake itself.

use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::identity::fingerprint;

/// A line of `known_servers`: `HOST:PORT SHA256:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its line number, from 1, for a message that says which to edit.
    pub line: usize,
    /// The fingerprint remembered.
    pub fingerprint: String,
}

/// The fingerprint `known_servers` holds for `addr` (the address as the
/// user gave it, `HOST:PORT`; host names compared without case). A missing
/// file knows no server.
pub fn lookup(file: &Path, addr: &str) -> io::Result<Option<Known>> {
    let text = match fs::read_to_string(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        read => read?,
    };
    Ok(text.lines().enumerate().find_map(|(at, line)| {
        let mut words = line.split_whitespace();
        let (host, fingerprint) = (words.next()?, words.next()?);
        (!host.starts_with('#') && host.eq_ignore_ascii_case(addr))
            .then(|| Known { line: at + 1, fingerprint: fingerprint.to_owned() })
    }))
}

/// Remembers `fingerprint` for `addr` at the end of `file` (made 0600, in a
/// folder made 0700).
pub fn remember(file: &Path, addr: &str, fingerprint: &str) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut out = fs::OpenOptions::new().append(true).create(true).mode(0o600).open(file)?;
    out.write_all(format!("{addr} {fingerprint}\n").as_bytes())?;
    out.sync_all()
}

/// What a client expects of a server's certificate.
#[derive(Debug, Clone)]
pub enum Expect {
    /// `--pin`: exactly this fingerprint.
    Pin(String),
    /// The fingerprint `file` remembers for the address, if any.
    Known {
        /// `known_servers`.
        file: PathBuf,
        /// Its entry for the address.
        entry: Option<Known>,
    },
}

/// What a handshake showed: the fingerprint the server presented.
#[derive(Debug, Default)]
pub struct Seen {
    /// The server's certificate's fingerprint, once it presented one.
    pub fingerprint: Option<String>,
    /// A fingerprint the user accepted in this run (trust on first use).
    pub accepted: Option<String>,
}

/// Checks a server's certificate against [`Expect`], and records what it
/// saw for the messages after the handshake.
#[derive(Debug)]
pub struct Verifier {
    pub(crate) expect: Expect,
    pub(crate) seen: Mutex<Seen>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Verifier {
    pub(crate) fn new(expect: Expect, algorithms: WebPkiSupportedAlgorithms) -> Verifier {
        Verifier { expect, seen: Mutex::default(), algorithms }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ServerCertVerifier for Verifier {
    /// Trusted when the fingerprint is the one pinned or remembered (or
    /// accepted in this run); refused when another is; let through when
    /// none is known, for [`super::ClientTls::settle`] to decide.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        let mut seen = self.seen();
        seen.fingerprint = Some(presented.clone());
        let expected = match &self.expect {
            Expect::Pin(pin) => Some(pin),
            Expect::Known { entry, .. } => entry.as_ref().map(|known| &known.fingerprint),
        };
        match expected.or(seen.accepted.as_ref()) {
            Some(expected) if *expected != presented => {
                Err(rustls::Error::General("the server's certificate is not the one expected".into()))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Asks on the terminal whether to trust `addr`, which presented
/// `fingerprint`, and remember it in `file`: `None` when there is no
/// terminal to ask on.
pub fn ask(addr: &str, fingerprint: &str, file: &Path) -> Option<bool> {
    if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
        return None;
    }
    crate::say!(
        "The server at {addr} is not known yet. Its fingerprint is\n    {fingerprint}\n\
         Check it against the `fingerprint` line its `serve` printed, read out by someone you trust."
    );
    crate::say::write(format!("Trust it, and remember it in {}? [y/N] ", file.display()).as_bytes());
    let mut answer = String::new();
    let read = io::stdin().lock().read_line(&mut answer);
    Some(read.is_ok_and(|n| n > 0) && matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_servers_are_found_by_address_and_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ferry").join("known_servers");
        assert_eq!(lookup(&file, "a:1").expect("no file"), None);
        remember(&file, "a:1", "SHA256:one").expect("remembered");
        remember(&file, "Host.example:7878", "SHA256:two").expect("remembered");
        let known = lookup(&file, "host.EXAMPLE:7878").expect("read").expect("known");
        assert_eq!(known, Known { line: 2, fingerprint: "SHA256:two".into() });
        assert_eq!(lookup(&file, "a:2").expect("read"), None, "the port is part of the address");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&file).expect("file").permissions().mode() & 0o777, 0o600);
        fs::write(&file, "# a:1 SHA256:x\n\n  a:1   SHA256:three  \n").expect("write");
        assert_eq!(lookup(&file, "a:1").expect("read").expect("known").line, 3, "comments and blanks skipped");
    }
}
