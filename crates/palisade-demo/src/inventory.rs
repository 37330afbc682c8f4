//! The end of the demo: the API inventory built from the audit log the scenarios left, as
//! `palisade inventory --config palisade.toml` prints it, and the OpenAPI documents
//! reconstructed from the traffic.

use palisade_config::Config;
use palisade_inventory::{reconstruct, render_table, Inventory, InventoryOptions};
use time::OffsetDateTime;

use crate::workspace::Layout;
use crate::DemoError;

/// Builds the inventory, writes `inventory/snapshot.json` and `inventory/openapi/*.json`
/// into the demo directory, and returns the text to print.
pub(crate) fn show(config: &Config, layout: &Layout) -> Result<String, DemoError> {
    let inputs = palisade_proxy::inventory_inputs(config)?;
    let mut inventory = Inventory::new(inputs, InventoryOptions::default());
    inventory
        .read_sqlite(&layout.audit_db)
        .map_err(|e| DemoError::Inventory(Box::new(e)))?;
    let snapshot = inventory.snapshot(OffsetDateTime::now_utc());
    let dir = layout.root.join("inventory");
    let openapi = dir.join("openapi");
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { path, source }
    };
    std::fs::create_dir_all(&openapi).map_err(io(&openapi))?;
    let snapshot_file = dir.join("snapshot.json");
    std::fs::write(&snapshot_file, snapshot.to_json()).map_err(io(&snapshot_file))?;
    let mut written = Vec::new();
    for spec in reconstruct(&snapshot) {
        let file = openapi.join(format!("{}.json", spec.service));
        std::fs::write(&file, spec.to_json()).map_err(io(&file))?;
        written.push(file.display().to_string());
    }
    Ok(format!(
        "The API inventory, built from that audit log (palisade inventory --config {}):\n\n{}\n\
         Snapshot: {} (compare two with palisade inventory diff)\n\
         OpenAPI 3.1 reconstructed from the traffic:\n  {}\n",
        layout.config.display(),
        render_table(&snapshot),
        snapshot_file.display(),
        written.join("\n  ")
    ))
}
