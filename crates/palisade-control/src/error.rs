//! [`ControlError`]: everything the library, the server's start-up and the client can fail with.

use std::net::SocketAddr;
use std::path::PathBuf;

use palisade_identity::IdentityError;

/// Errors of the control plane library, server start-up and client.
///
/// Refusals the server sends to a caller are not errors of the server: they are
/// problem+json responses (see [`Reason`](crate::Reason)). On the client side they come
/// back as [`ControlError::Refused`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Creating the state directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The state database was written by a newer Palisade.
    #[error("{path}: schema version {found} is newer than this build understands ({supported}); upgrade palisade")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The state database holds a value this build cannot read (edited by hand?).
    #[error("{path}: corrupt state: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The CA (loading, signing) failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A TTL of zero was asked for (join token or SVID).
    #[error("a TTL must be above zero")]
    InvalidTtl,
    /// The SPIFFE ID is revoked, so nothing may be issued for it.
    #[error("{id} is revoked; no join token or SVID is issued for it")]
    Revoked {
        /// The revoked ID.
        id: String,
    },
    /// The SPIFFE ID belongs to the control plane itself and cannot be handed to a workload.
    #[error("{id} is the control plane's own identity and cannot be given to a workload")]
    ReservedIdentity {
        /// The reserved ID.
        id: String,
    },
    /// The text is not a certificate serial number in hex.
    #[error(
        "{serial:?} is not a certificate serial number (hex digits, optionally separated by ':')"
    )]
    InvalidSerial {
        /// What was given.
        serial: String,
    },
    /// No SVID with this serial was issued by this control plane.
    #[error("no SVID with serial {serial} was issued by this control plane")]
    UnknownSerial {
        /// The normalised serial.
        serial: String,
    },
    /// Retiring the previous root would cut off workloads whose SVIDs it signed: they are
    /// still valid and were neither renewed nor revoked.
    #[error("{svids} SVID(s) signed by the previous root {fingerprint} are still valid and were not renewed (the last expires at {last_not_after}; {spiffe_ids}); retiring the root now would cut them off until they join again: wait until they renew (sidecars renew at half their SVID's life), revoke them, or force it")]
    RootInUse {
        /// SHA-256 fingerprint of the previous root.
        fingerprint: String,
        /// How many of its SVIDs are still in use.
        svids: u64,
        /// Some of their SPIFFE IDs, comma-separated.
        spiffe_ids: String,
        /// When the last of them expires, RFC 3339.
        last_not_after: String,
    },
    /// The server configuration names a trust domain other than the CA's.
    #[error("the configured trust domain {configured:?} is not the CA's ({ca:?})")]
    TrustDomainMismatch {
        /// From the configuration.
        configured: String,
        /// From the CA certificate.
        ca: String,
    },
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A TLS configuration (server or client) could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The control plane URL given to the client is unusable.
    #[error("invalid control plane URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The client could not open a TCP connection to the control plane.
    #[error("cannot connect to the control plane at {authority}: {source}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS handshake with the control plane failed; `code` is a
    /// `palisade.identity.*` or `palisade.tls.*` code (`palisade.identity.server_mismatch`
    /// when the server presented an SVID other than the control plane's).
    #[error("TLS handshake with the control plane failed ({code}): {detail}")]
    Handshake {
        /// The stable code.
        code: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The HTTP exchange failed or timed out.
    #[error("HTTP exchange with the control plane failed: {0}")]
    Http(String),
    /// The control plane answered with a problem+json refusal.
    #[error("the control plane refused the request ({status} {code}): {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The stable `palisade.*` code.
        code: String,
        /// The problem's detail.
        detail: String,
    },
    /// The control plane's answer is not what the protocol says (or not what was asked for).
    #[error("unexpected response from the control plane: {0}")]
    BadResponse(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The OAuth token issuer (signing keys, client registry) could not be set up.
    #[error("OAuth token issuer: {0}")]
    OAuth(#[from] palisade_token::TokenError),
    /// Generating the workload key pair or its CSR failed.
    #[error("key or CSR generation failed: {0}")]
    KeyGeneration(rcgen::Error),
    /// The API inventory could not be built from the audit database (boxed: it is
    /// large and rare, and every other variant should stay cheap to return).
    #[error("API inventory: {0}")]
    Inventory(Box<palisade_inventory::InventoryError>),
}
