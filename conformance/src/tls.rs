//! The suite's own TLS client (SPEC.md §8), for server cases: rustls over
//! ring, checking the server's certificate only by its fingerprint, and
//! able to offer what a FERRY/1 server must refuse (another ALPN, TLS 1.2).

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The access token the suite's servers are started with.
pub const TOKEN: &str = "conformance-token";

/// `SHA256:` and the unpadded base64 of the SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()))
}

#[allow(deprecated)] // ring's provider: see ferry-app's `tls` module.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a handshake offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// TLS 1.3 and ALPN `ferry/1`: a FERRY/1 client.
    Ferry,
    /// TLS 1.3 and ALPN `http/1.1` only.
    OtherAlpn,
    /// TLS 1.2 only, ALPN `ferry/1`.
    Tls12,
}

/// A client configuration that trusts exactly the certificate whose
/// fingerprint is `pin`.
pub fn client(pin: &str, offer: Offer) -> Result<Arc<ClientConfig>, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = match offer {
        Offer::Tls12 => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13],
    };
    let verifier = Pinned { pin: pin.to_owned(), algorithms: provider().signature_verification_algorithms };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![if offer == Offer::OtherAlpn { b"http/1.1".to_vec() } else { b"ferry/1".to_vec() }];
    Ok(Arc::new(config))
}

/// The name a handshake to a loopback server is made for.
pub fn loopback() -> ServerName<'static> {
    ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
}

#[derive(Debug)]
struct Pinned {
    pin: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity.as_ref());
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!("the certificate is {presented}, not the printed {}", self.pin)))
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
