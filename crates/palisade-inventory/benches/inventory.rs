//! Building the inventory from a SQLite audit database: 30 000 records of
//! three services (one recorded with routes, one templated from paths, one
//! matched against its spec by the inventory), streamed, counted, then
//! snapshotted with flags, drift and risk.
//!
//! `cargo bench -p palisade-inventory --bench inventory`; the 1 million
//! record figure comes from `cargo run --release -p palisade-inventory
//! --example inventory_1m`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_inventory::{Inventory, InventoryOptions};

const RECORDS: usize = 30_000;

fn build(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    common::write_mixed_traffic(&db, RECORDS);
    let inputs = common::mixed_inputs();
    let mut group = c.benchmark_group("inventory");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("build_from_sqlite_30k", |b| {
        b.iter(|| {
            let mut inventory = Inventory::new(inputs.clone(), InventoryOptions::default());
            inventory.read_sqlite(&db).unwrap();
            black_box(inventory.snapshot(common::START))
        })
    });
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
