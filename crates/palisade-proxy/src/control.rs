//! The sidecar's link to the control plane: bootstrap with a join token, renew the SVID
//! at half its lifetime (with jitter, retrying with backoff), and keep the revocation
//! list current. The private key is generated here and never leaves the workload.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use palisade_config::{ControlSettings, ServiceConfig};
use palisade_control::{ControlClient, ControlError};
use palisade_identity::{write_svid_dir, SvidMaterial, SVID_CERT_FILE};
use time::OffsetDateTime;

use crate::identity::SidecarIdentity;

/// Longest wait between renewal attempts after failures.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A client for the configured control plane.
pub fn client(
    settings: &ControlSettings,
    trust_domain: &str,
) -> Result<ControlClient, ControlError> {
    let bundle = std::fs::read_to_string(&settings.bundle).map_err(|source| ControlError::Io {
        path: settings.bundle.clone(),
        source,
    })?;
    ControlClient::new(&settings.url, &bundle, trust_domain)
}

/// Gets a first SVID with a join token when the service's SVID directory has none.
/// Returns whether it joined (an existing SVID is kept and the token left unused).
pub async fn bootstrap(
    client: &ControlClient,
    service: &ServiceConfig,
    token: &str,
    bundle_pem: &str,
) -> Result<bool, ControlError> {
    if service.svid_dir.join(SVID_CERT_FILE).is_file() {
        return Ok(false);
    }
    let svid = client.join(token, &service.spiffe_id).await?;
    write_svid_dir(&service.svid_dir, &svid, bundle_pem)?;
    tracing::info!(service = %service.name, spiffe_id = %service.spiffe_id, not_after = %svid.not_after, "joined the mesh with a join token");
    Ok(true)
}

/// When to renew an SVID valid from `not_before` to `not_after`: at half its lifetime,
/// moved by up to ±10 % of the lifetime so a fleet started together does not renew
/// together. `jitter` is in [-1, 1].
pub fn renewal_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    jitter: f64,
) -> OffsetDateTime {
    let lifetime = (not_after - not_before).as_seconds_f64().max(0.0);
    let offset = lifetime * (0.5 + 0.1 * jitter.clamp(-1.0, 1.0));
    not_before + time::Duration::seconds_f64(offset)
}

fn random_jitter() -> f64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let n = u16::from_le_bytes([bytes[0], bytes[1]]);
    f64::from(n) / f64::from(u16::MAX) * 2.0 - 1.0
}

/// Renews the SVID for as long as the sidecar runs. A failure is retried with capped
/// exponential backoff; meanwhile the current SVID keeps serving until it expires, after
/// which calls fail closed (see `SidecarIdentity::check_own_validity`).
pub async fn renew_forever(
    client: ControlClient,
    identity: Arc<SidecarIdentity>,
    svid_dir: std::path::PathBuf,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let current = identity.store.current();
        let at = renewal_time(current.not_before, current.not_after, random_jitter());
        let wait = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        tokio::time::sleep(wait.try_into().unwrap_or(Duration::ZERO)).await;
        loop {
            match renew_once(&client, &identity, &svid_dir).await {
                Ok(()) => {
                    backoff = Duration::from_millis(500);
                    break;
                }
                Err(e) => {
                    let expired = identity
                        .check_own_validity(OffsetDateTime::now_utc())
                        .is_err();
                    if expired {
                        tracing::error!(error = %e, "SVID expired and renewal failed; refusing traffic until the control plane answers");
                    } else {
                        tracing::warn!(error = %e, retry_in = ?backoff, "SVID renewal failed; still serving with the current SVID");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

async fn renew_once(
    client: &ControlClient,
    identity: &SidecarIdentity,
    svid_dir: &Path,
) -> Result<(), ControlError> {
    let material = SvidMaterial::load_dir(svid_dir)?;
    let renewed = client.renew(&material).await?;
    let bundle = client.bundle().await?;
    write_svid_dir(svid_dir, &renewed, &bundle)?;
    identity.install_from_disk()?;
    let current = identity.store.current();
    tracing::info!(spiffe_id = %current.spiffe_id, serial = %current.serial, not_after = %current.not_after, "SVID renewed");
    Ok(())
}

/// Fetches the revocation list every `interval` (a 304 costs almost nothing) and installs
/// it, so a revoked peer is refused within one interval.
pub async fn poll_revocations(
    client: ControlClient,
    identity: Arc<SidecarIdentity>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let known = identity.revocations.version();
        match client.revocations(Some(known).filter(|v| *v > 0)).await {
            Ok(Some(list)) => {
                tracing::info!(
                    version = list.version,
                    serials = list.serials.len(),
                    spiffe_ids = list.spiffe_ids.len(),
                    "revocation list updated"
                );
                identity
                    .revocations
                    .replace(list.version, list.serials, list.spiffe_ids);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the revocation list; keeping the last one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_half_life_within_ten_percent() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let end = start + time::Duration::hours(1);
        assert_eq!(
            renewal_time(start, end, 0.0),
            start + time::Duration::minutes(30)
        );
        assert_eq!(
            renewal_time(start, end, 1.0),
            start + time::Duration::minutes(36)
        );
        assert_eq!(
            renewal_time(start, end, -1.0),
            start + time::Duration::minutes(24)
        );
        assert_eq!(
            renewal_time(start, end, 9.0),
            start + time::Duration::minutes(36)
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-1.0..=1.0).contains(&j));
        }
    }
}
