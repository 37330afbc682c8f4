//! CA rollover: the CA directory with more than one root.
//!
//! A root is replaced in three steps, so that SVIDs of the old and the new root are both
//! trusted while workloads move from one to the other:
//!
//! 1. **prepare**: a new root is generated and added to the bundle as `next`; it signs
//!    nothing yet. Every workload must fetch this bundle before the next step.
//! 2. **activate**: the `next` root becomes `active` (it signs from now on); the old one
//!    stays in the bundle as `previous`, so SVIDs it signed stay valid until renewed.
//! 3. **retire**: the `previous` root leaves the bundle. Its files move to `retired/`.
//!
//! Layout of `<state>/ca/` once a rollover has started:
//!
//! ```text
//! roots.json              which root has which role (replaced atomically: the commit point)
//! root-<fp16>.pem / .key  one file pair per root in the bundle (key 0600), never rewritten
//! retired/root-<fp16>.*   retired roots, kept
//! ca.pem                  the bundle, active root first (compatibility; not read back)
//! ```
//!
//! Before the first rollover the directory holds `ca.pem` and `ca.key` only. The first
//! `prepare` moves that root to `root-<fp16>.*`. Every step writes new files first and
//! commits by replacing `roots.json`, so a crash leaves either the old or the new state.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{
    ca_trust_domain, fingerprint, new_root, write_atomic, write_private, write_public,
    CA_CERT_FILE, CA_KEY_FILE,
};
use crate::svid::{read_certs, read_file};
use crate::{CertificateAuthority, IdentityError};

/// The manifest of the roots, inside `<state>/ca/`.
pub const ROOTS_FILE: &str = "roots.json";
/// Where retired roots are kept, inside `<state>/ca/`.
pub const RETIRED_DIR: &str = "retired";
/// The manifest format this build writes.
const MANIFEST_VERSION: u32 = 1;

/// The part a root plays in the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RootRole {
    /// Prepared: in the bundle, signs nothing yet.
    Next,
    /// Signs every SVID; in the bundle.
    Active,
    /// Signed until the last activation; in the bundle until retired.
    Previous,
    /// Out of the bundle; its files are kept in `retired/`.
    Retired,
}

impl RootRole {
    /// The role's name as `palisade control ca status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            RootRole::Next => "next",
            RootRole::Active => "active",
            RootRole::Previous => "previous",
            RootRole::Retired => "retired",
        }
    }

    /// Whether peers trust SVIDs chaining to a root in this role.
    pub fn in_bundle(self) -> bool {
        !matches!(self, RootRole::Retired)
    }
}

impl std::fmt::Display for RootRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One root of the CA, as `palisade control ca status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootInfo {
    /// Its role.
    pub role: RootRole,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// The subject's common name.
    pub subject: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// When it was added to the CA (for the root of `ca init`: its start of validity).
    pub added: OffsetDateTime,
    /// When it started signing, if it did.
    pub activated: Option<OffsetDateTime>,
    /// When it left the bundle, if it did.
    pub retired: Option<OffsetDateTime>,
}

/// What `activate` did: the root that signs now and the one that signed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootActivation {
    /// The new signer (was `next`).
    pub active: RootInfo,
    /// The old signer, still in the bundle (now `previous`).
    pub previous: RootInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    version: u32,
    roots: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// File stem: `root-<first 16 hex digits of the fingerprint>`.
    name: String,
    role: RootRole,
    /// Unix seconds.
    added: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<i64>,
}

impl Manifest {
    fn find(&self, role: RootRole) -> Option<&Entry> {
        self.roots.iter().find(|e| e.role == role)
    }

    fn find_mut(&mut self, role: RootRole) -> Option<&mut Entry> {
        self.roots.iter_mut().find(|e| e.role == role)
    }

    /// The rules a manifest keeps: one active root, at most one next and one previous,
    /// plain file stems.
    fn check(&self, path: &Path) -> Result<(), IdentityError> {
        let bad = |detail: String| IdentityError::BadRootsFile {
            path: path.to_path_buf(),
            detail,
        };
        if self.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "version {} is not one this build reads ({MANIFEST_VERSION})",
                self.version
            )));
        }
        for (role, most) in [
            (RootRole::Active, 1),
            (RootRole::Next, 1),
            (RootRole::Previous, 1),
        ] {
            let count = self.roots.iter().filter(|e| e.role == role).count();
            if count > most || (role == RootRole::Active && count == 0) {
                return Err(bad(format!("{count} roots are {role}")));
            }
        }
        if let Some(entry) = self.roots.iter().find(|e| {
            e.name.is_empty()
                || !e
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            return Err(bad(format!("{:?} is not a root file name", entry.name)));
        }
        Ok(())
    }
}

/// The bundle as [`CertificateAuthority::load`] needs it.
pub(crate) struct Bundle {
    pub active_cert: PathBuf,
    pub active_key: PathBuf,
    pub bundle_pem: String,
    pub retired_pem: String,
}

/// The manifest of `dir`, or `None` while the CA has never been rolled over.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Manifest>, IdentityError> {
    let path = dir.join(ROOTS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Io { path, source }),
    };
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| IdentityError::BadRootsFile {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    manifest.check(&path)?;
    Ok(Some(manifest))
}

/// The active root's files and the bundle of a rolled-over CA.
pub(crate) fn bundle_of(dir: &Path, manifest: &Manifest) -> Result<Bundle, IdentityError> {
    let active = manifest
        .find(RootRole::Active)
        .ok_or_else(|| IdentityError::BadRootsFile {
            path: dir.join(ROOTS_FILE),
            detail: "no active root".into(),
        })?;
    let (active_cert, active_key) = files(dir, active);
    let bundle_pem = bundle_text(dir, manifest)?;
    let mut retired_pem = String::new();
    for entry in manifest
        .roots
        .iter()
        .filter(|e| e.role == RootRole::Retired)
    {
        // A retired root only names refusals; one whose file went missing is not needed.
        match read_root_pem(&files(dir, entry).0) {
            Ok(pem) => retired_pem.push_str(&pem),
            Err(e) => tracing::warn!(root = %entry.name, error = %e, "retired root unreadable"),
        }
    }
    Ok(Bundle {
        active_cert,
        active_key,
        bundle_pem,
        retired_pem,
    })
}

/// The bundle PEM: active first, then next, then previous.
fn bundle_text(dir: &Path, manifest: &Manifest) -> Result<String, IdentityError> {
    let mut pem = String::new();
    for role in [RootRole::Active, RootRole::Next, RootRole::Previous] {
        if let Some(entry) = manifest.find(role) {
            pem.push_str(&read_root_pem(&files(dir, entry).0)?);
        }
    }
    Ok(pem)
}

/// A root's certificate PEM, ending with a newline.
fn read_root_pem(path: &Path) -> Result<String, IdentityError> {
    let mut pem = String::from_utf8_lossy(&read_file(path)?).into_owned();
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    Ok(pem)
}

/// Certificate and key file of a manifest entry. Retired roots live in `retired/`, unless
/// a crash came between the manifest commit and the move.
fn files(dir: &Path, entry: &Entry) -> (PathBuf, PathBuf) {
    let retired = dir.join(RETIRED_DIR);
    let base = if entry.role == RootRole::Retired
        && retired.join(format!("{}.pem", entry.name)).exists()
    {
        retired
    } else {
        dir.to_path_buf()
    };
    (
        base.join(format!("{}.pem", entry.name)),
        base.join(format!("{}.key", entry.name)),
    )
}

/// The file stem of a root with this fingerprint.
fn stem(fingerprint: &str) -> String {
    format!("root-{}", &fingerprint[..16.min(fingerprint.len())])
}

fn unix(ts: OffsetDateTime) -> i64 {
    ts.unix_timestamp()
}

fn from_unix(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// What the certificate at `path` says about itself.
fn describe(
    path: &Path,
    role: RootRole,
    added: Option<OffsetDateTime>,
    activated: Option<OffsetDateTime>,
    retired: Option<OffsetDateTime>,
) -> Result<RootInfo, IdentityError> {
    let der = read_certs(path)?.remove(0);
    let (_, x509) =
        X509Certificate::from_der(der.as_ref()).map_err(|e| IdentityError::BadRootsFile {
            path: path.to_path_buf(),
            detail: format!("not a certificate: {e}"),
        })?;
    let subject = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let not_before = x509.validity().not_before.to_datetime();
    Ok(RootInfo {
        role,
        fingerprint: fingerprint(der.as_ref()),
        subject,
        not_before,
        not_after: x509.validity().not_after.to_datetime(),
        cert_path: path.to_path_buf(),
        added: added.unwrap_or(not_before),
        activated,
        retired,
    })
}

fn info(dir: &Path, entry: &Entry) -> Result<RootInfo, IdentityError> {
    describe(
        &files(dir, entry).0,
        entry.role,
        Some(from_unix(entry.added)),
        entry.activated.map(from_unix),
        entry.retired.map(from_unix),
    )
}

/// Every root of the CA in `state_dir`, in the order they were added (retired ones
/// included).
pub(crate) fn roots(state_dir: &Path) -> Result<Vec<RootInfo>, IdentityError> {
    let dir = CertificateAuthority::dir(state_dir);
    match read_manifest(&dir)? {
        Some(manifest) => manifest.roots.iter().map(|e| info(&dir, e)).collect(),
        None => {
            let cert = dir.join(CA_CERT_FILE);
            if !cert.exists() {
                return Err(IdentityError::CaMissing { path: cert });
            }
            let root = describe(&cert, RootRole::Active, None, None, None)?;
            Ok(vec![RootInfo {
                activated: Some(root.not_before),
                ..root
            }])
        }
    }
}

/// The manifest of a CA directory, converting a one-root CA (`ca.pem` + `ca.key`) to one.
/// The conversion writes the root's `root-<fp>` files; the caller removes `ca.key` after
/// committing (it returns `true` then).
fn manifest_or_convert(dir: &Path) -> Result<(Manifest, bool), IdentityError> {
    if let Some(manifest) = read_manifest(dir)? {
        return Ok((manifest, false));
    }
    let cert_path = dir.join(CA_CERT_FILE);
    if !cert_path.exists() {
        return Err(IdentityError::CaMissing { path: cert_path });
    }
    let pem = String::from_utf8_lossy(&read_file(&cert_path)?).into_owned();
    let first = first_pem_block(&pem).ok_or_else(|| IdentityError::EmptyPem {
        path: cert_path.clone(),
    })?;
    let der = read_certs(&cert_path)?.remove(0);
    let name = stem(&fingerprint(der.as_ref()));
    let key_pem = String::from_utf8_lossy(&read_file(&dir.join(CA_KEY_FILE))?).into_owned();
    write_private(&dir.join(format!("{name}.key")), &key_pem)?;
    write_public(&dir.join(format!("{name}.pem")), &first)?;
    let since = describe(&cert_path, RootRole::Active, None, None, None)?.not_before;
    Ok((
        Manifest {
            version: MANIFEST_VERSION,
            roots: vec![Entry {
                name,
                role: RootRole::Active,
                added: unix(since),
                activated: Some(unix(since)),
                retired: None,
            }],
        },
        true,
    ))
}

/// The first `CERTIFICATE` PEM block of a text, with a final newline.
fn first_pem_block(pem: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)?;
    let end = start + pem[start..].find(END)? + END.len();
    Some(format!("{}\n", &pem[start..end]))
}

/// Commits a manifest, then refreshes `ca.pem` (the bundle, for readers of the one-root
/// layout) and tidies retired files. The manifest replacement is the commit point.
fn commit(dir: &Path, manifest: &Manifest, converted: bool) -> Result<(), IdentityError> {
    let text = serde_json::to_string_pretty(manifest).map_err(|e| IdentityError::BadRootsFile {
        path: dir.join(ROOTS_FILE),
        detail: e.to_string(),
    })?;
    write_atomic(&dir.join(ROOTS_FILE), &format!("{text}\n"), false)?;
    if converted {
        // The key now lives in root-<fp>.key (written before the commit): this name is a
        // duplicate, and keeping it would pair the old key with a changing ca.pem.
        let key = dir.join(CA_KEY_FILE);
        fs::remove_file(&key).map_err(|source| IdentityError::Io { path: key, source })?;
    }
    tidy_retired(dir, manifest)?;
    write_atomic(&dir.join(CA_CERT_FILE), &bundle_text(dir, manifest)?, false)
}

/// Moves the files of retired roots into `retired/` (mode 0700: it holds keys).
fn tidy_retired(dir: &Path, manifest: &Manifest) -> Result<(), IdentityError> {
    let retired_dir = dir.join(RETIRED_DIR);
    for entry in manifest
        .roots
        .iter()
        .filter(|e| e.role == RootRole::Retired)
    {
        for ext in ["pem", "key"] {
            let from = dir.join(format!("{}.{ext}", entry.name));
            if !from.exists() {
                continue;
            }
            create_private_dir(&retired_dir)?;
            let to = retired_dir.join(format!("{}.{ext}", entry.name));
            fs::rename(&from, &to).map_err(|source| IdentityError::Io { path: from, source })?;
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Step 1: a new root, in the bundle as `next`, signing nothing.
pub(crate) fn prepare(state_dir: &Path) -> Result<RootInfo, IdentityError> {
    let dir = CertificateAuthority::dir(state_dir);
    let (mut manifest, converted) = manifest_or_convert(&dir)?;
    if let Some(next) = manifest.find(RootRole::Next) {
        return Err(IdentityError::NextRootExists {
            fingerprint: info(&dir, next)?.fingerprint,
        });
    }
    if let Some(previous) = manifest.find(RootRole::Previous) {
        return Err(IdentityError::PreviousRootInBundle {
            fingerprint: info(&dir, previous)?.fingerprint,
        });
    }
    let active = manifest
        .find(RootRole::Active)
        .ok_or_else(|| IdentityError::BadRootsFile {
            path: dir.join(ROOTS_FILE),
            detail: "no active root".into(),
        })?;
    let active_cert = files(&dir, active).0;
    let der = read_certs(&active_cert)?.remove(0);
    let trust_domain =
        ca_trust_domain(&der).ok_or(IdentityError::CaWithoutTrustDomain { path: active_cert })?;
    let now = OffsetDateTime::now_utc();
    let (key, _, cert) = new_root(&trust_domain, true)?;
    let name = stem(&fingerprint(cert.der()));
    write_private(&dir.join(format!("{name}.key")), &key.serialize_pem())?;
    write_public(&dir.join(format!("{name}.pem")), &cert.pem())?;
    manifest.roots.push(Entry {
        name: name.clone(),
        role: RootRole::Next,
        added: unix(now),
        activated: None,
        retired: None,
    });
    commit(&dir, &manifest, converted)?;
    manifest
        .find(RootRole::Next)
        .map(|e| info(&dir, e))
        .unwrap_or_else(|| Err(IdentityError::NoNextRoot))
}

/// Step 2: `next` signs from now on; the active root becomes `previous` (still trusted).
pub(crate) fn activate(state_dir: &Path) -> Result<RootActivation, IdentityError> {
    let dir = CertificateAuthority::dir(state_dir);
    let mut manifest = read_manifest(&dir)?.ok_or(IdentityError::NoNextRoot)?;
    if manifest.find(RootRole::Next).is_none() {
        return Err(IdentityError::NoNextRoot);
    }
    let now = unix(OffsetDateTime::now_utc());
    if let Some(active) = manifest.find_mut(RootRole::Active) {
        active.role = RootRole::Previous;
    }
    if let Some(next) = manifest.find_mut(RootRole::Next) {
        next.role = RootRole::Active;
        next.activated = Some(now);
    }
    commit(&dir, &manifest, false)?;
    let describe_role = |role| {
        manifest
            .find(role)
            .map(|e| info(&dir, e))
            .unwrap_or_else(|| Err(IdentityError::NoNextRoot))
    };
    Ok(RootActivation {
        active: describe_role(RootRole::Active)?,
        previous: describe_role(RootRole::Previous)?,
    })
}

/// The `previous` root, if a rollover has activated a new one and not retired the old.
pub(crate) fn previous(state_dir: &Path) -> Result<Option<RootInfo>, IdentityError> {
    Ok(roots(state_dir)?
        .into_iter()
        .find(|r| r.role == RootRole::Previous))
}

/// Step 3: the `previous` root leaves the bundle; its files move to `retired/`.
pub(crate) fn retire(state_dir: &Path) -> Result<RootInfo, IdentityError> {
    let dir = CertificateAuthority::dir(state_dir);
    let mut manifest = read_manifest(&dir)?.ok_or(IdentityError::NoPreviousRoot)?;
    let now = unix(OffsetDateTime::now_utc());
    let previous = manifest
        .find_mut(RootRole::Previous)
        .ok_or(IdentityError::NoPreviousRoot)?;
    previous.role = RootRole::Retired;
    previous.retired = Some(now);
    let name = previous.name.clone();
    commit(&dir, &manifest, false)?;
    manifest
        .roots
        .iter()
        .find(|e| e.name == name)
        .map(|e| info(&dir, e))
        .unwrap_or(Err(IdentityError::NoPreviousRoot))
}

/// Before `ca init --force` replaces the CA: moves every root's files (and the manifest)
/// to `retired/`, so a replaced root is never lost.
pub(crate) fn archive_all(dir: &Path) -> Result<(), IdentityError> {
    let retired_dir = dir.join(RETIRED_DIR);
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    if let Some(manifest) = read_manifest(dir)? {
        for entry in manifest
            .roots
            .iter()
            .filter(|e| e.role != RootRole::Retired)
        {
            for ext in ["pem", "key"] {
                let name = format!("{}.{ext}", entry.name);
                moves.push((dir.join(&name), retired_dir.join(name)));
            }
        }
        moves.push((
            dir.join(ROOTS_FILE),
            retired_dir.join(format!("roots-{stamp}.json")),
        ));
        // ca.pem is a derived copy of the bundle: init writes the new one over it.
    } else if dir.join(CA_CERT_FILE).exists() {
        let der = read_certs(&dir.join(CA_CERT_FILE))?.remove(0);
        let name = stem(&fingerprint(der.as_ref()));
        moves.push((
            dir.join(CA_KEY_FILE),
            retired_dir.join(format!("{name}.key")),
        ));
        // Copied, not moved: ca.pem is replaced by init right after.
        let pem = String::from_utf8_lossy(&read_file(&dir.join(CA_CERT_FILE))?).into_owned();
        create_private_dir(&retired_dir)?;
        write_public(&retired_dir.join(format!("{name}.pem")), &pem)?;
    }
    for (from, to) in moves {
        if from.exists() {
            create_private_dir(&retired_dir)?;
            fs::rename(&from, &to).map_err(|source| IdentityError::Io { path: from, source })?;
        }
    }
    Ok(())
}

impl CertificateAuthority {
    /// Every root of the CA in `state_dir` with its role, oldest first.
    pub fn roots(state_dir: &Path) -> Result<Vec<RootInfo>, IdentityError> {
        roots(state_dir)
    }

    /// Rollover step 1: generates a new root and adds it to the bundle as `next`. It
    /// signs nothing until [`activate_root`](Self::activate_root). Refused while another
    /// root is prepared or the previous root is still in the bundle.
    pub fn prepare_root(state_dir: &Path) -> Result<RootInfo, IdentityError> {
        prepare(state_dir)
    }

    /// Rollover step 2: the prepared root signs from now on; the old one stays in the
    /// bundle as `previous`, so the SVIDs it signed stay valid until they are renewed.
    pub fn activate_root(state_dir: &Path) -> Result<RootActivation, IdentityError> {
        activate(state_dir)
    }

    /// The root a rollover activated a new one over and has not retired yet.
    pub fn previous_root(state_dir: &Path) -> Result<Option<RootInfo>, IdentityError> {
        previous(state_dir)
    }

    /// Rollover step 3: the previous root leaves the bundle; its files are moved to
    /// `<state>/ca/retired/`. SVIDs it signed are no longer trusted.
    pub fn retire_root(state_dir: &Path) -> Result<RootInfo, IdentityError> {
        retire(state_dir)
    }
}
