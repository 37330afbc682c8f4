//! The live API inventory, kept fresh by the control plane: every refresh interval it
//! rebuilds the inventory from the audit database (the records of the last window) and
//! writes the snapshot and the reconstructed OpenAPI documents under
//! `<state_dir>/inventory/`, each file replaced atomically, so `palisade inventory diff`
//! can compare any two snapshots a user copies aside.
//!
//! A full rebuild per refresh keeps the result identical to `palisade inventory` over the
//! same window (templates depend on every path seen); it streams the database, so its
//! cost grows with the window's records, not with memory (docs/PERFORMANCE.md has the
//! measured rate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_inventory::{reconstruct, Inventory, InventoryInputs, InventoryOptions};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::ControlError;

/// Directory under the state directory holding the inventory.
pub const INVENTORY_DIR: &str = "inventory";
/// The snapshot file in [`INVENTORY_DIR`] (the `palisade inventory --format json` document).
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// Default time between refreshes.
pub const DEFAULT_INVENTORY_REFRESH: Duration = Duration::from_secs(60);

/// How the control plane keeps the inventory.
#[derive(Debug, Clone)]
pub struct InventoryRefresh {
    /// The SQLite audit database the sidecars write.
    pub db: PathBuf,
    /// Owners, specs and retired routes per service.
    pub inputs: InventoryInputs,
    /// Only records this recent count (`None`: all).
    pub window: Option<Duration>,
    /// Time between refreshes.
    pub interval: Duration,
}

/// What one refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSummary {
    /// Records read from the database.
    pub records: u64,
    /// Endpoints in the snapshot.
    pub endpoints: usize,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Rebuilds the inventory once and writes it under `out_dir`. A database that does not
/// exist yet (no sidecar has written) gives an empty inventory.
pub fn refresh_once(
    refresh: &InventoryRefresh,
    out_dir: &Path,
    now: OffsetDateTime,
) -> Result<RefreshSummary, ControlError> {
    let mut inputs = refresh.inputs.clone();
    inputs.since = refresh.window.map(|window| now - window);
    let mut inventory = Inventory::new(inputs, InventoryOptions::default());
    let records = if refresh.db.exists() {
        inventory
            .read_sqlite(&refresh.db)
            .map_err(|e| ControlError::Inventory(Box::new(e)))?
    } else {
        0
    };
    let snapshot = inventory.snapshot(now);
    let openapi_dir = out_dir.join("openapi");
    std::fs::create_dir_all(&openapi_dir).map_err(|source| ControlError::Io {
        path: openapi_dir.clone(),
        source,
    })?;
    let mut files = vec![write_atomically(
        &out_dir.join(SNAPSHOT_FILE),
        &snapshot.to_json(),
    )?];
    for spec in reconstruct(&snapshot) {
        files.push(write_atomically(
            &openapi_dir.join(format!("{}.json", spec.service)),
            &spec.to_json(),
        )?);
    }
    Ok(RefreshSummary {
        records,
        endpoints: snapshot.services.iter().map(|s| s.endpoints.len()).sum(),
        files,
    })
}

/// Refreshes now and then every `interval` until shutdown. A failed refresh is logged and
/// the previous files stay.
pub(crate) async fn refresh_forever(
    refresh: Arc<InventoryRefresh>,
    out_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let started = Instant::now();
        let job = {
            let refresh = refresh.clone();
            let out_dir = out_dir.clone();
            tokio::task::spawn_blocking(move || {
                refresh_once(&refresh, &out_dir, OffsetDateTime::now_utc())
            })
        };
        match job.await {
            Ok(Ok(summary)) => tracing::info!(
                records = summary.records,
                endpoints = summary.endpoints,
                elapsed_ms = started.elapsed().as_millis() as u64,
                dir = %out_dir.display(),
                "API inventory refreshed"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "API inventory refresh failed; the previous one stays")
            }
            Err(e) => tracing::error!(error = %e, "API inventory refresh panicked"),
        }
        tokio::select! {
            () = tokio::time::sleep(refresh.interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`, so a
/// reader never sees half a file.
fn write_atomically(path: &Path, text: &str) -> Result<PathBuf, ControlError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(path.to_path_buf())
}
