//! The sidecar's own identity at run time: the live SVID every TLS configuration uses,
//! the revocation set every verifier checks, and the reload of a renewed SVID from disk.
//!
//! Whoever renews the SVID (the control-plane client, or an external agent such as
//! spiffe-helper writing files) only has to call [`SidecarIdentity::install`] or write the
//! SVID directory: the next handshake uses the new certificate and open connections keep
//! theirs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use palisade_identity::tls::outbound_client_config_from;
use palisade_identity::{
    IdentityError, Revocations, SpiffeId, SvidMaterial, SvidStore, SVID_CERT_FILE,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::OffsetDateTime;

/// How often the SVID directory is checked for a renewed certificate.
pub const SVID_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The live identity of one sidecar.
#[derive(Debug)]
pub struct SidecarIdentity {
    /// The SVID in use, swapped on renewal.
    pub store: Arc<SvidStore>,
    /// Revoked peers, refused inbound and outbound.
    pub revocations: Arc<Revocations>,
    roots: RootCertStore,
    trust_domain: String,
    svid_dir: PathBuf,
}

impl SidecarIdentity {
    /// Loads the SVID in `svid_dir`, which must name `expected`.
    pub fn load(
        svid_dir: PathBuf,
        expected: &SpiffeId,
        trust_domain: &str,
    ) -> Result<Self, IdentityError> {
        let material = load_expected(&svid_dir, expected)?;
        Ok(SidecarIdentity {
            store: SvidStore::new(&material)?,
            revocations: Revocations::new(),
            roots: material.roots,
            trust_domain: trust_domain.to_owned(),
            svid_dir,
        })
    }

    /// The inbound TLS configuration (revoked callers refused); `client_cert_required =
    /// false` also admits callers without a certificate.
    pub fn server_config(&self, client_cert_required: bool) -> Result<ServerConfig, IdentityError> {
        let mut verifier = palisade_identity::tls::SvidClientVerifier::new(
            self.roots.clone(),
            vec![self.trust_domain.clone()],
        )?
        .with_revocations(self.revocations.clone());
        if !client_cert_required {
            verifier = verifier.allow_unauthenticated();
        }
        let mut config = ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .with_client_cert_verifier(std::sync::Arc::new(verifier))
        .with_cert_resolver(self.store.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The outbound TLS configuration towards a service whose identity is `target`.
    pub fn client_config(&self, target: SpiffeId) -> Result<ClientConfig, IdentityError> {
        outbound_client_config_from(
            self.store.clone(),
            self.roots.clone(),
            target,
            self.revocations.clone(),
        )
    }

    /// Swaps in the SVID now in the SVID directory (written by a renewal).
    pub fn install_from_disk(&self) -> Result<(), IdentityError> {
        let current = self.store.current();
        let material = load_expected(&self.svid_dir, &current.spiffe_id)?;
        self.store.replace(&material)
    }

    /// `Err(expired_at)` when this workload's own SVID is no longer valid: the sidecar
    /// then refuses to make calls (fail closed) until a renewal succeeds.
    pub fn check_own_validity(&self, now: OffsetDateTime) -> Result<(), OffsetDateTime> {
        let current = self.store.current();
        if current.is_valid_at(now) {
            Ok(())
        } else {
            Err(current.not_after)
        }
    }

    /// Watches the SVID directory and installs a renewed certificate when `svid.pem`
    /// changes. Runs until the task is aborted.
    pub async fn watch_svid_dir(self: Arc<Self>) {
        let modified = |dir: &PathBuf| {
            std::fs::metadata(dir.join(SVID_CERT_FILE))
                .and_then(|m| m.modified())
                .ok()
        };
        let mut seen: Option<SystemTime> = modified(&self.svid_dir);
        let mut ticker = tokio::time::interval(SVID_POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = modified(&self.svid_dir);
            if now == seen {
                continue;
            }
            // A writer may be between files (cert written, key not yet): a failed load is
            // retried at the next tick, and the SVID in use stays until then.
            match self.install_from_disk() {
                Ok(()) => {
                    seen = now;
                    let current = self.store.current();
                    tracing::info!(spiffe_id = %current.spiffe_id, serial = %current.serial, not_after = %current.not_after, "installed renewed SVID");
                }
                Err(e) => {
                    tracing::warn!(dir = %self.svid_dir.display(), error = %e, "renewed SVID not installed yet")
                }
            }
        }
    }
}

fn load_expected(
    dir: &std::path::Path,
    expected: &SpiffeId,
) -> Result<SvidMaterial, IdentityError> {
    let material = SvidMaterial::load_dir(dir)?;
    if &material.spiffe_id != expected {
        return Err(IdentityError::IdentityChanged {
            current: expected.to_string(),
            offered: material.spiffe_id.to_string(),
        });
    }
    Ok(material)
}
