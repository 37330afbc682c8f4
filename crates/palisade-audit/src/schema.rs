//! The SQLite schema, its migrations, and how connections are opened.
//!
//! The schema version lives in `PRAGMA user_version`. `MIGRATIONS[n]` takes
//! a database from version `n` to `n + 1`, so a later field becomes a new
//! entry such as `ALTER TABLE audit_records ADD COLUMN tenant TEXT;` and old
//! rows read back with the column `NULL`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::AuditError;

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

/// How long a statement waits for another process holding the write lock
/// before failing; several sidecars may share one database file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1: the initial record layout.
///
/// `ts_us` is microseconds since the Unix epoch (UTC) so ordering and `since`
/// filters are integer comparisons. `policies` and `data_classes` are JSON
/// arrays of strings. `id` is the rowid, which breaks ties between records
/// with the same timestamp in insertion order.
const V1: &str = "
CREATE TABLE audit_records (
    id           INTEGER PRIMARY KEY,
    ts_us        INTEGER NOT NULL,
    request_id   TEXT    NOT NULL,
    caller       TEXT,
    auth         TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    method       TEXT,
    path         TEXT,
    route        TEXT,
    decision     TEXT    NOT NULL,
    code         TEXT,
    policies     TEXT    NOT NULL,
    status       INTEGER,
    latency_us   INTEGER NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    data_classes TEXT    NOT NULL,
    peer         TEXT,
    direction    TEXT    NOT NULL,
    detail       TEXT
);
CREATE INDEX audit_records_ts       ON audit_records (ts_us, id);
CREATE INDEX audit_records_caller   ON audit_records (caller, ts_us);
CREATE INDEX audit_records_service  ON audit_records (service, ts_us);
CREATE INDEX audit_records_decision ON audit_records (decision, ts_us);
";

/// Version 2: what the request guard found (`findings`, a JSON array of
/// `"<code>@<location>"` strings, including findings only reported), and
/// whether the rate-limit decision was made locally because the shared
/// backend was unavailable.
const V2: &str = "
ALTER TABLE audit_records ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audit_records ADD COLUMN ratelimit_degraded INTEGER NOT NULL DEFAULT 0;
";

/// Version 3: the exchange's shape for the API inventory (`shape`, a JSON
/// object of query parameter names and body field paths with their types and
/// data classes, never values; `NULL` when not sampled).
const V3: &str = "
ALTER TABLE audit_records ADD COLUMN shape TEXT;
";

/// `MIGRATIONS[n]` upgrades schema version `n` to `n + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2, V3];

/// The columns read back into an `AuditRecord`, in `SELECT` order.
pub(crate) const SELECT_COLUMNS: &str = "id, ts_us, request_id, caller, auth, service, method, \
     path, route, decision, code, policies, status, latency_us, bytes_in, bytes_out, \
     data_classes, peer, direction, detail, findings, ratelimit_degraded, shape";

/// Inserts one record; parameters in the order of the column list.
pub(crate) const INSERT: &str = "INSERT INTO audit_records (ts_us, request_id, caller, auth, \
     service, method, path, route, decision, code, policies, status, latency_us, bytes_in, \
     bytes_out, data_classes, peer, direction, detail, findings, ratelimit_degraded, shape) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
     ?20, ?21, ?22)";

/// Opens (creating if needed) the database for the writer thread: WAL so
/// readers never block the writer, `synchronous = NORMAL` (durable across
/// process crashes, batched fsync), a busy timeout so several processes can
/// share the file, and the schema migrated to [`SCHEMA_VERSION`].
pub(crate) fn open_for_writing(path: &Path) -> Result<Connection, AuditError> {
    let open_err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path = %path.display(),
            journal_mode = %mode,
            "audit database could not switch to WAL mode; concurrent readers will block the writer"
        );
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`] inside one `IMMEDIATE`
/// transaction, so two processes starting on a fresh file cannot both
/// create the tables.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), AuditError> {
    let open_err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    let from = usize::try_from(found)
        .ok()
        .filter(|&from| from <= MIGRATIONS.len())
        .ok_or_else(|| AuditError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        })?;
    if from == MIGRATIONS.len() {
        return Ok(());
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tracing::info!(path = %path.display(), from = version, to = version + 1, "migrating audit database");
        tx.execute_batch(sql).map_err(open_err)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(open_err)?;
    tx.commit().map_err(open_err)
}

/// Opens an existing database read-only for queries and checks that it has
/// exactly the schema this build reads. A missing file is
/// [`AuditError::DatabaseMissing`] rather than an empty database.
pub(crate) fn open_for_reading(path: &Path) -> Result<Connection, AuditError> {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditError::DatabaseMissing {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(AuditError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let open_err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    match found {
        SCHEMA_VERSION => Ok(conn),
        0 => Err(AuditError::NotAnAuditDatabase {
            path: path.to_path_buf(),
        }),
        // A log written by an older build: bring it up to date, then read it.
        older if (1..SCHEMA_VERSION).contains(&older) => {
            drop(conn);
            open_for_writing(path)
        }
        _ => Err(AuditError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
    }
}
