//! Reading records back from a SQLite audit database.

use std::ops::ControlFlow;
use std::path::Path;

use rusqlite::types::{FromSql, Value};
use rusqlite::Row;
use time::OffsetDateTime;

use crate::error::AuditError;
use crate::record::{from_unix_micros, unix_micros, AuditRecord, Decision};
use crate::schema::{self, SELECT_COLUMNS};

/// Filters for [`query`]; every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records from this caller (exact SPIFFE ID).
    pub caller: Option<String>,
    /// Only records seen by this service's sidecar.
    pub service: Option<String>,
    /// Only allowed or only denied requests.
    pub decision: Option<Decision>,
    /// Only records at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only the most recent `limit` matching records (still returned oldest
    /// first, like `tail`).
    pub limit: Option<usize>,
}

/// Reads the records matching `q`, oldest first (ties in insertion order).
///
/// Opens the database read-only, so it is safe while sidecars write to it.
/// A missing file is [`AuditError::DatabaseMissing`], not an empty result,
/// so a mistyped path is not mistaken for "nothing happened".
pub fn query(db_path: &Path, q: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
    let mut records = Vec::new();
    for_each_record(db_path, q, |record| {
        records.push(record);
        ControlFlow::Continue(())
    })?;
    Ok(records)
}

/// Streams the records matching `q` to `f`, oldest first (ties in insertion
/// order), one at a time, so a log of millions of records is read in
/// constant memory (what [`query`] collects into a `Vec`). `f` returns
/// [`ControlFlow::Break`] to stop early. Returns how many records `f` was
/// given.
///
/// Same database handling as [`query`]: read-only, safe while sidecars
/// write (the read sees the log as of its start, WAL snapshot isolation),
/// a missing file is [`AuditError::DatabaseMissing`], and a row that does
/// not decode stops the read with [`AuditError::Corrupt`].
pub fn for_each_record(
    db_path: &Path,
    q: &AuditQuery,
    mut f: impl FnMut(AuditRecord) -> ControlFlow<()>,
) -> Result<u64, AuditError> {
    let conn = schema::open_for_reading(db_path)?;
    let sql_err = |source| AuditError::Sqlite {
        path: db_path.to_path_buf(),
        source,
    };
    let (sql, params) = select(q);
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(sql_err)?;
    let mut seen = 0;
    while let Some(row) = rows.next().map_err(sql_err)? {
        seen += 1;
        if f(decode(row)?).is_break() {
            break;
        }
    }
    Ok(seen)
}

/// The `SELECT` for `q` and its parameters.
fn select(q: &AuditQuery) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(caller) = &q.caller {
        clauses.push("caller = ?");
        params.push(Value::Text(caller.clone()));
    }
    if let Some(service) = &q.service {
        clauses.push("service = ?");
        params.push(Value::Text(service.clone()));
    }
    if let Some(decision) = q.decision {
        clauses.push("decision = ?");
        params.push(Value::Text(decision.as_str().to_owned()));
    }
    if let Some(since) = q.since {
        clauses.push("ts_us >= ?");
        params.push(Value::Integer(unix_micros(since)));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = match q.limit {
        None => format!("SELECT {SELECT_COLUMNS} FROM audit_records{filter} ORDER BY ts_us, id"),
        Some(limit) => {
            params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            format!(
                "SELECT * FROM (SELECT {SELECT_COLUMNS} FROM audit_records{filter} \
                 ORDER BY ts_us DESC, id DESC LIMIT ?) ORDER BY ts_us, id"
            )
        }
    };
    (sql, params)
}

/// How many records the database holds.
pub fn count(db_path: &Path) -> Result<u64, AuditError> {
    let conn = schema::open_for_reading(db_path)?;
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM audit_records", [], |row| row.get(0))
        .map_err(|source| AuditError::Sqlite {
            path: db_path.to_path_buf(),
            source,
        })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Turns one row of [`SELECT_COLUMNS`] into a record, naming the column on
/// any failure.
fn decode(row: &Row<'_>) -> Result<AuditRecord, AuditError> {
    let id: i64 = row.get("id").map_err(|_| AuditError::Corrupt {
        row: 0,
        field: "id",
    })?;
    let cols = Columns { row, id };
    Ok(AuditRecord {
        ts: cols.convert("ts_us", from_unix_micros)?,
        request_id: cols.get("request_id")?,
        caller: cols.get("caller")?,
        auth: cols.convert("auth", |s: String| s.parse().ok())?,
        service: cols.get("service")?,
        method: cols.get("method")?,
        path: cols.get("path")?,
        route: cols.get("route")?,
        decision: cols.convert("decision", |s: String| s.parse().ok())?,
        code: cols.get("code")?,
        policies: cols.convert("policies", |s: String| serde_json::from_str(&s).ok())?,
        status: cols.get("status")?,
        latency_us: cols.convert("latency_us", |n: i64| u64::try_from(n).ok())?,
        bytes_in: cols.convert("bytes_in", |n: i64| u64::try_from(n).ok())?,
        bytes_out: cols.convert("bytes_out", |n: i64| u64::try_from(n).ok())?,
        data_classes: cols.convert("data_classes", |s: String| serde_json::from_str(&s).ok())?,
        peer: cols.get("peer")?,
        direction: cols.convert("direction", |s: String| s.parse().ok())?,
        detail: cols.get("detail")?,
        findings: cols.convert("findings", |s: String| serde_json::from_str(&s).ok())?,
        ratelimit_degraded: cols.get("ratelimit_degraded")?,
        shape: cols.convert("shape", |s: Option<String>| match s {
            None => Some(None),
            Some(text) => serde_json::from_str(&text).ok().map(Some),
        })?,
    })
}

/// Column access that reports failures as [`AuditError::Corrupt`].
struct Columns<'a, 'stmt> {
    row: &'a Row<'stmt>,
    id: i64,
}

impl Columns<'_, '_> {
    fn corrupt(&self, field: &'static str) -> AuditError {
        AuditError::Corrupt {
            row: self.id,
            field,
        }
    }

    fn get<T: FromSql>(&self, field: &'static str) -> Result<T, AuditError> {
        self.row.get(field).map_err(|_| self.corrupt(field))
    }

    fn convert<T: FromSql, U>(
        &self,
        field: &'static str,
        f: impl FnOnce(T) -> Option<U>,
    ) -> Result<U, AuditError> {
        f(self.get(field)?).ok_or_else(|| self.corrupt(field))
    }
}
