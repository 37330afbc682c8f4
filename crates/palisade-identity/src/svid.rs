//! X.509-SVIDs: checking that a certificate is one, and loading an SVID from disk.
//!
//! <https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md>

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{IdentityError, SpiffeId, SpiffeIdError};

/// File names of an SVID directory, as written by `palisade ca issue`.
pub const SVID_CERT_FILE: &str = "svid.pem";
/// Private key of the SVID (mode 0600).
pub const SVID_KEY_FILE: &str = "svid.key";
/// The trust bundle: CA certificates that peers' SVIDs must chain to.
pub const BUNDLE_FILE: &str = "bundle.pem";

/// Why a certificate is not an acceptable X.509-SVID for this peer.
///
/// Each variant carries the stable code that audit records and problem bodies use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// The certificate is not parseable X.509.
    #[error("certificate is not valid X.509: {0}")]
    Malformed(String),
    /// An SVID has exactly one URI SAN; this one has another number.
    #[error("an X.509-SVID has exactly one URI SAN; this certificate has {0}")]
    UriSanCount(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("URI SAN is not a valid SPIFFE ID: {0}")]
    BadSpiffeId(#[from] SpiffeIdError),
    /// A leaf SVID must not be a CA certificate.
    #[error("leaf SVID must not be a CA certificate (basicConstraints CA=true)")]
    IsCa,
    /// A leaf SVID must carry the digitalSignature key usage.
    #[error("leaf SVID lacks the digitalSignature key usage")]
    MissingDigitalSignature,
    /// The SVID's trust domain is not one this peer trusts.
    #[error("SPIFFE ID {id} is in trust domain {trust_domain:?}, which is not trusted here (trusted: {trusted})")]
    ForeignTrustDomain {
        /// The presented ID.
        id: String,
        /// Its trust domain.
        trust_domain: String,
        /// The trusted trust domains, comma-separated.
        trusted: String,
    },
    /// The SVID (by serial or by SPIFFE ID) is on the control plane's revocation list.
    #[error("SVID of {id} (serial {serial}) has been revoked")]
    Revoked {
        /// The presented ID.
        id: String,
        /// Its serial number, hex.
        serial: String,
    },
    /// The certificate chains to a root the trust bundle no longer holds: a CA rollover
    /// retired it, and this workload never renewed its SVID from the new root.
    #[error("{id} presented an SVID signed by a retired root of the trust bundle; it must renew (or join again) to get one from the current root")]
    RetiredRoot {
        /// The presented ID (or "the certificate" when it names none).
        id: String,
    },
    /// The server presented a valid SVID, but not the identity configured for it.
    #[error("server presented {presented}, but {expected} was expected")]
    UnexpectedServerIdentity {
        /// The configured identity of the target service.
        expected: String,
        /// What the server presented.
        presented: String,
    },
}

impl SvidError {
    /// The stable `palisade.*` code for this rejection.
    pub fn code(&self) -> &'static str {
        match self {
            SvidError::ForeignTrustDomain { .. } => "palisade.identity.foreign_trust_domain",
            SvidError::UnexpectedServerIdentity { .. } => "palisade.identity.server_mismatch",
            SvidError::Revoked { .. } => "palisade.identity.revoked",
            SvidError::RetiredRoot { .. } => "palisade.identity.retired_root",
            _ => "palisade.identity.invalid_svid",
        }
    }
}

/// Returns the SPIFFE ID of a leaf X.509-SVID after checking the spec's leaf rules:
/// exactly one URI SAN holding a valid SPIFFE ID, CA=false, digitalSignature key usage.
///
/// Chain validation (signature, validity period) is the verifier's job, not this function's.
pub fn svid_identity(cert: &CertificateDer<'_>) -> Result<SpiffeId, SvidError> {
    let (_, x509) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    let mut uris = Vec::new();
    let mut is_ca = false;
    let mut digital_signature = false;
    for ext in x509.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name {
                        uris.push(*uri);
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            ParsedExtension::KeyUsage(ku) => digital_signature = ku.digital_signature(),
            _ => {}
        }
    }
    if uris.len() != 1 {
        return Err(SvidError::UriSanCount(uris.len()));
    }
    let id: SpiffeId = uris[0].parse()?;
    if is_ca {
        return Err(SvidError::IsCa);
    }
    if !digital_signature {
        return Err(SvidError::MissingDigitalSignature);
    }
    Ok(id)
}

/// What a verifier or a renewal schedule needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Serial number, lower-case hex without separators.
    pub serial: String,
    /// Start of validity.
    pub not_before: time::OffsetDateTime,
    /// End of validity.
    pub not_after: time::OffsetDateTime,
}

/// Serial number and validity of a certificate.
pub fn svid_facts(cert: &CertificateDer<'_>) -> Result<CertificateFacts, SvidError> {
    let (_, x509) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    let serial = x509
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(CertificateFacts {
        serial: if serial.is_empty() {
            "00".into()
        } else {
            serial
        },
        not_before: x509.validity().not_before.to_datetime(),
        not_after: x509.validity().not_after.to_datetime(),
    })
}

/// A workload's SVID, its private key and the trust bundle, loaded from an SVID directory.
#[derive(Debug)]
pub struct SvidMaterial {
    /// The SPIFFE ID in the leaf certificate.
    pub spiffe_id: SpiffeId,
    /// The leaf certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// Roots that peers' SVIDs must chain to.
    pub roots: RootCertStore,
    /// Where the material was loaded from.
    pub dir: PathBuf,
}

impl SvidMaterial {
    /// Loads `svid.pem`, `svid.key` and `bundle.pem` from `dir` and checks the leaf is an SVID.
    pub fn load_dir(dir: &Path) -> Result<Self, IdentityError> {
        let chain = read_certs(&dir.join(SVID_CERT_FILE))?;
        let leaf = chain.first().ok_or_else(|| IdentityError::EmptyPem {
            path: dir.join(SVID_CERT_FILE),
        })?;
        let spiffe_id = svid_identity(leaf).map_err(|source| IdentityError::NotAnSvid {
            path: dir.join(SVID_CERT_FILE),
            source,
        })?;
        let key_path = dir.join(SVID_KEY_FILE);
        let key_pem = read_file(&key_path)?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|source| IdentityError::Io {
                path: key_path.clone(),
                source,
            })?
            .ok_or(IdentityError::EmptyPem { path: key_path })?;
        let roots = load_roots(&dir.join(BUNDLE_FILE))?;
        Ok(SvidMaterial {
            spiffe_id,
            chain,
            key,
            roots,
            dir: dir.to_path_buf(),
        })
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every certificate in a PEM file; an empty file is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let pem = read_file(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(IdentityError::EmptyPem {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Loads a trust bundle PEM into a root store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, IdentityError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|source| IdentityError::BadBundle {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}
