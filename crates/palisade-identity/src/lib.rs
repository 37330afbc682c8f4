//! Workload identity for Palisade.
//!
//! - [`SpiffeId`]: SPIFFE IDs validated per the SPIFFE ID spec.
//! - [`CertificateAuthority`]: the root CA (ECDSA P-256) that issues short-lived
//!   X.509-SVIDs ([`IssuedSvid`]) for one trust domain.
//! - [`SvidMaterial`]: a workload's SVID, key and trust bundle loaded from disk.
//! - [`TrustBundle`]: the roots peers must chain to, shared by every verifier of a
//!   workload and replaceable while in use (CA rollover).
//! - [`CertificateAuthority::prepare_root`], [`activate_root`](CertificateAuthority::activate_root),
//!   [`retire_root`](CertificateAuthority::retire_root): CA rollover on disk.
//! - [`tls`]: rustls configurations whose verifiers check SVIDs, not DNS names, and the
//!   mapping of handshake failures to stable `palisade.identity.*` codes.
//!
//! Not here: SVID rotation and the CSR flow (the control plane's job), JWT-SVIDs.

mod bundle;
mod ca;
mod roots;
mod spiffe;
mod store;
mod svid;
pub mod tls;

use std::path::PathBuf;

pub use bundle::{roots_from_pem, BundleChange, BundleError, TrustBundle};
pub use ca::{
    fingerprint, svid_params, write_bundle, write_svid_dir, CertificateAuthority, IssuedSvid,
    SignedSvid, CA_CERT_FILE, CA_KEY_FILE, DEFAULT_SVID_TTL,
};
pub use roots::{RootActivation, RootInfo, RootRole, RETIRED_DIR, ROOTS_FILE};
pub use spiffe::{validate_trust_domain, SpiffeId, SpiffeIdError, MAX_SPIFFE_ID_LEN};
pub use store::{CurrentSvid, Revocations, SvidStore};
pub use svid::{
    load_roots, read_certs, svid_facts, svid_identity, CertificateFacts, SvidError, SvidMaterial,
    BUNDLE_FILE, SVID_CERT_FILE, SVID_KEY_FILE,
};

/// Errors from managing identities on disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file holds no certificate or key.
    #[error("{path}: no PEM certificate or key found")]
    EmptyPem {
        /// The file.
        path: PathBuf,
    },
    /// A key or CA certificate could not be parsed.
    #[error("{path}: {source}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rcgen::Error,
    },
    /// A trust bundle certificate was not accepted as a root.
    #[error("{path}: not a usable CA certificate: {source}")]
    BadBundle {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls::Error,
    },
    /// A certificate file does not hold a valid X.509-SVID.
    #[error("{path}: not a valid X.509-SVID: {source}")]
    NotAnSvid {
        /// The file.
        path: PathBuf,
        /// The broken rule.
        source: SvidError,
    },
    /// `ca init` would replace an existing CA.
    #[error("a CA already exists at {path}; pass --force to replace it (every SVID it issued stops being trusted)")]
    CaExists {
        /// The existing CA certificate.
        path: PathBuf,
    },
    /// No CA exists in the state directory.
    #[error("no CA at {path}; create one with `palisade ca init`")]
    CaMissing {
        /// Where the CA was expected.
        path: PathBuf,
    },
    /// The CA certificate has no `spiffe://<trust-domain>` URI SAN.
    #[error("{path}: CA certificate names no SPIFFE trust domain")]
    CaWithoutTrustDomain {
        /// The CA certificate.
        path: PathBuf,
    },
    /// The trust domain name is invalid.
    #[error("invalid trust domain: {0}")]
    BadTrustDomain(SpiffeIdError),
    /// An SVID was requested for a trust domain this CA does not serve.
    #[error("{id} is outside this CA's trust domain {ca_trust_domain:?}")]
    ForeignTrustDomain {
        /// The requested ID.
        id: String,
        /// The CA's trust domain.
        ca_trust_domain: String,
    },
    /// A workload SVID needs a path; the bare trust domain ID names no workload.
    #[error("{id} names no workload: a workload SPIFFE ID needs a path such as /ns/<namespace>/sa/<account>")]
    NoWorkloadPath {
        /// The requested ID.
        id: String,
    },
    /// `not_after` is not after `not_before`.
    #[error("certificate validity window is empty")]
    EmptyValidity,
    /// A public key handed in for signing (from a CSR) is malformed or of an unsupported type.
    #[error("unsupported or malformed public key: {0}")]
    UnsupportedPublicKey(rcgen::Error),
    /// Key or certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(rcgen::Error),
    /// A renewed SVID names another identity than the one in use.
    #[error("renewed SVID is for {offered}, but this workload is {current}")]
    IdentityChanged {
        /// The identity in use.
        current: String,
        /// The identity of the offered SVID.
        offered: String,
    },
    /// Building a TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A trust bundle was not accepted.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// `roots.json` of a rolled-over CA is unreadable or breaks its rules.
    #[error("{path}: {detail}")]
    BadRootsFile {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A rollover is already prepared.
    #[error("a new root ({fingerprint}) is already prepared: activate it with `palisade control ca activate` first")]
    NextRootExists {
        /// SHA-256 fingerprint of the prepared root.
        fingerprint: String,
    },
    /// The last rollover's old root is still in the bundle.
    #[error("the previous root ({fingerprint}) is still in the bundle: retire it with `palisade control ca retire` before preparing another")]
    PreviousRootInBundle {
        /// SHA-256 fingerprint of the previous root.
        fingerprint: String,
    },
    /// `activate` without a prepared root.
    #[error("no prepared root to activate: run `palisade control ca prepare` first")]
    NoNextRoot,
    /// `retire` without a previous root.
    #[error("no previous root to retire: `palisade control ca activate` makes one")]
    NoPreviousRoot,
}
