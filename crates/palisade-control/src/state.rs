//! The control plane's state: `<state_dir>/control.db` (SQLite, WAL) next to the CA.
//!
//! Join tokens are stored as the SHA-256 of their text only; a token is redeemed in the
//! same transaction that records the SVID it paid for, so it can be used once.
//!
//! The CA may change under a running server (`palisade control ca prepare|activate|
//! retire` in another process): [`ControlState::refresh_ca`] notices it and reloads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use palisade_identity::{
    CertificateAuthority, IssuedSvid, RootActivation, RootInfo, RootRole, SignedSvid, SpiffeId,
    CA_CERT_FILE, ROOTS_FILE,
};
use ring::rand::SecureRandom as _;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::certs::{normalize_serial, serial_hex, PeerSvid, VerifiedCsr};
use crate::problem::{Reason, Refusal};
use crate::ControlError;

/// The database file inside the state directory.
pub const CONTROL_DB_FILE: &str = "control.db";
/// Prefix of every join token, so secret scanners can recognise a leaked one.
pub const JOIN_TOKEN_PREFIX: &str = "pjt_";
/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;
/// The path of the control plane's own SPIFFE ID in its trust domain.
pub const CONTROL_ID_PATH: &str = "/palisade/control";

/// Random bytes in a join token (256 bits).
const TOKEN_BYTES: usize = 32;

const SCHEMA_V1: &str = "
CREATE TABLE join_tokens (
    token_sha256 TEXT PRIMARY KEY,   -- hex SHA-256 of the whole token text; the token itself is never stored
    spiffe_id    TEXT NOT NULL,
    created_us   INTEGER NOT NULL,   -- Unix microseconds, UTC
    expires_us   INTEGER NOT NULL,
    used_us      INTEGER             -- NULL until redeemed
);
CREATE TABLE issued_svids (
    serial        TEXT PRIMARY KEY,  -- canonical hex: lower case, two digits per octet, no leading zero octets
    spiffe_id     TEXT NOT NULL,
    not_before_us INTEGER NOT NULL,
    not_after_us  INTEGER NOT NULL,
    issued_us     INTEGER NOT NULL,
    how           TEXT NOT NULL CHECK (how IN ('join', 'renew', 'self'))
);
CREATE INDEX issued_svids_by_id ON issued_svids (spiffe_id);
CREATE TABLE revocations (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('serial', 'spiffe_id')),
    serial       TEXT,               -- set for kind = 'serial'
    spiffe_id    TEXT NOT NULL,      -- the revoked ID, or the ID of the revoked serial
    revoked_us   INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    list_version INTEGER NOT NULL,   -- the revocation list version this entry created
    CHECK ((kind = 'serial') = (serial IS NOT NULL))
);
CREATE UNIQUE INDEX revocations_by_serial ON revocations (serial) WHERE kind = 'serial';
CREATE UNIQUE INDEX revocations_by_id ON revocations (spiffe_id) WHERE kind = 'spiffe_id';
CREATE TABLE revocation_list (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version   INTEGER NOT NULL
);
INSERT INTO revocation_list (singleton, version) VALUES (1, 0);
";

/// Version 2: which root signed each SVID, and which SVID a renewal replaced, so that
/// retiring a root can tell whether an SVID it signed is still in use. Rows of version 1
/// were signed by the one root the CA had (filled in by [`ControlState::open`]).
const SCHEMA_V2: &str = "
ALTER TABLE issued_svids ADD COLUMN root TEXT;          -- SHA-256 fingerprint of the signing root
ALTER TABLE issued_svids ADD COLUMN renewed_from TEXT;  -- serial of the SVID presented to renew
CREATE INDEX issued_svids_by_root ON issued_svids (root, not_after_us);
CREATE INDEX issued_svids_by_parent ON issued_svids (renewed_from);
";

/// How many SPIFFE IDs a [`RootUsage`] names.
const USAGE_IDS: usize = 10;

/// SVIDs a root signed that are still valid and were not renewed: what retiring that root
/// would cut off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootUsage {
    /// How many such SVIDs (neither revoked nor replaced by a renewal).
    pub svids: u64,
    /// Their SPIFFE IDs, sorted, at most ten.
    pub spiffe_ids: Vec<String>,
    /// When the last of them expires.
    pub last_not_after: Option<OffsetDateTime>,
}

/// The CA's roots and, during a rollover, what still depends on the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaStatus {
    /// Every root, oldest first (retired ones included).
    pub roots: Vec<RootInfo>,
    /// For the `previous` root (if any): its SVIDs still in use.
    pub previous_usage: Option<RootUsage>,
}

/// What [`ControlState::retire_root`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredRoot {
    /// The root, now retired.
    pub root: RootInfo,
    /// Its SVIDs that were still in use (non-empty only when forced).
    pub usage: RootUsage,
}

/// The metadata of the files every CA change replaces: size, modification time and (on
/// Unix) inode. A replacement by rename always changes the inode, so no change is missed
/// even within one timestamp tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CaStamp(Vec<Option<(u64, Option<SystemTime>, u64)>>);

impl CaStamp {
    fn of(state_dir: &Path) -> Self {
        let dir = CertificateAuthority::dir(state_dir);
        CaStamp(
            [ROOTS_FILE, CA_CERT_FILE]
                .iter()
                .map(|file| {
                    std::fs::metadata(dir.join(file)).ok().map(|m| {
                        #[cfg(unix)]
                        let inode = std::os::unix::fs::MetadataExt::ino(&m);
                        #[cfg(not(unix))]
                        let inode = 0;
                        (m.len(), m.modified().ok(), inode)
                    })
                })
                .collect(),
        )
    }
}

/// The revoked serials and SPIFFE IDs, with a version that grows with every change.
///
/// Sidecars poll it (`GET /v1/revocations` with `If-None-Match`) and refuse peers for
/// which [`is_revoked`](Self::is_revoked) holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RevocationList {
    /// Incremented by every revocation; 0 for an empty list that never changed.
    pub version: u64,
    /// Revoked certificate serials, canonical hex (see [`serial_hex`]), sorted.
    pub serials: Vec<String>,
    /// Revoked SPIFFE IDs: every SVID naming one is revoked, whenever issued. Sorted.
    pub spiffe_ids: Vec<String>,
}

impl RevocationList {
    /// Whether a certificate with this serial (hex in any common spelling) or naming
    /// this SPIFFE ID is revoked.
    pub fn is_revoked(&self, serial_hex: &str, spiffe_id: &str) -> bool {
        let by_serial = normalize_serial(serial_hex).is_some_and(|serial| {
            self.serials
                .iter()
                .any(|listed| normalize_serial(listed).as_deref() == Some(serial.as_str()))
        });
        by_serial || self.spiffe_ids.iter().any(|id| id == spiffe_id)
    }
}

/// An SVID the control plane signed for a workload's key.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub svid: SignedSvid,
    pub serial: String,
    /// SHA-256 fingerprint of the root that signed it.
    pub root: String,
}

/// The outcome of redeeming a join token: who it was for (when known) and the result.
#[derive(Debug)]
pub(crate) struct JoinOutcome {
    pub caller: Option<SpiffeId>,
    pub result: Result<Issued, Refusal>,
}

/// The control plane's persistent state and its CA.
///
/// Safe to share between threads; every method is a short blocking SQLite transaction
/// (call them from `spawn_blocking` in async code). Several processes may open the same
/// state directory (the server and the CLI creating tokens): writes take SQLite's write
/// lock and wait up to 5 s for it.
pub struct ControlState {
    conn: Mutex<Connection>,
    path: PathBuf,
    state_dir: PathBuf,
    trust_domain: String,
    /// The CA as last loaded; replaced whole by [`refresh_ca`](Self::refresh_ca).
    ca: RwLock<Arc<CertificateAuthority>>,
    /// What the CA directory looked like at that load.
    ca_stamp: Mutex<CaStamp>,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("path", &self.path)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl ControlState {
    /// Opens (creating if needed) `<state_dir>/control.db` and loads the CA from
    /// `<state_dir>/ca/` (create it first with `palisade ca init`).
    ///
    /// The database runs in WAL mode with `synchronous = FULL` (a redeemed token must
    /// stay redeemed across a power cut) and its schema is migrated to
    /// [`SCHEMA_VERSION`]; a file from a newer build is refused.
    pub fn open(state_dir: &Path) -> Result<Self, ControlError> {
        let ca_stamp = CaStamp::of(state_dir);
        let ca = CertificateAuthority::load(state_dir)?;
        std::fs::create_dir_all(state_dir).map_err(|source| ControlError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(CONTROL_DB_FILE);
        let sql = |source| ControlError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(ControlError::SchemaTooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            tx.execute_batch(SCHEMA_V1).map_err(sql)?;
        }
        if version < 2 {
            tx.execute_batch(SCHEMA_V2).map_err(sql)?;
            // Version 1 knew one root: every SVID it recorded was signed by it.
            tx.execute(
                "UPDATE issued_svids SET root = ?1 WHERE root IS NULL",
                [ca.fingerprint()],
            )
            .map_err(sql)?;
        }
        if version < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(ControlState {
            conn: Mutex::new(conn),
            path,
            state_dir: state_dir.to_path_buf(),
            trust_domain: ca.trust_domain().to_owned(),
            ca: RwLock::new(Arc::new(ca)),
            ca_stamp: Mutex::new(ca_stamp),
        })
    }

    /// The trust domain of the CA.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA as last loaded: the active root signs, [`CertificateAuthority::bundle_pem`]
    /// is what peers trust.
    pub fn ca(&self) -> Arc<CertificateAuthority> {
        self.ca
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The trust bundle (every root not retired, the active one first), PEM.
    pub fn bundle_pem(&self) -> String {
        self.ca().bundle_pem().to_owned()
    }

    /// Reloads the CA if its directory changed since the last load (a rollover step
    /// run by another process); returns the new CA, or `None` when nothing changed. Costs
    /// two `stat` calls when nothing changed. A CA that fails to load (or names another
    /// trust domain) is an error, and the one loaded before stays in use.
    pub fn refresh_ca(&self) -> Result<Option<Arc<CertificateAuthority>>, ControlError> {
        let mut stamp = self
            .ca_stamp
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Stamped before loading: a change racing the load is seen again next time.
        let now = CaStamp::of(&self.state_dir);
        if now == *stamp {
            return Ok(None);
        }
        let ca = CertificateAuthority::load(&self.state_dir)?;
        if ca.trust_domain() != self.trust_domain {
            return Err(ControlError::TrustDomainMismatch {
                configured: self.trust_domain.clone(),
                ca: ca.trust_domain().to_owned(),
            });
        }
        let ca = Arc::new(ca);
        *self
            .ca
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = ca.clone();
        *stamp = now;
        Ok(Some(ca))
    }

    /// The CA's roots, and what still depends on the previous root during a rollover.
    pub fn ca_status(&self) -> Result<CaStatus, ControlError> {
        let roots = CertificateAuthority::roots(&self.state_dir)?;
        let previous_usage = match roots.iter().find(|r| r.role == RootRole::Previous) {
            Some(previous) => Some(self.root_usage(&previous.fingerprint)?),
            None => None,
        };
        Ok(CaStatus {
            roots,
            previous_usage,
        })
    }

    /// Rollover step 1: a new root joins the served bundle as `next` and signs nothing
    /// yet. A running control plane serves it at its next request.
    pub fn prepare_root(&self) -> Result<RootInfo, ControlError> {
        self.changing_ca(|_| Ok(CertificateAuthority::prepare_root(&self.state_dir)?))
    }

    /// Rollover step 2: the prepared root signs every SVID from now on (the control
    /// plane's own included); the old root stays in the bundle as `previous`.
    pub fn activate_root(&self) -> Result<RootActivation, ControlError> {
        self.changing_ca(|_| Ok(CertificateAuthority::activate_root(&self.state_dir)?))
    }

    /// Rollover step 3: the previous root leaves the bundle. Refused while SVIDs it signed
    /// are still valid and were neither renewed nor revoked ([`ControlError::RootInUse`]),
    /// unless `force`: retiring it would cut those workloads off until they join again.
    pub fn retire_root(&self, force: bool) -> Result<RetiredRoot, ControlError> {
        self.changing_ca(|conn| {
            let previous = CertificateAuthority::previous_root(&self.state_dir)?
                .ok_or(palisade_identity::IdentityError::NoPreviousRoot)?;
            let usage = root_usage(conn, &previous.fingerprint).map_err(|e| self.sql(e))?;
            if usage.svids > 0 && !force {
                return Err(ControlError::RootInUse {
                    fingerprint: previous.fingerprint,
                    svids: usage.svids,
                    spiffe_ids: usage.spiffe_ids.join(", "),
                    last_not_after: usage
                        .last_not_after
                        .and_then(|t| {
                            t.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .unwrap_or_default(),
                });
            }
            let root = CertificateAuthority::retire_root(&self.state_dir)?;
            Ok(RetiredRoot { root, usage })
        })
    }

    /// Runs a CA change while holding the database's write lock, so two `palisade control
    /// ca` commands (or one and a server signing) never interleave, then reloads the CA.
    fn changing_ca<T>(
        &self,
        change: impl FnOnce(&Connection) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let result = change(&tx);
        // Nothing was written: the transaction only held the lock.
        tx.rollback().map_err(|e| self.sql(e))?;
        drop(conn);
        let done = result?;
        self.refresh_ca()?;
        Ok(done)
    }

    /// The SVIDs `root` (a fingerprint) signed that are still valid, not revoked (by
    /// serial or ID) and not replaced by a renewal. The control plane's own SVIDs do not
    /// count: the server re-issues its own from the new root as soon as it is activated.
    pub fn root_usage(&self, root: &str) -> Result<RootUsage, ControlError> {
        let conn = self.lock()?;
        root_usage(&conn, root).map_err(|e| self.sql(e))
    }

    /// The control plane's own SPIFFE ID: `spiffe://<trust domain>/palisade/control`.
    pub fn control_id(&self) -> Result<SpiffeId, ControlError> {
        SpiffeId::new(&self.trust_domain, CONTROL_ID_PATH).map_err(|e| ControlError::Corrupt {
            path: self.path.clone(),
            detail: format!("the CA's trust domain makes no valid control plane ID: {e}"),
        })
    }

    /// A one-time join token for `spiffe_id`, valid for `ttl` (the CLI's default is 10
    /// minutes). Returns the token text: `pjt_` followed by 32 random bytes in base64url.
    /// Only its SHA-256 is stored, so the text cannot be recovered from the state.
    ///
    /// Refused for an ID outside the CA's trust domain or without a workload path, for
    /// a revoked ID, and for the control plane's own ID.
    pub fn create_join_token(
        &self,
        spiffe_id: &SpiffeId,
        ttl: Duration,
    ) -> Result<String, ControlError> {
        if ttl.is_zero() {
            return Err(ControlError::InvalidTtl);
        }
        self.check_issuable(spiffe_id)?;
        let mut random = [0u8; TOKEN_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| ControlError::Random)?;
        let token = format!(
            "{JOIN_TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let now = OffsetDateTime::now_utc();
        let expires = now + ttl;
        let conn = self.lock()?;
        if is_id_revoked(&conn, spiffe_id).map_err(|e| self.sql(e))? {
            return Err(ControlError::Revoked {
                id: spiffe_id.to_string(),
            });
        }
        conn.execute(
            "INSERT INTO join_tokens (token_sha256, spiffe_id, created_us, expires_us) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash(&token), spiffe_id.as_str(), micros(now), micros(expires)],
        )
        .map_err(|e| self.sql(e))?;
        Ok(token)
    }

    /// Revokes every SVID naming `id`, past and future. Returns the revocation list
    /// version after the change; revoking an ID already revoked changes nothing and
    /// returns the current version.
    pub fn revoke_spiffe_id(&self, id: &SpiffeId, reason: &str) -> Result<u64, ControlError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        if is_id_revoked(&tx, id).map_err(|e| self.sql(e))? {
            return list_version(&tx).map_err(|e| self.sql(e));
        }
        let version = bump_version(&tx).map_err(|e| self.sql(e))?;
        tx.execute(
            "INSERT INTO revocations (kind, spiffe_id, revoked_us, reason, list_version) VALUES ('spiffe_id', ?1, ?2, ?3, ?4)",
            params![id.as_str(), micros(OffsetDateTime::now_utc()), reason, version as i64],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(version)
    }

    /// Revokes the SVID with this serial (hex, any case, `:` separators allowed).
    /// Returns the revocation list version after the change (unchanged if it was already
    /// revoked). An error if this control plane never issued the serial.
    pub fn revoke_serial(&self, serial_hex: &str, reason: &str) -> Result<u64, ControlError> {
        let serial = normalize_serial(serial_hex).ok_or_else(|| ControlError::InvalidSerial {
            serial: serial_hex.to_owned(),
        })?;
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let spiffe_id: Option<String> = tx
            .query_row(
                "SELECT spiffe_id FROM issued_svids WHERE serial = ?1",
                [&serial],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some(spiffe_id) = spiffe_id else {
            return Err(ControlError::UnknownSerial { serial });
        };
        let already: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 'serial' AND serial = ?1)",
                [&serial],
                |row| row.get(0),
            )
            .map_err(|e| self.sql(e))?;
        if already {
            return list_version(&tx).map_err(|e| self.sql(e));
        }
        let version = bump_version(&tx).map_err(|e| self.sql(e))?;
        tx.execute(
            "INSERT INTO revocations (kind, serial, spiffe_id, revoked_us, reason, list_version) VALUES ('serial', ?1, ?2, ?3, ?4, ?5)",
            params![serial, spiffe_id, micros(OffsetDateTime::now_utc()), reason, version as i64],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(version)
    }

    /// The current revocation list.
    pub fn revocations(&self) -> Result<RevocationList, ControlError> {
        let mut conn = self.lock()?;
        // One read transaction, so the version and the entries agree.
        let tx = conn.transaction().map_err(|e| self.sql(e))?;
        let version = list_version(&tx).map_err(|e| self.sql(e))?;
        let column = |sql: &str| -> Result<Vec<String>, rusqlite::Error> {
            let mut stmt = tx.prepare(sql)?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
            rows.collect()
        };
        let serials = column(
            "SELECT serial FROM revocations WHERE kind = 'serial' ORDER BY serial COLLATE BINARY",
        )
        .map_err(|e| self.sql(e))?;
        let spiffe_ids = column(
            "SELECT spiffe_id FROM revocations WHERE kind = 'spiffe_id' ORDER BY spiffe_id COLLATE BINARY",
        )
        .map_err(|e| self.sql(e))?;
        Ok(RevocationList {
            version,
            serials,
            spiffe_ids,
        })
    }

    /// Redeems `token` for an SVID certifying the CSR's key.
    ///
    /// Checked in this order, in one write transaction: the token exists, is unused and
    /// unexpired; the CSR is valid; it names exactly the token's SPIFFE ID; that ID is
    /// not revoked. Then the SVID is signed, recorded, and the token marked used before
    /// the transaction commits: of two concurrent redemptions exactly one succeeds. A
    /// refused CSR does not use the token up (the workload may retry with a correct one).
    pub(crate) fn join(
        &self,
        token: &str,
        csr: Result<VerifiedCsr, String>,
        ttl: Duration,
    ) -> JoinOutcome {
        let mut caller = None;
        let result = self.join_inner(token, csr, ttl, &mut caller);
        JoinOutcome { caller, result }
    }

    fn join_inner(
        &self,
        token: &str,
        csr: Result<VerifiedCsr, String>,
        ttl: Duration,
        caller: &mut Option<SpiffeId>,
    ) -> Result<Issued, Refusal> {
        let hash = token_hash(token);
        let mut conn = self.lock().map_err(internal)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| internal(self.sql(e)))?;
        let row: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT spiffe_id, expires_us, used_us FROM join_tokens WHERE token_sha256 = ?1",
                [&hash],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(|e| internal(self.sql(e)))?;
        let Some((id_text, expires_us, used_us)) = row else {
            return Err(Refusal::new(
                Reason::UnknownToken,
                "the join token is not known to this control plane",
            ));
        };
        let id = self.stored_id(&id_text).map_err(internal)?;
        *caller = Some(id.clone());
        if used_us.is_some() {
            return Err(Refusal::new(
                Reason::TokenUsed,
                format!("the join token for {id} has already been used; create a new one"),
            ));
        }
        if expires_us <= micros(OffsetDateTime::now_utc()) {
            return Err(Refusal::new(
                Reason::TokenExpired,
                format!("the join token for {id} has expired; create a new one"),
            ));
        }
        let csr = csr.map_err(|detail| Refusal::new(Reason::InvalidCsr, detail))?;
        csr.check_identity(&id)
            .map_err(|detail| Refusal::new(Reason::IdentityMismatch, detail))?;
        if is_id_revoked(&tx, &id).map_err(|e| internal(self.sql(e)))? {
            return Err(Refusal::new(Reason::Revoked, format!("{id} is revoked")));
        }
        let issued = self.sign(&id, &csr, ttl)?;
        record_issued(&tx, &issued, "join", None).map_err(|e| internal(self.sql(e)))?;
        let marked = tx
            .execute(
                "UPDATE join_tokens SET used_us = ?1 WHERE token_sha256 = ?2 AND used_us IS NULL",
                params![micros(OffsetDateTime::now_utc()), hash],
            )
            .map_err(|e| internal(self.sql(e)))?;
        if marked != 1 {
            // Cannot happen inside the write transaction; refuse rather than issue twice.
            return Err(Refusal::new(
                Reason::TokenUsed,
                format!("the join token for {id} has already been used; create a new one"),
            ));
        }
        tx.commit().map_err(|e| internal(self.sql(e)))?;
        Ok(issued)
    }

    /// Issues a new SVID for the identity of `peer` (a verified, unexpired client SVID)
    /// certifying the CSR's key. Refused if the peer's serial or ID is revoked, or if the
    /// CSR names any other identity. The revocation check and the issuance share one
    /// write transaction, so a concurrent revocation is either seen or comes after.
    pub(crate) fn renew(
        &self,
        peer: &PeerSvid,
        csr: Result<VerifiedCsr, String>,
        ttl: Duration,
    ) -> Result<Issued, Refusal> {
        let mut conn = self.lock().map_err(internal)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| internal(self.sql(e)))?;
        let serial_revoked: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 'serial' AND serial = ?1)",
                [&peer.serial],
                |row| row.get(0),
            )
            .map_err(|e| internal(self.sql(e)))?;
        if serial_revoked {
            return Err(Refusal::new(
                Reason::Revoked,
                format!("the presented SVID (serial {}) is revoked", peer.serial),
            ));
        }
        if is_id_revoked(&tx, &peer.spiffe_id).map_err(|e| internal(self.sql(e)))? {
            return Err(Refusal::new(
                Reason::Revoked,
                format!("{} is revoked", peer.spiffe_id),
            ));
        }
        let csr = csr.map_err(|detail| Refusal::new(Reason::InvalidCsr, detail))?;
        csr.check_identity(&peer.spiffe_id)
            .map_err(|detail| Refusal::new(Reason::IdentityMismatch, detail))?;
        let issued = self.sign(&peer.spiffe_id, &csr, ttl)?;
        record_issued(&tx, &issued, "renew", Some(&peer.serial))
            .map_err(|e| internal(self.sql(e)))?;
        tx.commit().map_err(|e| internal(self.sql(e)))?;
        Ok(issued)
    }

    /// Issues the control plane's own SVID (key generated here, kept in memory by the
    /// server) and records it with `how = 'self'`.
    pub(crate) fn issue_own(&self, ttl: Duration) -> Result<(IssuedSvid, String), ControlError> {
        let id = self.control_id()?;
        let ca = self.ca();
        let svid = ca.issue(&id, ttl)?;
        let der = first_cert_der(&svid.cert_pem).ok_or_else(|| ControlError::Corrupt {
            path: self.path.clone(),
            detail: "the CA produced an unreadable certificate".into(),
        })?;
        let serial = serial_hex(&der).ok_or_else(|| ControlError::Corrupt {
            path: self.path.clone(),
            detail: "the CA produced a certificate without a readable serial".into(),
        })?;
        let now = OffsetDateTime::now_utc();
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO issued_svids (serial, spiffe_id, not_before_us, not_after_us, issued_us, how, root) VALUES (?1, ?2, ?3, ?4, ?5, 'self', ?6)",
            params![serial, id.as_str(), micros(now), micros(svid.not_after), micros(now), ca.fingerprint()],
        )
        .map_err(|e| self.sql(e))?;
        Ok((svid, serial))
    }

    fn sign(&self, id: &SpiffeId, csr: &VerifiedCsr, ttl: Duration) -> Result<Issued, Refusal> {
        let ca = self.ca();
        let svid = ca
            .sign_public_key(id, &csr.spki_der, ttl)
            .map_err(|e| match e {
                palisade_identity::IdentityError::UnsupportedPublicKey(_) => {
                    Refusal::new(Reason::InvalidCsr, e.to_string())
                }
                other => internal(other.into()),
            })?;
        let serial = first_cert_der(&svid.cert_pem)
            .and_then(|der| serial_hex(&der))
            .ok_or_else(|| {
                internal(ControlError::Corrupt {
                    path: self.path.clone(),
                    detail: "the CA produced a certificate without a readable serial".into(),
                })
            })?;
        Ok(Issued {
            svid,
            serial,
            root: ca.fingerprint().to_owned(),
        })
    }

    fn check_issuable(&self, id: &SpiffeId) -> Result<(), ControlError> {
        if id.trust_domain() != self.trust_domain {
            return Err(palisade_identity::IdentityError::ForeignTrustDomain {
                id: id.to_string(),
                ca_trust_domain: self.trust_domain.clone(),
            }
            .into());
        }
        if id.path().is_empty() {
            return Err(
                palisade_identity::IdentityError::NoWorkloadPath { id: id.to_string() }.into(),
            );
        }
        if *id == self.control_id()? {
            return Err(ControlError::ReservedIdentity { id: id.to_string() });
        }
        Ok(())
    }

    fn stored_id(&self, text: &str) -> Result<SpiffeId, ControlError> {
        text.parse().map_err(|e| ControlError::Corrupt {
            path: self.path.clone(),
            detail: format!("stored SPIFFE ID {text:?} is invalid: {e}"),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, ControlError> {
        // A panic while holding the lock leaves no transaction open (rusqlite rolls back
        // on drop), so the connection is still consistent.
        Ok(self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn sql(&self, source: rusqlite::Error) -> ControlError {
        ControlError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// A refusal for a failure of the control plane itself: logged in full, shown generic.
fn internal(error: ControlError) -> Refusal {
    tracing::error!(error = %error, "control plane state failure");
    Refusal::new(
        Reason::Internal,
        "the control plane could not complete the request; see its log",
    )
}

/// Hex SHA-256 of a join token's text: the form tokens are stored and looked up in. The
/// tokens carry 256 random bits, so a plain hash (no salt, no KDF) is enough.
fn token_hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn micros(ts: OffsetDateTime) -> i64 {
    // OffsetDateTime spans about ±3.2e17 µs around the epoch, well inside i64.
    ts.unix_timestamp_nanos().div_euclid(1_000) as i64
}

fn from_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()
}

fn first_cert_der(pem: &str) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()?
        .ok()
        .map(|der| der.as_ref().to_vec())
}

/// See [`ControlState::root_usage`].
fn root_usage(conn: &Connection, root: &str) -> Result<RootUsage, rusqlite::Error> {
    const IN_USE: &str = "
        FROM issued_svids s
        WHERE s.root = ?1 AND s.how != 'self' AND s.not_after_us > ?2
          AND NOT EXISTS (SELECT 1 FROM issued_svids n WHERE n.renewed_from = s.serial)
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'serial' AND r.serial = s.serial)
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'spiffe_id' AND r.spiffe_id = s.spiffe_id)";
    let now = micros(OffsetDateTime::now_utc());
    let (svids, last): (i64, Option<i64>) = conn.query_row(
        &format!("SELECT COUNT(*), MAX(s.not_after_us) {IN_USE}"),
        params![root, now],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT s.spiffe_id {IN_USE} ORDER BY s.spiffe_id LIMIT {USAGE_IDS}"
    ))?;
    let spiffe_ids = stmt
        .query_map(params![root, now], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RootUsage {
        svids: u64::try_from(svids).unwrap_or(0),
        spiffe_ids,
        last_not_after: last.and_then(from_micros),
    })
}

fn is_id_revoked(conn: &Connection, id: &SpiffeId) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM revocations WHERE kind = 'spiffe_id' AND spiffe_id = ?1)",
        [id.as_str()],
        |row| row.get(0),
    )
}

fn list_version(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let version: i64 = conn.query_row(
        "SELECT version FROM revocation_list WHERE singleton = 1",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(version).unwrap_or(0))
}

fn bump_version(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let version: i64 = conn.query_row(
        "UPDATE revocation_list SET version = version + 1 WHERE singleton = 1 RETURNING version",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(version).unwrap_or(0))
}

fn record_issued(
    conn: &Connection,
    issued: &Issued,
    how: &str,
    renewed_from: Option<&str>,
) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO issued_svids (serial, spiffe_id, not_before_us, not_after_us, issued_us, how, root, renewed_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            issued.serial,
            issued.svid.spiffe_id.as_str(),
            micros(issued.svid.not_before),
            micros(issued.svid.not_after),
            micros(OffsetDateTime::now_utc()),
            how,
            issued.root,
            renewed_from
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn state() -> (tempfile::TempDir, ControlState) {
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
        let state = ControlState::open(dir.path()).unwrap();
        (dir, state)
    }

    fn id(text: &str) -> SpiffeId {
        text.parse().unwrap()
    }

    #[test]
    fn join_tokens_are_prefixed_random_and_stored_only_as_hashes() {
        let (dir, state) = state();
        let billing = id("spiffe://example.org/ns/prod/sa/billing");
        let a = state
            .create_join_token(&billing, Duration::from_secs(600))
            .unwrap();
        let b = state
            .create_join_token(&billing, Duration::from_secs(600))
            .unwrap();
        assert!(a.starts_with(JOIN_TOKEN_PREFIX));
        assert_eq!(a.len(), JOIN_TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b);
        drop(state);
        let db = std::fs::read(dir.path().join(CONTROL_DB_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join("control.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&a[4..]), "token text found in the state");
        }
    }

    #[test]
    fn refuses_tokens_for_foreign_revoked_or_reserved_ids_and_zero_ttl() {
        let (_dir, state) = state();
        let ttl = Duration::from_secs(60);
        assert!(matches!(
            state.create_join_token(&id("spiffe://other.org/ns/a/sa/b"), ttl),
            Err(ControlError::Identity(_))
        ));
        assert!(matches!(
            state.create_join_token(&id("spiffe://example.org/palisade/control"), ttl),
            Err(ControlError::ReservedIdentity { .. })
        ));
        let gone = id("spiffe://example.org/ns/a/sa/gone");
        state.revoke_spiffe_id(&gone, "decommissioned").unwrap();
        assert!(matches!(
            state.create_join_token(&gone, ttl),
            Err(ControlError::Revoked { .. })
        ));
        assert!(matches!(
            state.create_join_token(&id("spiffe://example.org/ns/a/sa/b"), Duration::ZERO),
            Err(ControlError::InvalidTtl)
        ));
    }

    #[test]
    fn revoking_an_unknown_or_malformed_serial_is_an_error() {
        let (_dir, state) = state();
        assert!(matches!(
            state.revoke_serial("abcdef", "test"),
            Err(ControlError::UnknownSerial { .. })
        ));
        assert!(matches!(
            state.revoke_serial("not-hex", "test"),
            Err(ControlError::InvalidSerial { .. })
        ));
        assert_eq!(state.revocations().unwrap().version, 0);
    }

    #[test]
    fn revoking_twice_does_not_change_the_list_version() {
        let (_dir, state) = state();
        let gone = id("spiffe://example.org/ns/a/sa/gone");
        assert_eq!(state.revoke_spiffe_id(&gone, "first").unwrap(), 1);
        assert_eq!(state.revoke_spiffe_id(&gone, "again").unwrap(), 1);
        let (_, serial) = state.issue_own(Duration::from_secs(60)).unwrap();
        assert_eq!(
            state
                .revoke_serial(&serial.to_uppercase(), "key leaked")
                .unwrap(),
            2
        );
        assert_eq!(state.revoke_serial(&serial, "again").unwrap(), 2);
        let list = state.revocations().unwrap();
        assert_eq!(list.version, 2);
        assert_eq!(list.serials, vec![serial]);
        assert_eq!(list.spiffe_ids, vec![gone.to_string()]);
    }

    #[test]
    fn reopening_keeps_the_state_and_refuses_a_newer_schema() {
        let (dir, state) = state();
        state
            .revoke_spiffe_id(&id("spiffe://example.org/ns/a/sa/gone"), "x")
            .unwrap();
        drop(state);
        let state = ControlState::open(dir.path()).unwrap();
        assert_eq!(state.revocations().unwrap().version, 1);
        drop(state);
        let conn = Connection::open(dir.path().join(CONTROL_DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(matches!(
            ControlState::open(dir.path()),
            Err(ControlError::SchemaTooNew { .. })
        ));
    }

    fn csr_for(id: &SpiffeId) -> VerifiedCsr {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(id.as_str().try_into().unwrap())];
        crate::certs::parse_csr(&params.serialize_request(&key).unwrap().pem().unwrap()).unwrap()
    }

    #[test]
    fn a_token_redeemed_through_two_connections_at_once_issues_one_svid() {
        // Two ControlStates on one directory: two SQLite connections, as with two
        // control plane processes sharing a state directory.
        let (dir, first) = state();
        let second = ControlState::open(dir.path()).unwrap();
        let billing = id("spiffe://example.org/ns/prod/sa/billing");
        let token = first
            .create_join_token(&billing, Duration::from_secs(600))
            .unwrap();
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<JoinOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&first, &second]
                .into_iter()
                .map(|state| {
                    let (barrier, token, csr) = (&barrier, &token, csr_for(&billing));
                    scope.spawn(move || {
                        barrier.wait();
                        state.join(token, Ok(csr), Duration::from_secs(600))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let issued = outcomes.iter().filter(|o| o.result.is_ok()).count();
        assert_eq!(issued, 1);
        let refused: Vec<_> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err())
            .collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].reason, Reason::TokenUsed);
        assert!(outcomes.iter().all(|o| o.caller.as_ref() == Some(&billing)));
    }

    #[test]
    fn a_version_1_database_is_migrated_and_its_svids_attributed_to_the_one_root() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
        let conn = Connection::open(dir.path().join(CONTROL_DB_FILE)).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let later = micros(OffsetDateTime::now_utc() + time::Duration::hours(1));
        conn.execute(
            "INSERT INTO issued_svids (serial, spiffe_id, not_before_us, not_after_us, issued_us, how) VALUES ('0a', 'spiffe://example.org/ns/a/sa/b', 0, ?1, 0, 'join')",
            [later],
        )
        .unwrap();
        drop(conn);

        let state = ControlState::open(dir.path()).unwrap();
        let usage = state.root_usage(ca.fingerprint()).unwrap();
        assert_eq!(usage.svids, 1);
        assert_eq!(usage.spiffe_ids, ["spiffe://example.org/ns/a/sa/b"]);
        let version: i64 = state
            .lock()
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_renewed_or_revoked_svid_no_longer_counts_as_using_its_root() {
        let (_dir, state) = state();
        let root = state.ca().fingerprint().to_owned();
        let billing = id("spiffe://example.org/ns/prod/sa/billing");
        let token = state
            .create_join_token(&billing, Duration::from_secs(60))
            .unwrap();
        let joined = state
            .join(&token, Ok(csr_for(&billing)), Duration::from_secs(600))
            .result
            .unwrap();
        assert_eq!(joined.root, root);
        assert_eq!(state.root_usage(&root).unwrap().svids, 1);
        let peer = PeerSvid {
            spiffe_id: billing.clone(),
            serial: joined.serial.clone(),
            not_after: joined.svid.not_after,
        };
        let renewed = state
            .renew(&peer, Ok(csr_for(&billing)), Duration::from_secs(600))
            .unwrap();
        let usage = state.root_usage(&root).unwrap();
        assert_eq!(usage.svids, 1, "only the renewed SVID is in use");
        state.revoke_serial(&renewed.serial, "test").unwrap();
        assert_eq!(state.root_usage(&root).unwrap(), RootUsage::default());
        // The control plane's own SVIDs never count: it re-issues its own on activation.
        state.issue_own(Duration::from_secs(600)).unwrap();
        assert_eq!(state.root_usage(&root).unwrap().svids, 0);
    }

    #[test]
    fn refresh_reloads_the_ca_only_when_its_directory_changed() {
        let (dir, state) = state();
        assert!(state.refresh_ca().unwrap().is_none());
        let other = ControlState::open(dir.path()).unwrap();
        let next = other.prepare_root().unwrap();
        let reloaded = state
            .refresh_ca()
            .unwrap()
            .expect("the prepared root is seen");
        assert!(reloaded.bundle_pem().len() > state.ca().root_pem().len());
        assert!(state.refresh_ca().unwrap().is_none());
        other.activate_root().unwrap();
        state.refresh_ca().unwrap().unwrap();
        assert_eq!(state.ca().fingerprint(), next.fingerprint);
    }

    #[test]
    fn is_revoked_matches_serials_in_any_spelling_and_ids_exactly() {
        let list = RevocationList {
            version: 3,
            serials: vec!["1a2b".into(), "ff".into()],
            spiffe_ids: vec!["spiffe://example.org/ns/a/sa/gone".into()],
        };
        assert!(list.is_revoked("00:1A:2B", "spiffe://example.org/ns/a/sa/other"));
        assert!(list.is_revoked("ff", "spiffe://example.org/ns/a/sa/other"));
        assert!(list.is_revoked("01", "spiffe://example.org/ns/a/sa/gone"));
        assert!(!list.is_revoked("01", "spiffe://example.org/ns/a/sa/gone/child"));
        assert!(!list.is_revoked("not hex", "spiffe://example.org/ns/a/sa/other"));
    }
}
