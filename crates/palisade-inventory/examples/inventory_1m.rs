//! The inventory's performance target, measured: build it from 1 million
//! audit records in SQLite. Not a timed test: run it and read the figures.
//!
//! ```sh
//! cargo run --release -p palisade-inventory --example inventory_1m            # 1,000,000 records
//! cargo run --release -p palisade-inventory --example inventory_1m -- 200000  # another size
//! cargo run --release -p palisade-inventory --example inventory_1m -- 1000000 /tmp/audit-1m.db  # keep (or reuse) the database
//! ```
//!
//! The records are generated from three fixture specs (`testdata/specs`),
//! with realistic identifiers and JSON bodies profiled like the sidecar
//! profiles them, and written through `AuditWriter` like a sidecar writes
//! them. Then the inventory streams the database (`Inventory::read_sqlite`)
//! and takes a snapshot; both steps are timed, with the process's peak
//! memory.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use palisade_inventory::{Inventory, InventoryOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .map(|n| n.parse().expect("the first argument is a record count"))
        .unwrap_or(1_000_000);
    let kept = args.next().map(PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let db = kept.clone().unwrap_or_else(|| dir.path().join("audit.db"));

    if kept.is_some() && db.exists() {
        let count = palisade_audit::count(&db).unwrap();
        println!("reusing {} ({count} records)", db.display());
    } else {
        let started = Instant::now();
        common::write_mixed_traffic(&db, records);
        println!(
            "generated and wrote {records} records to {} in {:.1} s ({} MiB)",
            db.display(),
            started.elapsed().as_secs_f64(),
            std::fs::metadata(&db).map(|m| m.len() >> 20).unwrap_or(0)
        );
    }

    // The floor: reading and decoding the records without counting them.
    let started = Instant::now();
    let decoded =
        palisade_audit::for_each_record(&db, &palisade_audit::AuditQuery::default(), |record| {
            std::hint::black_box(record);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    println!(
        "reading and decoding {decoded} records alone: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut inventory = Inventory::new(common::mixed_inputs(), InventoryOptions::default());
    let read = inventory.read_sqlite(&db).unwrap();
    let reading = started.elapsed();
    let snapshot = inventory.snapshot(common::START);
    let total = started.elapsed();
    let endpoints = snapshot.endpoints().count();
    println!(
        "inventory of {read} records: read and counted in {:.2} s ({:.0} records/s), snapshot in {:.3} s, total {:.2} s",
        reading.as_secs_f64(),
        read as f64 / reading.as_secs_f64(),
        (total - reading).as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "{endpoints} endpoints in {} services; peak resident memory {}",
        snapshot.services.len(),
        peak_rss().unwrap_or_else(|| "unknown".to_owned())
    );
}

/// VmHWM from /proc (Linux).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_owned())
}
