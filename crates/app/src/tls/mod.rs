//! FERRY/1 over TLS (SPEC.md §7), configured once for every runtime:
//! rustls with the ring provider, TLS 1.3 only, ALPN `ferry/1`. A server's
//! identity ([`identity`]) and a client's trust in it ([`trust`]) are
//! decided here; each driver only wraps its stream with its runtime's
//! rustls adapter (`StreamOwned`, tokio-rustls, futures-rustls, compio's
//! rustls) using [`ServerTls::config`] and [`ClientTls::config`], then
//! hands the outcome back ([`ServerTls::failed`], [`ClientTls::settle`],
//! [`ClientTls::failed`]).

pub mod identity;
pub mod trust;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_engine::client::ClientError;
use ferry_engine::server::access;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use identity::Identity;
use trust::{Expect, Verifier};

/// The ALPN protocol name both sides offer: a server answers no client
/// that does not offer it, so that a TLS connection meant for another
/// protocol fails in the handshake, not on the first request.
pub const ALPN: &[u8] = b"ferry/1";

/// Why TLS could not be set up, before any connection.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Neither `XDG_CONFIG_HOME` nor `HOME` says where the config folder is.
    #[error("no config folder: set HOME (or XDG_CONFIG_HOME), or give --cert and --key")]
    NoConfigDir,
    /// A file could not be read or written.
    #[error("{}: {source}", file.display())]
    File {
        /// The file.
        file: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A PEM file does not hold what it should.
    #[error("{}: {what}", file.display())]
    Pem {
        /// The file.
        file: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// The identity's key file can be read by others.
    #[error("{}: the private key can be read by others (mode {mode:o}); run: chmod 600 {}", file.display(), file.display())]
    KeyReadable {
        /// The file.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The identity could not be made.
    #[error("cannot make a TLS identity: {0}")]
    Make(String),
    /// rustls refused the configuration (a key that does not match the
    /// certificate, say).
    #[error("{0}")]
    Config(String),
}

impl TlsError {
    pub(crate) fn file(file: &Path, source: io::Error) -> TlsError {
        TlsError::File { file: file.to_owned(), source }
    }
}

/// rustls over ring. rustls 0.23.48 marks ring's provider deprecated for
/// lacking post-quantum key exchange (X25519MLKEM768, aws-lc-rs only); the
/// project chose ring for its build (half the time, no cmake), and TLS 1.3
/// with X25519 is what nginx offers by default too.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS: its configuration, and the fingerprint it prints.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    fingerprint: String,
}

impl ServerTls {
    /// TLS with `identity`.
    pub fn new(identity: Identity) -> Result<ServerTls, TlsError> {
        let fingerprint = identity.fingerprint();
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(identity.chain, identity.key))
            .map_err(|e| TlsError::Config(format!("the certificate and key cannot be used: {e}")))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        // No session tickets: ferry's clients are one command a process and
        // never resume, a connection carries whole transfers, and sending
        // two tickets a connection (with their entries in a session cache)
        // cost a measurable share of the CPU of each new connection
        // (benches/README.md, "Measurements behind design choices").
        config.send_tls13_tickets = 0;
        Ok(ServerTls { config: Arc::new(config), fingerprint })
    }

    /// The rustls configuration every connection's handshake uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// `SHA256:...` of the server's certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Logs a handshake that failed (or was not finished within the idle
    /// timeout) as one access-log line: `status=TLS_FAILED` with the reason.
    pub fn failed(peer: SocketAddr, error: &io::Error) {
        access::refused_because(Some(peer), "TLS_FAILED", &handshake_error(error));
    }
}

/// What went wrong in a handshake, in a few words: rustls' own error where
/// there is one, else the I/O error's.
fn handshake_error(error: &io::Error) -> String {
    match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => tls.to_string(),
        None if error.kind() == io::ErrorKind::UnexpectedEof => "closed during the handshake".to_owned(),
        None => ferry_engine::client::without_os_code(error).to_string(),
    }
}

/// How a client checks the server it reaches over TLS.
#[derive(Debug, Clone)]
pub enum Check {
    /// Exactly this fingerprint (`--pin SHA256:...`).
    Pin(String),
    /// Against `known_servers` in the config folder, trusting a new server
    /// once the user says so on a terminal.
    KnownServers,
    /// A certificate a CA in this PEM file signed, for the host name.
    Ca(PathBuf),
}

/// A client's TLS for one server: the configuration its handshakes use,
/// and what the last one saw.
#[derive(Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// `None` for a CA-verified server, which no fingerprint decides.
    verifier: Option<Arc<Verifier>>,
}

impl ClientTls {
    /// TLS for the server at `addr` (`HOST:PORT`), checked by `check`.
    pub fn new(addr: &str, check: Check) -> Result<ClientTls, TlsError> {
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::Config(format!("{host} is not a host name or address that TLS can check")))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let (mut config, verifier) = match check {
            Check::Ca(file) => {
                let mut roots = RootCertStore::empty();
                let read = Identity::certificates(&file)?;
                let (added, _ignored) = roots.add_parsable_certificates(read);
                if added == 0 {
                    return Err(TlsError::Pem { file, what: "no CA certificate that can be used".into() });
                }
                (builder.with_root_certificates(roots).with_no_client_auth(), None)
            }
            check => {
                let expect = match check {
                    Check::Pin(pin) => Expect::Pin(pin),
                    _ => {
                        let file = identity::config_dir()?.join(identity::KNOWN_SERVERS_FILE);
                        let entry = trust::lookup(&file, addr).map_err(|e| TlsError::file(&file, e))?;
                        Expect::Known { file, entry }
                    }
                };
                let algorithms = provider().signature_verification_algorithms;
                let verifier = Arc::new(Verifier::new(expect, algorithms));
                let config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<_>)
                    .with_no_client_auth();
                (config, Some(verifier))
            }
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(ClientTls { config: Arc::new(config), name, verifier })
    }

    /// The rustls configuration for a handshake.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The name the server is checked against (and sent as SNI when it is
    /// a host name).
    pub fn name(&self) -> ServerName<'static> {
        self.name.clone()
    }

    /// After a handshake that succeeded, before any request: a server not
    /// known yet is trusted only if the user says so on a terminal (and is
    /// remembered); without a terminal it is refused, with the `--pin` to
    /// use. Blocks while the user reads: a client has nothing else to do.
    pub fn settle(&self, addr: &str) -> Result<(), ClientError> {
        let Some(verifier) = &self.verifier else { return Ok(()) };
        let Expect::Known { file, entry: None } = &verifier.expect else { return Ok(()) };
        let mut seen = verifier.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(presented) = seen.fingerprint.clone() else { return Ok(()) };
        if seen.accepted.as_ref() == Some(&presented) {
            return Ok(());
        }
        match trust::ask(addr, &presented, file) {
            Some(true) => {
                trust::remember(file, addr, &presented)
                    .map_err(|e| untrusted(addr, format!("cannot remember the server in {}: {e}", file.display())))?;
                seen.accepted = Some(presented);
                Ok(())
            }
            Some(false) => Err(untrusted(addr, "not trusted; nothing was sent".to_owned())),
            None => Err(untrusted(
                addr,
                format!(
                    "unknown server, fingerprint {presented}; nothing was sent.\n  \
                     If that is the fingerprint its `serve` printed, trust it with: --pin {presented}\n  \
                     (or run once on a terminal to be asked, and remembered in {})",
                    file.display()
                ),
            )),
        }
    }

    /// What a failed handshake means for the user: a server whose
    /// certificate is not the one pinned or remembered (loudly, as ssh says
    /// it), a plain FERRY/1 server, a timeout, or what TLS said.
    pub fn failed(&self, addr: &str, timeout: std::time::Duration, error: io::Error) -> ClientError {
        if ferry_engine::frame::is_timeout(&error) {
            return ClientError::Timeout { addr: addr.to_owned(), timeout };
        }
        if let Some(verifier) = &self.verifier {
            let seen = verifier.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(presented) = &seen.fingerprint {
                match &verifier.expect {
                    Expect::Pin(pin) if pin != presented => {
                        return untrusted(
                            addr,
                            format!(
                                "the server's fingerprint is {presented}, not the pinned {pin}: it is not the server \
                             you meant, or its identity was remade; nothing was sent"
                            ),
                        );
                    }
                    Expect::Known { file, entry: Some(known) } if known.fingerprint != *presented => {
                        return untrusted(
                            addr,
                            format!(
                                "\n  WARNING: THE SERVER'S IDENTITY HAS CHANGED.\n  \
                             It was {}, it is now {presented}.\n  \
                             Someone could be listening in between (a machine in the middle), or the server's \
                             identity was remade.\n  \
                             Nothing was sent. If you know it was remade, remove line {} of {} and connect again.",
                                known.fingerprint,
                                known.line,
                                file.display()
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
        let tls = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let detail = match tls {
            Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
                "the server answered in plain FERRY/1, not TLS: drop --tls".to_owned()
            }
            Some(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)) => {
                "the server does not speak FERRY/1 over TLS (no ALPN ferry/1)".to_owned()
            }
            Some(error) => format!("TLS handshake failed: {error}"),
            None if error.kind() == io::ErrorKind::UnexpectedEof => {
                "closed the connection during the TLS handshake (is it a FERRY/1 server with --tls?)".to_owned()
            }
            None => format!("TLS handshake failed: {}", ferry_engine::client::without_os_code(&error)),
        };
        untrusted(addr, detail)
    }
}

fn untrusted(addr: &str, detail: String) -> ClientError {
    ClientError::Tls { addr: addr.to_owned(), detail }
}

/// The host of `HOST:PORT` (`[v6]:port` without its brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host)
}

impl Identity {
    /// Every certificate in a PEM file.
    fn certificates(file: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(file).map_err(|e| TlsError::file(file, e))?;
        rustls::pki_types::CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| {
            TlsError::Pem { file: file.to_owned(), what: format!("a certificate that cannot be read ({e})") }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("example.org:7878"), "example.org");
        assert_eq!(host_of("[::1]:7878"), "::1");
        assert_eq!(host_of("127.0.0.1:9"), "127.0.0.1");
    }
}
