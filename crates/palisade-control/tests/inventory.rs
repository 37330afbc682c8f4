//! The control plane keeps the live API inventory: rebuilt from the audit database on a
//! schedule, written under `<state_dir>/inventory/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use palisade_audit::{AuditRecord, AuditWriter, AuthMethod, Decision, Direction, SinkConfig};
use palisade_control::inventory::{InventoryRefresh, INVENTORY_DIR, SNAPSHOT_FILE};
use palisade_inventory::{InventoryInputs, ServiceInputs, Snapshot};
use palisade_testkit::wait_until;
use support::Harness;
use time::OffsetDateTime;

/// `n` allowed inbound calls to billing's `GET /invoices/<i>` from orders.
fn traffic(db: &std::path::Path, n: u64) {
    let writer = AuditWriter::start(
        SinkConfig::Sqlite {
            path: db.to_path_buf(),
        },
        64,
    )
    .unwrap();
    let handle = writer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..n {
        let record = AuditRecord {
            ts: OffsetDateTime::now_utc(),
            request_id: format!("r{i}"),
            caller: Some("spiffe://example.org/ns/test/sa/orders".into()),
            auth: AuthMethod::Mtls,
            service: "billing".into(),
            method: Some("GET".into()),
            path: Some(format!("/invoices/{}", 1000 + i)),
            route: None,
            decision: Decision::Allow,
            code: None,
            policies: vec!["orders-read".into()],
            status: Some(200),
            latency_us: 100,
            bytes_in: 0,
            bytes_out: 10,
            data_classes: Vec::new(),
            peer: None,
            direction: Direction::Inbound,
            detail: None,
            findings: Vec::new(),
            ratelimit_degraded: false,
            shape: None,
        };
        runtime.block_on(handle.record(record)).unwrap();
    }
    drop(handle);
    writer.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_control_plane_writes_the_inventory_and_keeps_it_fresh() {
    let traffic_dir = tempfile::tempdir().unwrap();
    let db = traffic_dir.path().join("traffic.db");
    let db_for_task = db.clone();
    tokio::task::spawn_blocking({
        let db = db.clone();
        move || traffic(&db, 3)
    })
    .await
    .unwrap();
    let h = Harness::start_with(move |_, config| {
        let mut inputs = InventoryInputs::default();
        inputs.services.insert(
            "billing".into(),
            ServiceInputs {
                owner: Some("team-billing".into()),
                ..ServiceInputs::default()
            },
        );
        config.inventory = Some(InventoryRefresh {
            db: db_for_task,
            inputs,
            window: Some(Duration::from_secs(3600)),
            interval: Duration::from_millis(200),
        });
    })
    .await;
    let dir = h.pki.state_dir().join(INVENTORY_DIR);
    let snapshot = || -> Option<Snapshot> {
        let text = std::fs::read_to_string(dir.join(SNAPSHOT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let calls = |s: &Snapshot| -> u64 {
        s.services
            .iter()
            .flat_map(|service| &service.endpoints)
            .map(|e| e.calls)
            .sum()
    };
    wait_until("the first inventory", Duration::from_secs(10), || {
        snapshot().is_some_and(|s| calls(&s) == 3)
    })
    .await;
    let first = snapshot().unwrap();
    let billing = first.services.iter().find(|s| s.name == "billing").unwrap();
    assert_eq!(billing.owner.as_deref(), Some("team-billing"));
    assert_eq!(billing.endpoints.len(), 1, "one templated endpoint");
    assert_eq!(billing.endpoints[0].template, "/invoices/{invoiceId}");
    assert!(dir.join("openapi/billing.json").is_file());

    // More traffic arrives; the next refresh counts it without a restart.
    tokio::task::spawn_blocking(move || traffic(&db, 2))
        .await
        .unwrap();
    wait_until("a refreshed inventory", Duration::from_secs(10), || {
        snapshot().is_some_and(|s| calls(&s) == 5)
    })
    .await;
    h.finish().await;
}
