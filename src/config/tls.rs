//! PEM files named in the config (`origin.ca_file`, `cache.redis.ca_file`, `client_cert`, `client_key`): read
//! and checked when the config is loaded (and on every reload), so a missing or malformed file is a config
//! error naming its key, never a failed handshake later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{ConfigError, invalid};

/// The bytes of a PEM file, checked to hold what its key needs. Compared by content, so a reload notices a
/// replaced file.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The file's bytes.
    pub pem: Arc<[u8]>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes: a client key is a secret.
        f.debug_tuple("PemFile").field(&self.path).finish()
    }
}

impl PemFile {
    /// Reads a file of one or more certificates (a CA bundle or a client chain).
    pub(super) fn certificates(key: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = Self::read(key, path)?;
        let certs = file.certificates_der();
        if certs.is_empty() {
            return Err(invalid(
                key,
                None,
                &format!("{} holds no PEM certificate", path.display()),
            ));
        }
        Ok(file)
    }

    /// Reads a file holding a private key (PKCS#8, PKCS#1 or SEC1).
    pub(super) fn private_key(key: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = Self::read(key, path)?;
        if PrivateKeyDer::from_pem_slice(&file.pem).is_err() {
            return Err(invalid(
                key,
                None,
                &format!("{} holds no PEM private key", path.display()),
            ));
        }
        Ok(file)
    }

    /// The certificates in the file, in order; unreadable blocks are skipped (checked at load).
    pub fn certificates_der(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(&self.pem)
            .filter_map(Result::ok)
            .collect()
    }

    fn read(key: &str, path: &Path) -> Result<Self, ConfigError> {
        let pem =
            std::fs::read(path).map_err(|err| invalid(key, None, &format!("cannot read {}: {err}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            pem: pem.into(),
        })
    }
}
