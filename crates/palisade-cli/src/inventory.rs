//! `palisade inventory`: the live API inventory from the audit database, and `inventory
//! diff` between two snapshots.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use palisade_audit::AuditQuery;
use palisade_config::{AuditSink, Config};
use palisade_inventory::{Inventory, InventoryInputs, InventoryOptions, Snapshot, SpecInput};
use palisade_openapi::ApiSpec;
use time::OffsetDateTime;

use crate::commands::Failure;
use crate::{InventoryArgs, InventoryBuildArgs, InventoryCommand, InventoryFormat, OutputFormat};

/// Records between two progress updates on a terminal.
const PROGRESS_EVERY: u64 = 100_000;

pub fn run(args: InventoryArgs) -> Result<ExitCode, Failure> {
    match args.command {
        Some(InventoryCommand::Diff { old, new, format }) => diff(&old, &new, format),
        None => build(args.build),
    }
}

fn build(args: InventoryBuildArgs) -> Result<ExitCode, Failure> {
    match (args.format, &args.out) {
        (InventoryFormat::Openapi, None) => {
            return Err(
                anyhow!("--format openapi writes one file per service: give --out DIR").into(),
            )
        }
        (InventoryFormat::Table | InventoryFormat::Json, Some(_)) => {
            return Err(anyhow!("--out is only for --format openapi").into())
        }
        _ => {}
    }
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let db = match (&args.db, &config) {
        (Some(db), _) => db.clone(),
        (None, Some(config)) => match &config.audit.sink {
            AuditSink::Sqlite { path } => path.clone(),
            AuditSink::JsonLines { .. } => {
                return Err(anyhow!(
                    "{}: the audit sink is JSON lines, which the inventory cannot query; give --db with a SQLite audit database",
                    config.file.display()
                )
                .into())
            }
        },
        (None, None) => return Err(anyhow!("give --db FILE or --config palisade.toml").into()),
    };

    let now = OffsetDateTime::now_utc();
    let since = args.since.map(|window| now - window);
    let mut inputs = match &config {
        Some(config) => palisade_proxy::inventory_inputs(config)?,
        None => InventoryInputs::default(),
    };
    inputs.since = since;
    for (service, path) in &args.specs {
        inputs.services.entry(service.clone()).or_default().spec = Some(load_spec(path)?);
    }

    let mut inventory = Inventory::new(inputs, InventoryOptions::default());
    read(&mut inventory, &db, since)?;
    let snapshot = inventory.snapshot(now);
    let mut out = std::io::stdout().lock();
    match args.format {
        InventoryFormat::Table => {
            let _ = write!(out, "{}", palisade_inventory::render_table(&snapshot));
            if config.is_none() {
                let _ = writeln!(
                    out,
                    "(no --config: owners are unknown, so every endpoint is flagged orphan)"
                );
            }
        }
        InventoryFormat::Json => {
            let _ = write!(out, "{}", snapshot.to_json());
        }
        InventoryFormat::Openapi => {
            let dir = args.out.unwrap_or_default();
            write_openapi(&snapshot, &dir, &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_spec(path: &Path) -> Result<SpecInput, Failure> {
    Ok(SpecInput {
        source: path.display().to_string(),
        spec: ApiSpec::load(path)?,
    })
}

/// Streams the database into the inventory, showing a record count on a terminal.
fn read(
    inventory: &mut Inventory,
    db: &Path,
    since: Option<OffsetDateTime>,
) -> Result<(), Failure> {
    let query = AuditQuery {
        since,
        ..AuditQuery::default()
    };
    let terminal = std::io::stderr().is_terminal();
    let mut read = 0_u64;
    palisade_audit::for_each_record(db, &query, |record| {
        inventory.observe(&record);
        read += 1;
        if terminal && read % PROGRESS_EVERY == 0 {
            eprint!("\rreading {}: {read} records", db.display());
        }
        ControlFlow::Continue(())
    })?;
    if terminal && read >= PROGRESS_EVERY {
        // Clear the progress line.
        eprint!("\r\x1b[2K");
    }
    Ok(())
}

/// Writes `<service>.openapi.json` per service into `dir`, printing each path.
fn write_openapi(snapshot: &Snapshot, dir: &Path, out: &mut impl Write) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let documents = palisade_inventory::reconstruct(snapshot);
    if documents.is_empty() {
        eprintln!("no endpoint was called in the window; nothing written");
    }
    for document in documents {
        let path: PathBuf = dir.join(format!("{}.openapi.json", file_stem(&document.service)));
        std::fs::write(&path, document.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
        let _ = writeln!(out, "{}", path.display());
    }
    Ok(())
}

/// A service name as a file name: anything but letters, digits, `-`, `_` and `.` becomes
/// `_`, so a name cannot climb out of --out.
fn file_stem(service: &str) -> String {
    let stem: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.trim_matches('.').is_empty() {
        "_".to_owned()
    } else {
        stem
    }
}

fn diff(old: &Path, new: &Path, format: OutputFormat) -> Result<ExitCode, Failure> {
    let read = |path: &Path| -> Result<Snapshot, Failure> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Snapshot::from_json(&text).with_context(|| path.display().to_string())?)
    };
    let (old, new) = (read(old)?, read(new)?);
    let diff = palisade_inventory::diff(&old, &new);
    match format {
        OutputFormat::Table => print!("{}", palisade_inventory::render_diff(&diff)),
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&diff).context("cannot encode the diff")?;
            println!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_become_safe_file_stems() {
        assert_eq!(file_stem("billing"), "billing");
        assert_eq!(file_stem("../etc/passwd"), ".._etc_passwd");
        assert_eq!(file_stem(".."), "_");
        assert_eq!(file_stem("a b/c"), "a_b_c");
    }
}
