//! The sidecar's own identity at run time: the live SVID every TLS configuration uses,
//! the live trust bundle and revocation set every verifier checks, and the reload of a
//! renewed SVID or a new bundle from disk.
//!
//! Whoever renews the SVID (the control-plane client, or an external agent such as
//! spiffe-helper writing files) only has to call [`SidecarIdentity::install_from_disk`]
//! or write the SVID directory: the next handshake uses the new certificate and bundle,
//! and open connections keep theirs. A CA rollover reaches the sidecar the same way: the
//! bundle (`bundle.pem`) gains the new root, later loses the old one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use palisade_identity::tls::{
    inbound_server_config_with_bundle, outbound_client_config_with_bundle,
};
use palisade_identity::{
    write_bundle, BundleChange, IdentityError, Revocations, SpiffeId, SvidMaterial, SvidStore,
    TrustBundle, BUNDLE_FILE, SVID_CERT_FILE,
};
use rustls::{ClientConfig, ServerConfig};
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
    /// The roots peers must chain to, swapped when the control plane serves a new bundle.
    bundle: Arc<TrustBundle>,
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
            bundle: TrustBundle::from_pem(&read_bundle(&svid_dir)?)?,
            trust_domain: trust_domain.to_owned(),
            svid_dir,
        })
    }

    /// The inbound TLS configuration: revoked callers refused, the bundle and SVID in
    /// force read at each handshake. `client_cert_required = false` also admits callers
    /// without a certificate (a presented one is still fully checked), for services that
    /// accept other credentials; the pipeline then decides what such a caller may do.
    pub fn server_config(&self, client_cert_required: bool) -> Result<ServerConfig, IdentityError> {
        inbound_server_config_with_bundle(
            self.store.clone(),
            self.bundle.clone(),
            vec![self.trust_domain.clone()],
            self.revocations.clone(),
            client_cert_required,
        )
    }

    /// The outbound TLS configuration towards a service whose identity is `target`.
    pub fn client_config(&self, target: SpiffeId) -> Result<ClientConfig, IdentityError> {
        outbound_client_config_with_bundle(
            self.store.clone(),
            self.bundle.clone(),
            target,
            self.revocations.clone(),
        )
    }

    /// The trust bundle in force (shared with every TLS configuration of this sidecar).
    pub fn bundle(&self) -> Arc<TrustBundle> {
        self.bundle.clone()
    }

    /// The SVID directory.
    pub fn svid_dir(&self) -> &Path {
        &self.svid_dir
    }

    /// Swaps in the SVID and the bundle now in the SVID directory (written by a renewal
    /// or an external agent). The bundle goes first: a renewed SVID from a new root must
    /// never be presented before the peers' root is trusted here too (and a new bundle
    /// alone is installed even if the SVID files are between writes).
    pub fn install_from_disk(&self) -> Result<(), IdentityError> {
        let change = self.bundle.replace_pem(&read_bundle(&self.svid_dir)?)?;
        log_bundle_change(change, self.bundle.len());
        let current = self.store.current();
        let material = load_expected(&self.svid_dir, &current.spiffe_id)?;
        self.store.replace(&material)
    }

    /// Trusts `bundle_pem` from the next handshake on and writes it to the SVID
    /// directory (so a restart starts with it). A bundle that does not parse, or holds no
    /// root, is refused and the one in force stays.
    pub fn install_bundle(&self, bundle_pem: &str) -> Result<BundleChange, IdentityError> {
        // Parse before writing: a bad bundle must never reach the disk.
        palisade_identity::roots_from_pem(bundle_pem)?;
        write_bundle(&self.svid_dir, bundle_pem)?;
        let change = self.bundle.replace_pem(bundle_pem)?;
        log_bundle_change(change, self.bundle.len());
        Ok(change)
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

    /// Watches the SVID directory and installs a renewed certificate or bundle when
    /// `svid.pem` or `bundle.pem` changes. Runs until the task is aborted.
    pub async fn watch_svid_dir(self: Arc<Self>) {
        let modified = |dir: &PathBuf| {
            let stamp = |file: &str| {
                std::fs::metadata(dir.join(file))
                    .and_then(|m| m.modified())
                    .ok()
            };
            (stamp(SVID_CERT_FILE), stamp(BUNDLE_FILE))
        };
        let mut seen: (Option<SystemTime>, Option<SystemTime>) = modified(&self.svid_dir);
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
                    tracing::info!(spiffe_id = %current.spiffe_id, serial = %current.serial, not_after = %current.not_after, "installed the SVID directory (SVID and bundle)");
                }
                Err(e) => {
                    tracing::warn!(dir = %self.svid_dir.display(), error = %e, "SVID directory not installed yet")
                }
            }
        }
    }
}

/// The text of `bundle.pem` in an SVID directory.
fn read_bundle(dir: &Path) -> Result<String, IdentityError> {
    let path = dir.join(BUNDLE_FILE);
    std::fs::read_to_string(&path).map_err(|source| IdentityError::Io { path, source })
}

fn log_bundle_change(change: BundleChange, roots: usize) {
    if change.is_changed() {
        tracing::info!(
            added = change.added,
            removed = change.removed,
            roots,
            "trust bundle replaced; new connections use it"
        );
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
