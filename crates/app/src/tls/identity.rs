//! A server's identity: its certificate and key, made once and kept in the
//! user's config folder (or given as PEM files), and the fingerprint people
//! read out to those who fetch.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// The file, in the config folder, that holds a server's own identity:
/// its private key and its self-signed certificate, in PEM, mode 0600.
pub const IDENTITY_FILE: &str = "identity.pem";

/// The file, in the config folder, that holds the servers a client trusts.
pub const KNOWN_SERVERS_FILE: &str = "known_servers";

/// ferry's folder in the user's config folder: `$XDG_CONFIG_HOME/ferry`,
/// or `~/.config/ferry`.
pub fn config_dir() -> Result<PathBuf, TlsError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|dir| !dir.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => return Err(TlsError::NoConfigDir),
        },
    };
    Ok(base.join("ferry"))
}

/// The SHA-256 of a certificate's DER, as `SHA256:` and unpadded standard
/// base64: the form `ssh-keygen -l` prints.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref()))
}

/// A certificate chain and the private key of its first certificate.
#[derive(Debug)]
pub struct Identity {
    /// The chain, the server's own certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The server's own identity in `dir`, made (self-signed, ECDSA P-256)
    /// on first use and the same on every start after it, so that its
    /// fingerprint stays what people were told. A key file that others can
    /// read is refused, as ssh refuses one.
    pub fn own(dir: &Path) -> Result<Identity, TlsError> {
        let file = dir.join(IDENTITY_FILE);
        if !file.exists() {
            create(dir, &file)?;
        }
        let mode = fs::metadata(&file).map_err(|e| TlsError::file(&file, e))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(TlsError::KeyReadable { file, mode: mode & 0o777 });
        }
        Identity::from_pem(&file, &file)
    }

    /// A certificate chain and key from PEM files (`--cert`, `--key`): one
    /// from a public CA, say.
    pub fn from_pem(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let pem = |path: &Path| fs::read(path).map_err(|e| TlsError::file(path, e));
        let bad = |path: &Path, what: &str| TlsError::Pem { file: path.to_owned(), what: what.to_owned() };
        let cert_pem = pem(cert)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, &format!("a certificate that cannot be read ({e})")))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate (-----BEGIN CERTIFICATE-----)"));
        }
        let key = PrivateKeyDer::from_pem_slice(&pem(key)?)
            .map_err(|e| bad(key, &format!("no private key that can be read ({e})")))?;
        Ok(Identity { chain, key })
    }

    /// The fingerprint of the server's own certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }
}

/// Makes a self-signed identity into `file`: written whole under another
/// name, mode 0600 from its creation, then linked into place, so that two
/// servers started at once both end up with the one that got there first.
fn create(dir: &Path, file: &Path) -> Result<(), TlsError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| TlsError::file(dir, e))?;
    let made =
        rcgen::generate_simple_self_signed(vec!["ferry".to_owned()]).map_err(|e| TlsError::Make(e.to_string()))?;
    let pem = format!("{}{}", made.signing_key.serialize_pem(), made.cert.pem());
    let temporary = dir.join(format!(".{IDENTITY_FILE}.{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut out| out.write_all(pem.as_bytes()).and_then(|()| out.sync_all()));
    let linked = written.and_then(|()| match fs::hard_link(&temporary, file) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        linked => linked,
    });
    let _ = fs::remove_file(&temporary);
    linked.map_err(|e| TlsError::file(file, e))?;
    tracing::info!(file = %file.display(), "made this server's TLS identity");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_0600_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("ferry");
        let first = Identity::own(&config).expect("made");
        let file = config.join(IDENTITY_FILE);
        assert_eq!(fs::metadata(&file).expect("file").permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&config).expect("dir").permissions().mode() & 0o777, 0o700);
        let again = Identity::own(&config).expect("read back");
        assert_eq!(first.fingerprint(), again.fingerprint(), "the same identity on every start");
        assert!(first.fingerprint().starts_with("SHA256:") && first.fingerprint().len() == 7 + 43);

        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = Identity::own(&config).expect_err("a key others can read");
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
    }

    #[test]
    fn the_fingerprint_is_sha256_of_the_der_in_unpadded_base64() {
        // `printf abc | sha256sum`, in base64.
        let der = CertificateDer::from(b"abc".to_vec());
        assert_eq!(fingerprint(&der), "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
    }

    #[test]
    fn pem_files_that_hold_no_certificate_or_key_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "nothing here\n").expect("write");
        let error = Identity::from_pem(&empty, &empty).expect_err("no certificate");
        assert!(error.to_string().contains("empty.pem"), "{error}");
    }
}
