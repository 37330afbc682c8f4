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

/// `GET /v1/policies`: the `*.cedar` files of the control plane's policy directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyBundle {
    /// A digest of every file name and text: changes exactly when the set changes.
    pub etag: String,
    /// The files, sorted by name.
    pub files: Vec<PolicyFile>,
}

/// One policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// The file name (`billing.cedar`); never a path.
    pub name: String,
    /// Its Cedar text.
    pub text: String,
}

impl PolicyBundle {
    /// Reads the `*.cedar` files directly in `dir` (not subdirectories), sorted by name.
    pub fn read_dir(dir: &std::path::Path) -> std::io::Result<Self> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
            match name {
                Some(name) if path.is_file() && name.ends_with(".cedar") => {
                    files.push(PolicyFile {
                        text: std::fs::read_to_string(&path)?,
                        name,
                    });
                }
                _ => {}
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let digest_input: String = files
            .iter()
            .map(|f| format!("{}\0{}\0", f.name, f.text))
            .collect();
        Ok(PolicyBundle {
            etag: crate::server::short_digest(&digest_input),
            files,
        })
    }

    /// Whether every file name is a plain `*.cedar` name (no path separators), so a
    /// sidecar can write the files into its cache directory safely.
    pub fn names_are_safe(&self) -> bool {
        self.files.iter().all(|f| {
            f.name.ends_with(".cedar")
                && !f.name.starts_with('.')
                && !f.name.contains(['/', '\\', '\0'])
        })
    }
}
