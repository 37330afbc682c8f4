//! Errors from writing and reading the audit log.

use std::path::PathBuf;

/// Everything that can go wrong opening, writing or reading an audit sink.
///
/// Every variant that concerns a file names it, so an operator can act on
/// the message without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The SQLite database could not be opened or prepared (created, put in
    /// WAL mode, migrated).
    #[error("cannot open audit database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A statement against an open audit database failed.
    #[error("audit database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// `query` or `count` was pointed at a file that does not exist; an
    /// empty result would hide a wrong path.
    #[error("audit database {path} does not exist (is the path right, and has a sidecar with a SQLite audit sink run yet?)")]
    DatabaseMissing {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// The file is a SQLite database, but not one this crate created.
    #[error("{path} is not a Palisade audit database (it has no audit schema)")]
    NotAnAuditDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer (or unknown) schema version, so
    /// this build can neither read it faithfully nor migrate it.
    #[error("audit database {path} has schema version {found}; this build of Palisade supports version {supported}")]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// The `PRAGMA user_version` found in the file.
        found: i64,
        /// The version this build reads and writes.
        supported: i64,
    },
    /// A stored row could not be decoded back into an [`AuditRecord`](crate::AuditRecord).
    #[error("audit row {row} has an undecodable `{field}` column")]
    Corrupt {
        /// The row's id (SQLite rowid).
        row: i64,
        /// The column that failed to decode.
        field: &'static str,
    },
    /// Opening or writing a JSON lines file failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The requested queue capacity cannot back a bounded channel.
    #[error("audit queue capacity must be between 1 and {max}, got {capacity}")]
    InvalidQueueCapacity {
        /// The capacity asked for.
        capacity: usize,
        /// The largest capacity supported.
        max: usize,
    },
    /// The OS refused to start the writer thread.
    #[error("cannot start the audit writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The writer thread is gone, so no record can be queued any more.
    #[error("the audit writer has shut down")]
    WriterClosed,
    /// The writer thread panicked; records still queued were not written.
    #[error("the audit writer thread panicked")]
    WriterPanicked,
}

/// A string that is not one of the spellings of an audit enum
/// ([`Decision`](crate::Decision), [`AuthMethod`](crate::AuthMethod),
/// [`Direction`](crate::Direction)).
///
/// Names the rejected value so a CLI filter typo is obvious.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: expected one of {}", .expected.join(", "))]
pub struct ParseEnumError {
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    pub(crate) expected: &'static [&'static str],
}

impl ParseEnumError {
    /// The rejected input, verbatim.
    pub fn value(&self) -> &str {
        &self.value
    }
}
