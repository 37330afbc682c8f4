//! The JSON bodies of the control plane's endpoints, shared by server and client.
//!
//! Requests are parsed strictly (unknown fields refused); responses leniently, so a newer
//! server can add fields without breaking older clients.

use serde::{Deserialize, Serialize};

/// `POST /v1/join`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The one-time join token (`pjt_…`).
    pub token: String,
    /// A PEM CSR signed by the workload's new key, with its SPIFFE ID as the only URI SAN.
    pub csr: String,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("JoinRequest").finish_non_exhaustive()
    }
}

/// `POST /v1/renew` (over mTLS with the current SVID).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// A PEM CSR for the same SPIFFE ID as the client certificate, signed by a new key.
    pub csr: String,
}

/// The answer to a join or a renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SvidResponse {
    /// The new X.509-SVID, PEM.
    pub svid: String,
    /// The trust bundle, PEM.
    pub bundle: String,
    /// End of the SVID's validity, RFC 3339.
    pub not_after: String,
}

/// `GET /v1/bundle`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleResponse {
    /// The trust bundle (CA certificates), PEM.
    pub bundle: String,
}
