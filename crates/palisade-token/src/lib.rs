//! OAuth 2.0 client-credentials access tokens for Palisade, as JWTs.
//!
//! - [`TokenIssuer`] (the control plane): ES256 signing keys on disk with rotation, the
//!   JWKS ([`TokenIssuer::jwks`]) and the token endpoint ([`TokenIssuer::token_endpoint`],
//!   RFC 6749 §4.4) issuing RFC 9068 access tokens (`typ: at+jwt`) for exactly one
//!   audience (a target service), with scopes limited by the client's registration.
//! - Client authentication ([`ClientAuth`]): `tls_client_auth` (RFC 8705: the client's
//!   X.509-SVID names its `client_id`; the token is then bound to that certificate with
//!   `cnf.x5t#S256`) or `private_key_jwt` (RFC 7523: a signed, single-use assertion).
//!   Client secrets are not supported, by design: a shared secret can be copied and
//!   used from anywhere, which is the network trust Palisade exists to remove.
//! - [`TokenVerifier`] (the sidecars): checks a presented token's signature against the
//!   JWKS, its type, issuer, audience, lifetime and certificate binding.
//!
//! No HTTP server here: the control plane mounts [`TokenIssuer::token_endpoint`] at
//! [`TOKEN_ENDPOINT_PATH`] and serves [`TokenIssuer::jwks`] at [`JWKS_PATH`]; sidecars fetch
//! the JWKS and hand it to [`TokenVerifier::set_jwks`].

mod client;
mod issuer;
mod jose;
mod keys;
mod response;
mod verifier;

use std::path::PathBuf;

pub use client::{ClientAuth, ClientRegistry, RegisteredClient};
pub use issuer::{
    TokenIssuer, ASSERTION_LEEWAY, DEFAULT_KEY_ROTATION, DEFAULT_TOKEN_TTL, MAX_ASSERTION_LIFETIME,
};
pub use jose::certificate_thumbprint;
pub use keys::KEYS_DIR;
pub use response::TokenResponse;
pub use verifier::{
    TokenRejection, TokenVerifier, VerifiedToken, DEFAULT_LEEWAY, MIN_JWKS_REFRESH_INTERVAL,
};

/// Path of the token endpoint under the issuer URL.
pub const TOKEN_ENDPOINT_PATH: &str = "/oauth2/token";
/// Path of the JWK Set under the issuer URL.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Errors setting up or maintaining the issuer and the verifier (not refusals of a
/// request: those are [`TokenResponse`] errors and [`TokenRejection`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Generating a signing key failed.
    #[error("generating a signing key failed: {0}")]
    KeyGeneration(rcgen::Error),
    /// A signing key file is unusable.
    #[error("{path}: unusable signing key: {reason}")]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key metadata file is unusable.
    #[error("{path}: invalid key metadata: {reason}")]
    InvalidMetadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The issuer URL is not an absolute http(s) URL without query or fragment.
    #[error("invalid issuer URL {0:?}: expected https://host[/path] without query or fragment")]
    InvalidIssuerUrl(String),
    /// A lifetime or period is zero.
    #[error("invalid duration: {0}")]
    InvalidDuration(&'static str),
    /// A JWK Set could not be used.
    #[error("invalid JWK Set: {0}")]
    InvalidJwks(String),
    /// A `private_key_jwt` client's public key cannot be parsed.
    #[error("client {client_id}: unusable public key: {reason}")]
    InvalidClientKey {
        /// The client.
        client_id: String,
        /// What is wrong.
        reason: String,
    },
    /// Two registrations share a `client_id`.
    #[error("client {client_id} is registered more than once")]
    DuplicateClient {
        /// The repeated id.
        client_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_and_verifier_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TokenIssuer>();
        assert_send_sync::<TokenVerifier>();
        assert_send_sync::<ClientRegistry>();
    }
}
