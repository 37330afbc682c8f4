//! The writer, its sinks and queries, against real files in a tempdir.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::task::Poll;
use std::time::{Duration, Instant};

use palisade_audit::{
    count, for_each_record, query, AuditError, AuditHandle, AuditQuery, AuditRecord, AuditSlot,
    AuditStats, AuditWriter, AuthMethod, Decision, Direction, SinkConfig, SCHEMA_VERSION,
};
use time::macros::datetime;
use time::OffsetDateTime;

const CHECKOUT: &str = "spiffe://palisade.test/ns/shop/sa/checkout";
const BILLING: &str = "spiffe://palisade.test/ns/shop/sa/billing";

/// A fully populated, allowed record `n` microseconds after a fixed instant.
fn sample(n: u64) -> AuditRecord {
    AuditRecord {
        ts: datetime!(2026-11-30 08:00:00 UTC) + time::Duration::microseconds(n as i64),
        request_id: format!("req-{n:06}"),
        caller: Some(CHECKOUT.to_owned()),
        auth: AuthMethod::Mtls,
        service: "payments".to_owned(),
        method: Some("POST".to_owned()),
        path: Some(format!("/charges/{n}")),
        route: Some("/charges/{id}".to_owned()),
        decision: Decision::Allow,
        code: None,
        policies: vec!["allow-checkout".to_owned()],
        status: Some(200),
        latency_us: 900 + n,
        bytes_in: 10,
        bytes_out: 20,
        data_classes: vec![],
        peer: Some("127.0.0.1:5555".to_owned()),
        direction: Direction::Inbound,
        detail: None,
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
    }
}

fn sqlite(path: &Path) -> SinkConfig {
    SinkConfig::Sqlite {
        path: path.to_path_buf(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Writes `records` through a fresh writer and shuts it down.
fn write_all(sink: SinkConfig, records: Vec<AuditRecord>) -> AuditStats {
    let writer = AuditWriter::start(sink, 16).unwrap();
    let handle = writer.handle();
    runtime().block_on(async move {
        for record in records {
            handle.record(record).await.unwrap();
        }
    });
    writer.shutdown().unwrap()
}

fn ids(records: &[AuditRecord]) -> Vec<String> {
    records.iter().map(|r| r.request_id.clone()).collect()
}

/// Spawns `tasks` tasks that each record `per_task` distinct records.
fn spawn_writers(
    handle: &AuditHandle,
    prefix: &str,
    tasks: u64,
    per_task: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|task| {
            let handle = handle.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let n = task * per_task + i;
                    let record = AuditRecord {
                        request_id: format!("{prefix}-{n}"),
                        ..sample(n)
                    };
                    handle.record(record).await.unwrap();
                }
            })
        })
        .collect()
}

async fn shutdown(writer: AuditWriter) -> AuditStats {
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap()
        .unwrap()
}

fn distinct_ids(path: &Path) -> BTreeSet<String> {
    ids(&query(path, &AuditQuery::default()).unwrap())
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------- SQLite ---

#[test]
fn round_trips_every_field_through_sqlite_with_microsecond_precision() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let full = AuditRecord {
        ts: datetime!(2026-11-30 08:24:36.123456 UTC),
        decision: Decision::Deny,
        code: Some("palisade.authz.denied".to_owned()),
        policies: vec!["deny-refunds".to_owned(), "baseline \"quoted\"".to_owned()],
        status: Some(403),
        latency_us: u64::from(u32::MAX) + 7,
        bytes_in: 1 << 40,
        bytes_out: 0,
        data_classes: vec!["email".to_owned(), "iban".to_owned()],
        auth: AuthMethod::Jwt,
        direction: Direction::Outbound,
        detail: Some("no policy permits refunds — from checkout".to_owned()),
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: Some(palisade_audit::ExchangeShape {
            query: vec![palisade_audit::FieldShape {
                name: "email".into(),
                types: vec!["string".into()],
                classes: vec!["email".into()],
            }],
            request: Vec::new(),
            response: vec![palisade_audit::FieldShape {
                name: "/items/*/card".into(),
                types: vec!["string".into(), "null".into()],
                classes: vec!["payment_card".into()],
            }],
            truncated: true,
        }),
        ..sample(1)
    };
    let refused_in_handshake = AuditRecord {
        ts: datetime!(2026-11-30 08:24:36.999999 UTC),
        request_id: "req-handshake".to_owned(),
        caller: None,
        auth: AuthMethod::None,
        method: None,
        path: None,
        route: None,
        decision: Decision::Deny,
        code: Some("palisade.tls.handshake".to_owned()),
        policies: vec![],
        status: None,
        latency_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        data_classes: vec![],
        peer: None,
        direction: Direction::Inbound,
        detail: None,
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
        service: "payments".to_owned(),
    };
    let stats = write_all(
        sqlite(&db),
        vec![full.clone(), refused_in_handshake.clone()],
    );
    assert_eq!(stats.written, 2);
    assert_eq!(stats.write_errors, 0);

    let back = query(&db, &AuditQuery::default()).unwrap();
    assert_eq!(back, vec![full, refused_in_handshake]);
    assert_eq!(back[0].ts.microsecond(), 123_456);
    assert_eq!(back[0].ts.nanosecond(), 123_456_000);
}

#[test]
fn sqlite_truncates_timestamps_to_microseconds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let record = AuditRecord {
        ts: datetime!(2026-11-30 08:24:36.123456789 UTC),
        ..sample(0)
    };
    write_all(sqlite(&db), vec![record]);
    let back = query(&db, &AuditQuery::default()).unwrap();
    assert_eq!(back[0].ts, datetime!(2026-11-30 08:24:36.123456 UTC));
}

#[test]
fn new_database_uses_wal_and_the_current_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 4).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(mode, "wal");
    drop(conn);
    writer.shutdown().unwrap();
}

#[test]
fn reopening_a_database_keeps_its_records_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_all(sqlite(&db), vec![sample(1), sample(2)]);
    write_all(sqlite(&db), vec![sample(3)]);
    let back = query(&db, &AuditQuery::default()).unwrap();
    assert_eq!(ids(&back), ["req-000001", "req-000002", "req-000003"]);
}

#[test]
fn writer_refuses_a_database_from_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = AuditWriter::start(sqlite(&db), 4).unwrap_err();
    assert!(
        matches!(err, AuditError::UnsupportedSchema { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("audit.db"), "{err}");
}

#[test]
fn writer_start_names_the_path_when_the_directory_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("no-such-dir").join("audit.db");
    let err = AuditWriter::start(sqlite(&db), 4).unwrap_err();
    assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn writer_start_rejects_a_zero_queue_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let err = AuditWriter::start(sqlite(&dir.path().join("audit.db")), 0).unwrap_err();
    assert!(
        matches!(err, AuditError::InvalidQueueCapacity { capacity: 0, .. }),
        "{err:?}"
    );
}

// --------------------------------------------------------------- queries ---

/// Six records covering two callers, two services and both decisions, one
/// second apart.
fn mixed_log(dir: &Path) -> PathBuf {
    let db = dir.join("audit.db");
    let at = |secs: i64| datetime!(2026-11-30 08:00:00 UTC) + time::Duration::seconds(secs);
    let denied = |n: u64| AuditRecord {
        decision: Decision::Deny,
        code: Some("palisade.authz.denied".to_owned()),
        status: Some(403),
        ..sample(n)
    };
    let records = vec![
        AuditRecord {
            ts: at(0),
            request_id: "a".to_owned(),
            ..sample(0)
        },
        AuditRecord {
            ts: at(1),
            request_id: "b".to_owned(),
            caller: Some(BILLING.to_owned()),
            ..denied(1)
        },
        AuditRecord {
            ts: at(2),
            request_id: "c".to_owned(),
            service: "ledger".to_owned(),
            ..sample(2)
        },
        AuditRecord {
            ts: at(3),
            request_id: "d".to_owned(),
            caller: Some(BILLING.to_owned()),
            service: "ledger".to_owned(),
            ..sample(3)
        },
        AuditRecord {
            ts: at(4),
            request_id: "e".to_owned(),
            caller: None,
            ..denied(4)
        },
        AuditRecord {
            ts: at(5),
            request_id: "f".to_owned(),
            service: "ledger".to_owned(),
            ..denied(5)
        },
    ];
    write_all(sqlite(&db), records);
    db
}

fn query_ids(db: &Path, q: AuditQuery) -> Vec<String> {
    ids(&query(db, &q).unwrap())
}

#[test]
fn query_without_filters_returns_everything_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    assert_eq!(
        query_ids(&db, AuditQuery::default()),
        ["a", "b", "c", "d", "e", "f"]
    );
}

#[test]
fn query_filters_by_exact_caller() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let q = AuditQuery {
        caller: Some(BILLING.to_owned()),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, q), ["b", "d"]);
    let prefix_only = AuditQuery {
        caller: Some("spiffe://palisade.test".to_owned()),
        ..AuditQuery::default()
    };
    assert!(query_ids(&db, prefix_only).is_empty());
}

#[test]
fn query_filters_by_service() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let q = AuditQuery {
        service: Some("ledger".to_owned()),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, q), ["c", "d", "f"]);
}

#[test]
fn query_filters_by_decision() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let deny = AuditQuery {
        decision: Some(Decision::Deny),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, deny), ["b", "e", "f"]);
    let allow = AuditQuery {
        decision: Some(Decision::Allow),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, allow), ["a", "c", "d"]);
}

#[test]
fn query_since_is_inclusive_and_microsecond_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let at_d = AuditQuery {
        since: Some(datetime!(2026-11-30 08:00:03 UTC)),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, at_d), ["d", "e", "f"]);
    let just_after_d = AuditQuery {
        since: Some(datetime!(2026-11-30 08:00:03.000001 UTC)),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, just_after_d), ["e", "f"]);
    // The same instant in another offset selects the same records.
    let other_offset = AuditQuery {
        since: Some(datetime!(2026-11-30 09:00:03 +01:00)),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, other_offset), ["d", "e", "f"]);
}

#[test]
fn query_limit_keeps_the_most_recent_records_in_ascending_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let last_two = AuditQuery {
        limit: Some(2),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, last_two), ["e", "f"]);
    let zero = AuditQuery {
        limit: Some(0),
        ..AuditQuery::default()
    };
    assert!(query_ids(&db, zero).is_empty());
    let more_than_all = AuditQuery {
        limit: Some(100),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, more_than_all).len(), 6);
}

#[test]
fn query_combines_filters_before_applying_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let q = AuditQuery {
        caller: Some(CHECKOUT.to_owned()),
        service: Some("payments".to_owned()),
        decision: Some(Decision::Allow),
        since: Some(datetime!(2026-11-30 07:00:00 UTC)),
        limit: Some(1),
    };
    assert_eq!(query_ids(&db, q), ["a"]);
    let denied_ledger = AuditQuery {
        service: Some("ledger".to_owned()),
        decision: Some(Decision::Deny),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, denied_ledger), ["f"]);
}

#[test]
fn records_with_the_same_timestamp_keep_insertion_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let ts = datetime!(2026-11-30 08:00:00 UTC);
    let late = AuditRecord {
        ts: ts + time::Duration::seconds(1),
        request_id: "late".to_owned(),
        ..sample(0)
    };
    let same = |id: &str| AuditRecord {
        ts,
        request_id: id.to_owned(),
        ..sample(0)
    };
    // Written out of timestamp order: ts sorts first, insertion breaks ties.
    write_all(sqlite(&db), vec![late, same("x"), same("y"), same("z")]);
    assert_eq!(
        query_ids(&db, AuditQuery::default()),
        ["x", "y", "z", "late"]
    );
    let last_two = AuditQuery {
        limit: Some(2),
        ..AuditQuery::default()
    };
    assert_eq!(query_ids(&db, last_two), ["z", "late"]);
}

#[test]
fn query_on_a_missing_database_is_database_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nope.db");
    let err = query(&db, &AuditQuery::default()).unwrap_err();
    assert!(
        matches!(&err, AuditError::DatabaseMissing { path } if path == &db),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.db"), "{err}");
    assert!(matches!(
        count(&db).unwrap_err(),
        AuditError::DatabaseMissing { .. }
    ));
    // Querying must not create the file.
    assert!(!db.exists());
}

#[test]
fn query_refuses_a_sqlite_file_without_the_audit_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
    drop(conn);
    let err = query(&db, &AuditQuery::default()).unwrap_err();
    assert!(
        matches!(err, AuditError::NotAnAuditDatabase { .. }),
        "{err:?}"
    );
}

#[test]
fn query_reports_an_undecodable_row_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_all(sqlite(&db), vec![sample(1)]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE audit_records SET decision = 'perhaps'", [])
        .unwrap();
    drop(conn);
    let err = query(&db, &AuditQuery::default()).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::Corrupt {
                row: 1,
                field: "decision"
            }
        ),
        "{err:?}"
    );
}

#[test]
fn query_reads_while_a_writer_holds_the_database_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_all(sqlite(&db), vec![sample(1)]);
    let writer = AuditWriter::start(sqlite(&db), 4).unwrap();
    assert_eq!(
        ids(&query(&db, &AuditQuery::default()).unwrap()),
        ["req-000001"]
    );
    let handle = writer.handle();
    runtime().block_on(handle.record(sample(2))).unwrap();
    drop(handle);
    writer.shutdown().unwrap();
    assert_eq!(count(&db).unwrap(), 2);
}

// ---------------------------------------------------------------- writer ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_every_queued_record_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 256).unwrap();
    let handle = writer.handle();
    for task in spawn_writers(&handle, "w", 8, 1_250) {
        task.await.unwrap();
    }
    drop(handle);
    // Records may still be queued here; shutdown must write them all.
    let stats = shutdown(writer).await;
    assert_eq!(stats.written, 10_000);
    assert_eq!(stats.write_errors, 0);
    assert_eq!(count(&db).unwrap(), 10_000);
    assert_eq!(distinct_ids(&db).len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_applies_backpressure_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 1).unwrap();
    let handle = writer.handle();

    // Hold the only slot: the queue is now full and the writer cannot drain it.
    let held = handle.reserve().await.unwrap();
    assert_eq!(handle.stats().backpressure_waits, 0);

    let writers = {
        // A reserver arriving now must wait, and counts that before waiting.
        let mut waiting = std::pin::pin!(handle.reserve());
        let first_poll = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
        assert!(first_poll.is_pending());
        assert_eq!(handle.stats().backpressure_waits, 1);

        // Many more writers pile up behind it.
        let writers = spawn_writers(&handle, "crowd", 50, 4);

        held.send(AuditRecord {
            request_id: "held".to_owned(),
            ..sample(0)
        });
        let slot = waiting.await.unwrap();
        slot.send(AuditRecord {
            request_id: "waited".to_owned(),
            ..sample(0)
        });
        writers
    };
    for task in writers {
        task.await.unwrap();
    }
    drop(handle);
    let stats = shutdown(writer).await;

    assert_eq!(stats.written, 202);
    assert!(stats.backpressure_waits >= 1, "{stats:?}");
    let ids = distinct_ids(&db);
    assert_eq!(ids.len(), 202);
    assert!(ids.contains("held") && ids.contains("waited"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_unused_slot_frees_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 1).unwrap();
    let handle = writer.handle();
    let slot = handle.reserve().await.unwrap();
    drop(slot);
    handle.record(sample(1)).await.unwrap();
    assert_eq!(handle.stats().backpressure_waits, 0);
    drop(handle);
    assert_eq!(shutdown(writer).await.written, 1);
}

/// What a request task does: reserve a slot up front, then write the record
/// from `Drop` however the request ends.
struct RequestAudit {
    slot: Option<AuditSlot>,
    record: AuditRecord,
}

impl Drop for RequestAudit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.send(self.record.clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_reserved_early_records_from_drop() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 4).unwrap();
    let handle = writer.handle();

    async fn handle_request(handle: &AuditHandle) -> Result<(), &'static str> {
        let mut audit = RequestAudit {
            slot: Some(handle.reserve().await.unwrap()),
            record: sample(7),
        };
        audit.record.decision = Decision::Deny;
        audit.record.code = Some("palisade.authz.denied".to_owned());
        // An early return still produces the record.
        Err("denied")
    }
    assert_eq!(handle_request(&handle).await, Err("denied"));
    drop(handle);
    shutdown(writer).await;

    let back = query(&db, &AuditQuery::default()).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].decision, Decision::Deny);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_sharing_one_database_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    // Two sidecar processes: independent connections, threads and queues.
    let first = AuditWriter::start(sqlite(&db), 8).unwrap();
    let second = AuditWriter::start(sqlite(&db), 8).unwrap();
    let (h1, h2) = (first.handle(), second.handle());
    let mut tasks = spawn_writers(&h1, "one", 4, 500);
    tasks.extend(spawn_writers(&h2, "two", 4, 500));
    for task in tasks {
        task.await.unwrap();
    }
    drop((h1, h2));
    let (s1, s2) = (shutdown(first).await, shutdown(second).await);

    assert_eq!((s1.written, s2.written), (2_000, 2_000));
    assert_eq!(count(&db).unwrap(), 4_000);
    let ids = distinct_ids(&db);
    assert_eq!(ids.len(), 4_000);
    assert_eq!(
        ids.iter().filter(|id| id.starts_with("one-")).count(),
        2_000
    );
}

#[test]
fn retries_a_failed_batch_until_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 16).unwrap();
    let handle = writer.handle();

    // Make every insert fail, as a full disk would.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER fail_inserts BEFORE INSERT ON audit_records \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();

    runtime().block_on(async {
        for n in 0..5 {
            handle.record(sample(n)).await.unwrap();
        }
    });
    // Wait (bounded) until the writer has failed and retried at least twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.stats().write_errors < 2 {
        assert!(Instant::now() < deadline, "writer never hit the failure");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(handle.stats().written, 0);

    conn.execute_batch("DROP TRIGGER fail_inserts;").unwrap();
    drop(conn);
    drop(handle);
    let stats = writer.shutdown().unwrap();

    assert_eq!(stats.written, 5);
    assert!(stats.write_errors >= 2, "{stats:?}");
    assert_eq!(
        query_ids(&dir.path().join("audit.db"), AuditQuery::default()),
        (0..5).map(|n| format!("req-{n:06}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_until_every_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let writer = AuditWriter::start(sqlite(&db), 4).unwrap();
    let handle = writer.handle();
    let stats_before = handle.stats();
    assert_eq!(stats_before, AuditStats::default());
    // Shutdown cannot finish while a handle lives, so run it concurrently and
    // observe that it is still waiting.
    let shutting_down = tokio::task::spawn_blocking(move || writer.shutdown());
    handle.record(sample(1)).await.unwrap();
    assert!(!shutting_down.is_finished());
    drop(handle);
    let stats = shutting_down.await.unwrap().unwrap();
    assert_eq!(stats.written, 1);
}

// ------------------------------------------------------------ JSON lines ---

const FIELD_NAMES: [&str; 22] = [
    "ts",
    "request_id",
    "caller",
    "auth",
    "service",
    "method",
    "path",
    "route",
    "decision",
    "code",
    "policies",
    "status",
    "latency_us",
    "bytes_in",
    "bytes_out",
    "data_classes",
    "peer",
    "direction",
    "detail",
    "findings",
    "ratelimit_degraded",
    "shape",
];

#[test]
fn json_lines_sink_writes_one_object_per_line_with_the_exact_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let records: Vec<_> = (0..3).map(sample).collect();
    let stats = write_all(
        SinkConfig::JsonLines {
            path: Some(file.clone()),
        },
        records.clone(),
    );
    assert_eq!(stats.written, 3);

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, record) in lines.iter().zip(&records) {
        assert!(
            !line.contains('\n') && !line.contains(": "),
            "not compact: {line}"
        );
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, FIELD_NAMES.into_iter().collect());
        assert!(line.starts_with("{\"ts\":\""), "{line}");
        let back: AuditRecord = serde_json::from_value(value).unwrap();
        assert_eq!(&back, record);
    }
}

#[test]
fn json_lines_sink_appends_to_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    std::fs::write(&file, "{\"earlier\":true}\n").unwrap();
    let sink = || SinkConfig::JsonLines {
        path: Some(file.clone()),
    };
    write_all(sink(), vec![sample(1)]);
    write_all(sink(), vec![sample(2), sample(3)]);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], "{\"earlier\":true}");
    let ids: Vec<String> = lines[1..]
        .iter()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().request_id)
        .collect();
    assert_eq!(ids, ["req-000001", "req-000002", "req-000003"]);
}

#[test]
fn json_lines_sink_names_the_path_when_it_cannot_open_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing-dir").join("audit.jsonl");
    let err = AuditWriter::start(SinkConfig::JsonLines { path: Some(file) }, 4).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn json_lines_timestamps_have_six_fractional_digits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let record = AuditRecord {
        ts: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        ..sample(0)
    };
    write_all(
        SinkConfig::JsonLines {
            path: Some(file.clone()),
        },
        vec![record],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("{\"ts\":\"2027-01-15T08:00:00.000000Z\""),
        "{text}"
    );
}

// ------------------------------------------------------------ migrations ---

#[test]
fn a_version_1_log_is_migrated_and_its_records_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // The layout version 1 wrote, with one record in it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE audit_records (id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL,
               request_id TEXT NOT NULL, caller TEXT, auth TEXT NOT NULL, service TEXT NOT NULL,
               method TEXT, path TEXT, route TEXT, decision TEXT NOT NULL, code TEXT,
               policies TEXT NOT NULL, status INTEGER, latency_us INTEGER NOT NULL,
               bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, data_classes TEXT NOT NULL,
               peer TEXT, direction TEXT NOT NULL, detail TEXT);
             INSERT INTO audit_records VALUES (1, 1700000000000000, 'r1', NULL, 'none', 'billing',
               NULL, NULL, NULL, 'deny', 'palisade.identity.missing', '[]', NULL, 0, 0, 0, '[]',
               '127.0.0.1:1', 'inbound', 'no certificate');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let records = query(&path, &AuditQuery::default()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].request_id, "r1");
    assert!(records[0].findings.is_empty());
    assert!(!records[0].ratelimit_degraded);
    // A writer appends records with the new fields to the migrated file.
    let mut record = sample(2);
    record.findings = vec!["palisade.injection.sql@query/q".into()];
    record.ratelimit_degraded = true;
    record.shape = Some(palisade_audit::ExchangeShape {
        request: vec![palisade_audit::FieldShape {
            name: "/email".into(),
            types: vec!["string".into()],
            classes: vec!["email".into()],
        }],
        ..Default::default()
    });
    let writer = AuditWriter::start(SinkConfig::Sqlite { path: path.clone() }, 8).unwrap();
    let handle = writer.handle();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(handle.record(record.clone()))
        .unwrap();
    drop(handle);
    writer.shutdown().unwrap();
    let records = query(&path, &AuditQuery::default()).unwrap();
    assert_eq!(records[1], record);
}

#[test]
fn for_each_record_streams_what_query_returns_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let filters = [
        AuditQuery::default(),
        AuditQuery {
            service: Some("ledger".to_owned()),
            ..AuditQuery::default()
        },
        AuditQuery {
            decision: Some(Decision::Deny),
            limit: Some(2),
            ..AuditQuery::default()
        },
    ];
    for q in filters {
        let mut streamed = Vec::new();
        let seen = for_each_record(&db, &q, |record| {
            streamed.push(record);
            ControlFlow::Continue(())
        })
        .unwrap();
        let collected = query(&db, &q).unwrap();
        assert_eq!(seen, collected.len() as u64, "{q:?}");
        assert_eq!(streamed, collected, "{q:?}");
    }
}

#[test]
fn for_each_record_stops_when_the_callback_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let db = mixed_log(dir.path());
    let mut first = Vec::new();
    let seen = for_each_record(&db, &AuditQuery::default(), |record| {
        first.push(record.request_id);
        if first.len() == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(first, ["a", "b"]);
}

#[test]
fn for_each_record_on_a_missing_database_is_database_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nope.db");
    let err =
        for_each_record(&db, &AuditQuery::default(), |_| ControlFlow::Continue(())).unwrap_err();
    assert!(
        matches!(&err, AuditError::DatabaseMissing { .. }),
        "{err:?}"
    );
}
