//! The sidecar's link to the control plane: bootstrap with a join token, renew the SVID
//! at half its lifetime (with jitter, retrying with backoff), and keep the revocation
//! list and the trust bundle current. The private key is generated here and never leaves
//! the workload.
//!
//! The trust bundle follows the control plane through a CA rollover: every renewal
//! answer carries it, and it is fetched with every revocation poll (a 304 when
//! unchanged), so a root the operator prepares is trusted by every running sidecar
//! within one `revocation_poll` interval, before it signs anything.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use palisade_config::{ControlSettings, ServiceConfig};
use palisade_control::api::PolicyBundle;
use palisade_control::{ControlClient, ControlError};
use palisade_identity::{write_svid_dir, SvidMaterial, SVID_CERT_FILE};
use palisade_policy::{PolicyEngine, PolicySet};
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
///
/// The SVID directory gets the bundle the join answer carried (the client adopted it);
/// `bundle_pem`, the configured bundle the client started with, is written only if the
/// client somehow holds none.
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
    let served = client.bundle_pem();
    let bundle = if served.is_empty() {
        bundle_pem
    } else {
        &served
    };
    write_svid_dir(&service.svid_dir, &svid, bundle)?;
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
    adopt_identity_bundle(&client, &identity);
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

/// Renews the SVID once, now: writes the new SVID and the bundle the answer carried to
/// `svid_dir` and installs both (the bundle first). [`renew_forever`] calls it on
/// schedule; an operator tool or a test can call it to renew at once.
pub async fn renew_once(
    client: &ControlClient,
    identity: &SidecarIdentity,
    svid_dir: &Path,
) -> Result<(), ControlError> {
    let material = SvidMaterial::load_dir(svid_dir)?;
    let renewed = client.renew(&material).await?;
    // The renewal answer's bundle, which the client adopted: no second round trip.
    let bundle = client.bundle_pem();
    write_svid_dir(svid_dir, &renewed, &bundle)?;
    identity.install_from_disk()?;
    let current = identity.store.current();
    tracing::info!(spiffe_id = %current.spiffe_id, serial = %current.serial, not_after = %current.not_after, "SVID renewed");
    Ok(())
}

/// Fetches the revocation list and the trust bundle every `interval` (a 304 costs
/// almost nothing) and installs them, so a revoked peer is refused, and a root added to
/// or removed from the bundle is followed, within one interval.
pub async fn poll_revocations(
    client: ControlClient,
    identity: Arc<SidecarIdentity>,
    interval: Duration,
) {
    adopt_identity_bundle(&client, &identity);
    let mut bundle_etag: Option<String> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = follow_bundle(&client, &identity, &mut bundle_etag).await {
            tracing::warn!(error = %e, "cannot fetch the trust bundle; keeping the one in force");
        }
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

/// Fetches the trust bundle (unless it still has `etag`) and, when it differs from the
/// one in force, installs it for the sidecar's peers (and its SVID directory) and for the
/// control-plane client's own connections. `etag` advances only once both are installed,
/// so a failure is retried at the next poll.
pub async fn follow_bundle(
    client: &ControlClient,
    identity: &SidecarIdentity,
    etag: &mut Option<String>,
) -> Result<(), ControlError> {
    let Some(fetched) = client.bundle_since(etag.as_deref()).await? else {
        return Ok(());
    };
    if identity.bundle().pem().as_deref() != Some(fetched.pem.as_str()) {
        identity.install_bundle(&fetched.pem)?;
    }
    client.install_bundle(&fetched.pem)?;
    *etag = fetched.etag;
    Ok(())
}

/// At start, lets the control-plane client also trust the roots of the SVID directory's
/// bundle (the last one the control plane served). The configured `[control] bundle` may
/// be a copy from before a rollover; until the first fetch replaces it, the union keeps
/// the control plane reachable whichever root signed its certificate.
fn adopt_identity_bundle(client: &ControlClient, identity: &SidecarIdentity) {
    let Some(own) = identity.bundle().pem() else {
        return;
    };
    let configured = client.bundle_pem();
    let trusted = client.trust_bundle().roots();
    let missing = palisade_identity::roots_from_pem(&own)
        .map(|roots| roots.roots.iter().any(|a| !trusted.roots.contains(a)))
        .unwrap_or(false);
    if missing {
        if let Err(e) = client.install_bundle(&format!("{configured}\n{own}")) {
            tracing::warn!(error = %e, "cannot add the SVID directory's bundle to the control-plane client");
        }
    }
}

/// Writes a policy set fetched from the control plane into the sidecar's policy cache
/// directory, after checking it loads against the engine's schema (a set that would be
/// refused never replaces the last good one on disk), then reloads the engine.
pub fn install_policies(bundle: &PolicyBundle, engine: &PolicyEngine) -> Result<(), String> {
    if !bundle.names_are_safe() {
        return Err("the policy set has a file name that is not a plain *.cedar name".into());
    }
    let cache = engine.dir().to_path_buf();
    let staging = cache.with_extension("incoming");
    let io = |e: std::io::Error| e.to_string();
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io)?;
    }
    std::fs::create_dir_all(&staging).map_err(io)?;
    for file in &bundle.files {
        std::fs::write(staging.join(&file.name), &file.text).map_err(io)?;
    }
    PolicySet::load_dir(&staging, engine.schema()).map_err(|e| e.to_string())?;
    // Each file lands with a rename, so a reload triggered mid-way never reads a torn file.
    std::fs::create_dir_all(&cache).map_err(io)?;
    for file in &bundle.files {
        std::fs::rename(staging.join(&file.name), cache.join(&file.name)).map_err(io)?;
    }
    for entry in std::fs::read_dir(&cache).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let stale = path.extension().is_some_and(|e| e == "cedar")
            && !bundle
                .files
                .iter()
                .any(|f| path.file_name().is_some_and(|n| n == f.name.as_str()));
        if stale {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    std::fs::remove_dir_all(&staging).map_err(io)?;
    engine.reload().map(|_| ()).map_err(|e| e.to_string())
}

/// Fetches the control plane's policy set every `interval` (ETag: unchanged costs a 304)
/// and installs a new one. Until the first fetch succeeds the cached set from the last
/// run is in force, so a sidecar starts even when the control plane is down.
pub async fn poll_policies(
    client: ControlClient,
    engine: Arc<PolicyEngine>,
    svid_dir: std::path::PathBuf,
    interval: Duration,
) {
    let mut etag: Option<String> = None;
    // A refused set is not re-validated (nor re-logged) until the control plane changes it.
    let mut refused: Option<String> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let material = match SvidMaterial::load_dir(&svid_dir) {
            Ok(material) => material,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the SVID to fetch policies");
                continue;
            }
        };
        match client.policies(&material, etag.as_deref()).await {
            Ok(Some(bundle)) if refused.as_deref() == Some(bundle.etag.as_str()) => {}
            Ok(Some(bundle)) => {
                let attempted = bundle.etag.clone();
                let engine = engine.clone();
                let result = tokio::task::spawn_blocking(move || {
                    install_policies(&bundle, &engine).map(|()| bundle.etag)
                })
                .await;
                match result {
                    Ok(Ok(new)) => {
                        tracing::info!(etag = %new, "installed the control plane's policy set");
                        etag = Some(new);
                    }
                    Ok(Err(e)) => {
                        tracing::error!(etag = %attempted, error = %e, "refused the control plane's policy set; the last good set stays");
                        refused = Some(attempted);
                    }
                    Err(e) => tracing::error!(error = %e, "policy install task failed"),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot fetch policies; enforcing the cached set"),
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
