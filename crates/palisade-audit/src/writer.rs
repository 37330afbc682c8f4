//! The dedicated writer thread, the handles that feed it, and the sinks.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use tokio::sync::mpsc::{self, error::TrySendError, OwnedPermit};

use crate::error::AuditError;
use crate::record::{unix_micros, AuditRecord};
use crate::render::json_line;
use crate::schema;

/// Most records written in one transaction (or one flush). Bounds how long
/// the write lock is held when a backlog drains.
const MAX_BATCH: usize = 512;
/// First pause after a failed batch write.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between retries of a failed batch write.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where audit records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// A SQLite database, created if missing; queryable with [`query`](crate::query).
    /// Several sidecar processes may share one file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// One compact JSON object per line, for log shippers.
    JsonLines {
        /// The file to append to; `None` writes to stdout.
        path: Option<PathBuf>,
    },
}

/// Counters describing the writer's health, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AuditStats {
    /// Records durably handed to the sink.
    pub written: u64,
    /// Times a caller found the queue full and had to wait: the sink is not
    /// keeping up and requests are being slowed down.
    pub backpressure_waits: u64,
    /// Failed batch write attempts (each one retried until it succeeds).
    pub write_errors: u64,
}

/// Shared, lock-free counters behind [`AuditStats`].
#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    backpressure_waits: AtomicU64,
    write_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> AuditStats {
        AuditStats {
            written: self.written.load(Ordering::Relaxed),
            backpressure_waits: self.backpressure_waits.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }
}

/// Owns the dedicated writer thread. Keep it until the sidecar stops, then
/// call [`shutdown`](AuditWriter::shutdown) so nothing queued is lost.
///
/// Writes happen on a plain OS thread rather than the async runtime because
/// SQLite and file I/O block, and a slow disk must never stall request tasks
/// except through the explicit backpressure of a full queue.
#[derive(Debug)]
pub struct AuditWriter {
    sender: mpsc::Sender<AuditRecord>,
    thread: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl AuditWriter {
    /// Opens the sink, then starts the writer thread.
    ///
    /// For SQLite this creates the file if needed, enables WAL mode,
    /// `synchronous = NORMAL` and a 5 s busy timeout (so several sidecar
    /// processes can share one file) and migrates the schema. For JSON lines
    /// it opens the file in append mode (or uses stdout). Opening happens
    /// here, not on the thread, so a bad path fails startup.
    ///
    /// The thread, named `palisade-audit`, blocks for one record, drains
    /// whatever else is already queued (up to 512) and writes that batch in
    /// one transaction or one flush. `queue_capacity` is how many records may
    /// wait before callers feel backpressure.
    pub fn start(sink: SinkConfig, queue_capacity: usize) -> Result<AuditWriter, AuditError> {
        let max = tokio::sync::Semaphore::MAX_PERMITS;
        if queue_capacity == 0 || queue_capacity > max {
            return Err(AuditError::InvalidQueueCapacity {
                capacity: queue_capacity,
                max,
            });
        }
        let sink = Sink::open(sink)?;
        let (sender, receiver) = mpsc::channel(queue_capacity);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("palisade-audit".to_owned())
            .spawn(move || run(sink, receiver, &thread_counters))
            .map_err(AuditError::Spawn)?;
        Ok(AuditWriter {
            sender,
            thread,
            counters,
        })
    }

    /// A new handle for a connection task to queue records with.
    pub fn handle(&self) -> AuditHandle {
        AuditHandle {
            sender: self.sender.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// Drops the writer's own sender, waits until every queued record is
    /// written and joins the thread. Returns the final stats.
    ///
    /// Blocking: call it from a plain thread or `spawn_blocking`. The queue
    /// only ends once every [`AuditHandle`] (and [`AuditSlot`]) is dropped
    /// too, so stop the tasks holding them first; records they queue before
    /// that are still written. If the sink keeps failing this waits, retrying,
    /// until it recovers: records are never discarded.
    pub fn shutdown(self) -> Result<AuditStats, AuditError> {
        let AuditWriter {
            sender,
            thread,
            counters,
        } = self;
        drop(sender);
        thread.join().map_err(|_| AuditError::WriterPanicked)?;
        Ok(counters.snapshot())
    }
}

/// A cheap, cloneable way to queue audit records; give one to every
/// connection task.
#[derive(Debug, Clone)]
pub struct AuditHandle {
    sender: mpsc::Sender<AuditRecord>,
    counters: Arc<Counters>,
}

impl AuditHandle {
    /// Waits for a free queue slot. This is the backpressure point: when the
    /// sink falls behind, requests wait here instead of records being
    /// dropped. If the queue is full on entry, `backpressure_waits` is
    /// incremented before waiting.
    ///
    /// Fails only with [`AuditError::WriterClosed`], when the writer thread is
    /// gone.
    pub async fn reserve(&self) -> Result<AuditSlot, AuditError> {
        let permit = match self.sender.clone().try_reserve_owned() {
            Ok(permit) => permit,
            Err(TrySendError::Full(sender)) => {
                self.counters
                    .backpressure_waits
                    .fetch_add(1, Ordering::Relaxed);
                sender
                    .reserve_owned()
                    .await
                    .map_err(|_| AuditError::WriterClosed)?
            }
            Err(TrySendError::Closed(_)) => return Err(AuditError::WriterClosed),
        };
        Ok(AuditSlot { permit })
    }

    /// Reserves a slot (waiting under backpressure) and queues `record`.
    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.reserve().await?.send(record);
        Ok(())
    }

    /// The writer's counters right now.
    pub fn stats(&self) -> AuditStats {
        self.counters.snapshot()
    }
}

/// A reserved queue slot.
///
/// Sending through it is synchronous and cannot fail to enqueue, so a
/// request can reserve its slot when it starts and write its record from a
/// `Drop` impl when it ends, whatever path it ends on. Dropping an unused
/// slot gives the capacity back.
#[derive(Debug)]
pub struct AuditSlot {
    permit: OwnedPermit<AuditRecord>,
}

impl AuditSlot {
    /// Queues `record` in the reserved slot.
    pub fn send(self, record: AuditRecord) {
        // The returned sender is only useful for reserving again.
        drop(self.permit.send(record));
    }
}

/// The thread body: batch, write (retrying until it succeeds), count.
/// Returns when every sender and permit is gone and the queue is empty.
fn run(mut sink: Sink, mut receiver: mpsc::Receiver<AuditRecord>, counters: &Counters) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        sink.write_batch(&batch, counters);
        counters
            .written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
}

/// An open sink, owned by the writer thread.
enum Sink {
    Sqlite { conn: Connection, path: PathBuf },
    JsonLines { out: JsonOut, label: String },
}

/// The destination of a JSON lines sink.
enum JsonOut {
    File(File),
    Stdout,
}

impl Sink {
    fn open(config: SinkConfig) -> Result<Sink, AuditError> {
        match config {
            SinkConfig::Sqlite { path } => {
                let conn = schema::open_for_writing(&path)?;
                Ok(Sink::Sqlite { conn, path })
            }
            SinkConfig::JsonLines { path: None } => Ok(Sink::JsonLines {
                out: JsonOut::Stdout,
                label: "stdout".to_owned(),
            }),
            SinkConfig::JsonLines { path: Some(path) } => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| AuditError::Io {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Sink::JsonLines {
                    out: JsonOut::File(file),
                    label: path.display().to_string(),
                })
            }
        }
    }

    /// Writes `batch`, retrying the same batch until it succeeds.
    fn write_batch(&mut self, batch: &[AuditRecord], counters: &Counters) {
        match self {
            Sink::Sqlite { conn, path } => {
                let label = path.display().to_string();
                retry(&label, batch.len(), counters, || insert_batch(conn, batch));
            }
            Sink::JsonLines { out, label } => {
                let mut bytes = Vec::new();
                for record in batch {
                    bytes.extend_from_slice(json_line(record).as_bytes());
                    bytes.push(b'\n');
                }
                // Progress survives a failed attempt, so a retry resumes
                // where the last one stopped instead of duplicating lines.
                let mut offset = 0;
                retry(label, batch.len(), counters, || {
                    out.write_from(&bytes, &mut offset)
                });
            }
        }
    }
}

impl JsonOut {
    /// Writes `bytes[*offset..]`, advancing `offset` as bytes land, then
    /// flushes.
    fn write_from(&mut self, bytes: &[u8], offset: &mut usize) -> io::Result<()> {
        match self {
            JsonOut::File(file) => write_resumable(file, bytes, offset),
            JsonOut::Stdout => write_resumable(&mut io::stdout().lock(), bytes, offset),
        }
    }
}

fn write_resumable(out: &mut impl Write, bytes: &[u8], offset: &mut usize) -> io::Result<()> {
    while let Some(rest) = bytes.get(*offset..).filter(|rest| !rest.is_empty()) {
        match out.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *offset += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    out.flush()
}

/// Inserts the whole batch in one `IMMEDIATE` transaction (taking the write
/// lock up front, so the busy timeout governs waiting for other processes).
fn insert_batch(conn: &mut Connection, batch: &[AuditRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(schema::INSERT)?;
        for record in batch {
            insert.execute(params![
                unix_micros(record.ts),
                record.request_id,
                record.caller,
                record.auth.as_str(),
                record.service,
                record.method,
                record.path,
                record.route,
                record.decision.as_str(),
                record.code,
                json_array(&record.policies),
                record.status,
                saturating_i64(record.latency_us),
                saturating_i64(record.bytes_in),
                saturating_i64(record.bytes_out),
                json_array(&record.data_classes),
                record.peer,
                record.direction.as_str(),
                record.detail,
                json_array(&record.findings),
                record.ratelimit_degraded,
                record
                    .shape
                    .as_ref()
                    .and_then(|shape| serde_json::to_string(shape).ok()),
            ])?;
        }
    }
    tx.commit()
}

/// A list of strings as JSON text, the storage form of list columns.
fn json_array(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

/// SQLite integers are signed; counters beyond `i64::MAX` (292,000 years of
/// microseconds, 9 EiB) are stored as `i64::MAX` rather than lost.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Runs `attempt` until it succeeds, logging and counting each failure and
/// sleeping with capped exponential backoff between tries. The queue fills
/// meanwhile, so callers slow down instead of records being dropped.
fn retry<E: Display>(
    sink: &str,
    records: usize,
    counters: &Counters,
    mut attempt: impl FnMut() -> Result<(), E>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0_u64;
    loop {
        match attempt() {
            Ok(()) => {
                if failures > 0 {
                    tracing::warn!(
                        sink,
                        records,
                        failures,
                        "audit sink recovered; batch written"
                    );
                }
                return;
            }
            Err(err) => {
                failures += 1;
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    sink,
                    records,
                    error = %err,
                    retry_in_ms = backoff.as_millis() as u64,
                    "audit batch write failed; retrying the same batch"
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
