//! The issuer's signing keys on disk, and their rotation.
//!
//! Layout under the issuer's directory:
//!
//! ```text
//! keys/<kid>.json   metadata: kid, alg, public x/y, created_at, retired_at (RFC 3339 or null)
//! keys/<kid>.pem    the PKCS#8 private key (mode 0600), only while the key is active
//! ```
//!
//! The `kid` is the key's RFC 7638 JWK thumbprint. A retired key's private half is
//! deleted at retirement (it never signs again); its metadata keeps the public half in the
//! JWKS until every token it signed has expired, then it is deleted too.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::EncodingKey;
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::jose::{b64url, ec_jwk_thumbprint};
use crate::TokenError;

/// Sub-directory of the issuer directory holding the keys.
pub const KEYS_DIR: &str = "keys";

/// What `keys/<kid>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyMetadata {
    kid: String,
    alg: String,
    crv: String,
    x: String,
    y: String,
    created_at: String,
    retired_at: Option<String>,
}

/// One signing key: always its public half, its private half while active.
pub(crate) struct SigningKey {
    pub kid: String,
    pub x: String,
    pub y: String,
    pub created_at: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
    /// Present only for the active key.
    pub encoding: Option<EncodingKey>,
}

impl SigningKey {
    /// The key as a JWK (RFC 7517/7518) for the JWKS.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }
}

/// All keys of one issuer: exactly one active (the last), zero or more retired.
pub(crate) struct KeyStore {
    dir: PathBuf,
    /// Retired keys first (oldest first), the active key last.
    keys: Vec<SigningKey>,
}

impl KeyStore {
    /// Loads `<dir>/keys/`, creating the directory and a first key if there is none.
    pub fn open(dir: &Path, now: OffsetDateTime) -> Result<Self, TokenError> {
        let keys_dir = dir.join(KEYS_DIR);
        fs::create_dir_all(&keys_dir).map_err(|source| io(&keys_dir, source))?;
        let mut keys = Vec::new();
        let entries = fs::read_dir(&keys_dir).map_err(|source| io(&keys_dir, source))?;
        for entry in entries {
            let path = entry.map_err(|source| io(&keys_dir, source))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                keys.push(load_key(&keys_dir, &path)?);
            }
        }
        keys.sort_by_key(|k| (k.retired_at.is_none(), k.created_at));
        let mut store = KeyStore {
            dir: keys_dir,
            keys,
        };
        // A crash during rotation can leave two unretired keys: the newest wins, the
        // others are retired as of the newest one's creation.
        let unretired: Vec<usize> = (0..store.keys.len())
            .filter(|&i| store.keys[i].retired_at.is_none())
            .collect();
        if let Some((&newest, older)) = unretired.split_last() {
            let retired_at = store.keys[newest].created_at;
            for &i in older {
                store.retire(i, retired_at)?;
            }
            if store.keys[newest].encoding.is_none() {
                return Err(TokenError::InvalidKey {
                    path: store.dir.join(format!("{}.pem", store.keys[newest].kid)),
                    reason: "the active key's private key file is missing".into(),
                });
            }
        } else {
            store.add_new_key(now)?;
        }
        store
            .keys
            .sort_by_key(|k| (k.retired_at.is_none(), k.created_at));
        Ok(store)
    }

    /// The active (signing) key.
    pub fn active(&self) -> Option<&SigningKey> {
        self.keys.last().filter(|k| k.retired_at.is_none())
    }

    /// Every key whose tokens may still be valid, active first.
    pub fn published(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().rev()
    }

    /// Removes retired keys whose tokens have all expired (`retired_at + token_ttl <= now`),
    /// then rotates if the active key is `rotation` old. Returns whether it rotated.
    pub fn rotate_if_due(
        &mut self,
        now: OffsetDateTime,
        token_ttl: Duration,
        rotation: Duration,
    ) -> Result<bool, TokenError> {
        let mut i = 0;
        while i < self.keys.len() {
            match self.keys[i].retired_at {
                Some(retired_at) if retired_at + token_ttl <= now => {
                    let key = self.keys.remove(i);
                    self.delete_files(&key.kid)?;
                    tracing::info!(kid = %key.kid, "removed retired token signing key from the JWKS");
                }
                _ => i += 1,
            }
        }
        let due = match self.active() {
            Some(active) => active.created_at + rotation <= now,
            None => true,
        };
        if !due {
            return Ok(false);
        }
        let old = self.keys.len().checked_sub(1);
        // The new key is on disk before the old one is retired: a crash in between leaves
        // two unretired keys, which `open` resolves.
        let kid = self.add_new_key(now)?;
        if let Some(old) = old.filter(|&i| self.keys[i].retired_at.is_none()) {
            self.retire(old, now)?;
        }
        self.keys
            .sort_by_key(|k| (k.retired_at.is_none(), k.created_at));
        tracing::info!(%kid, "rotated token signing key");
        Ok(true)
    }

    fn add_new_key(&mut self, now: OffsetDateTime) -> Result<String, TokenError> {
        let pair = KeyPair::generate().map_err(TokenError::KeyGeneration)?;
        let (x, y) = split_point(pair.public_key_raw()).ok_or_else(|| TokenError::InvalidKey {
            path: self.dir.clone(),
            reason: "generated key is not an uncompressed P-256 point".into(),
        })?;
        let kid = ec_jwk_thumbprint(&x, &y);
        let pem = pair.serialize_pem();
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| TokenError::InvalidKey {
                path: self.dir.clone(),
                reason: e.to_string(),
            })?;
        write_atomic(&self.dir.join(format!("{kid}.pem")), pem.as_bytes(), true)?;
        let key = SigningKey {
            kid: kid.clone(),
            x,
            y,
            created_at: now,
            retired_at: None,
            encoding: Some(encoding),
        };
        self.write_metadata(&key)?;
        self.keys.push(key);
        Ok(kid)
    }

    fn retire(&mut self, index: usize, at: OffsetDateTime) -> Result<(), TokenError> {
        let key = &mut self.keys[index];
        key.retired_at = Some(at);
        key.encoding = None;
        let kid = key.kid.clone();
        let snapshot = SigningKey {
            kid: kid.clone(),
            x: key.x.clone(),
            y: key.y.clone(),
            created_at: key.created_at,
            retired_at: key.retired_at,
            encoding: None,
        };
        self.write_metadata(&snapshot)?;
        // A retired key never signs again: its private half has no further use.
        remove_if_present(&self.dir.join(format!("{kid}.pem")))
    }

    fn write_metadata(&self, key: &SigningKey) -> Result<(), TokenError> {
        let meta = KeyMetadata {
            kid: key.kid.clone(),
            alg: "ES256".into(),
            crv: "P-256".into(),
            x: key.x.clone(),
            y: key.y.clone(),
            created_at: rfc3339(key.created_at)?,
            retired_at: key.retired_at.map(rfc3339).transpose()?,
        };
        let path = self.dir.join(format!("{}.json", key.kid));
        let text = serde_json::to_vec_pretty(&meta).map_err(|e| TokenError::InvalidMetadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &text, false)
    }

    fn delete_files(&self, kid: &str) -> Result<(), TokenError> {
        remove_if_present(&self.dir.join(format!("{kid}.json")))?;
        remove_if_present(&self.dir.join(format!("{kid}.pem")))
    }
}

fn load_key(dir: &Path, meta_path: &Path) -> Result<SigningKey, TokenError> {
    let bad = |reason: String| TokenError::InvalidMetadata {
        path: meta_path.to_owned(),
        reason,
    };
    let text = fs::read(meta_path).map_err(|source| io(meta_path, source))?;
    let meta: KeyMetadata = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if meta.alg != "ES256" || meta.crv != "P-256" {
        return Err(bad(format!(
            "unsupported key {} {}; only ES256 (P-256) keys are used",
            meta.alg, meta.crv
        )));
    }
    if ec_jwk_thumbprint(&meta.x, &meta.y) != meta.kid {
        return Err(bad("kid is not the thumbprint of the key".into()));
    }
    let created_at = OffsetDateTime::parse(&meta.created_at, &Rfc3339)
        .map_err(|e| bad(format!("created_at: {e}")))?;
    let retired_at = meta
        .retired_at
        .as_deref()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339))
        .transpose()
        .map_err(|e| bad(format!("retired_at: {e}")))?;
    let pem_path = dir.join(format!("{}.pem", meta.kid));
    let encoding = if retired_at.is_none() && pem_path.exists() {
        let pem = fs::read_to_string(&pem_path).map_err(|source| io(&pem_path, source))?;
        let invalid = |reason: String| TokenError::InvalidKey {
            path: pem_path.clone(),
            reason,
        };
        let pair = KeyPair::from_pem(&pem).map_err(|e| invalid(e.to_string()))?;
        let (x, y) =
            split_point(pair.public_key_raw()).ok_or_else(|| invalid("not a P-256 key".into()))?;
        if x != meta.x || y != meta.y {
            return Err(invalid("private key does not match its metadata".into()));
        }
        Some(EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?)
    } else {
        None
    };
    Ok(SigningKey {
        kid: meta.kid,
        x: meta.x,
        y: meta.y,
        created_at,
        retired_at,
        encoding,
    })
}

/// Splits an uncompressed SEC1 P-256 point (`04 || X || Y`) into base64url x and y.
fn split_point(raw: &[u8]) -> Option<(String, String)> {
    match raw {
        [4, rest @ ..] if rest.len() == 64 => Some((b64url(&rest[..32]), b64url(&rest[32..]))),
        _ => None,
    }
}

fn rfc3339(t: OffsetDateTime) -> Result<String, TokenError> {
    t.format(&Rfc3339).map_err(|e| TokenError::InvalidMetadata {
        path: PathBuf::new(),
        reason: format!("timestamp not representable: {e}"),
    })
}

fn io(path: &Path, source: std::io::Error) -> TokenError {
    TokenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn remove_if_present(path: &Path) -> Result<(), TokenError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path, e)),
        _ => Ok(()),
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a
/// reader never sees half a key. `private` files get mode 0600 on Unix.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), TokenError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(|source| io(&tmp, source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io(&tmp, source))?;
    fs::rename(&tmp, path).map_err(|source| io(path, source))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn creates_one_active_key_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let first = KeyStore::open(dir.path(), now).unwrap();
        let kid = first.active().unwrap().kid.clone();
        let again = KeyStore::open(dir.path(), now).unwrap();
        assert_eq!(again.active().unwrap().kid, kid);
        assert_eq!(again.published().count(), 1);
        assert!(again.active().unwrap().encoding.is_some());
    }

    #[cfg(unix)]
    #[test]
    fn private_key_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path(), OffsetDateTime::now_utc()).unwrap();
        let kid = &store.active().unwrap().kid;
        let mode = fs::metadata(dir.path().join(KEYS_DIR).join(format!("{kid}.pem")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn retiring_deletes_the_private_key_but_keeps_the_public_one() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let ttl = Duration::from_secs(300);
        let rotation = Duration::from_secs(3600);
        let mut store = KeyStore::open(dir.path(), now).unwrap();
        let old = store.active().unwrap().kid.clone();
        let later = now + rotation;
        assert!(store.rotate_if_due(later, ttl, rotation).unwrap());
        let keys_dir = dir.path().join(KEYS_DIR);
        assert!(!keys_dir.join(format!("{old}.pem")).exists());
        assert!(keys_dir.join(format!("{old}.json")).exists());
        let reloaded = KeyStore::open(dir.path(), later).unwrap();
        assert_eq!(reloaded.published().count(), 2);
        assert_ne!(reloaded.active().unwrap().kid, old);
    }

    #[test]
    fn resolves_two_unretired_keys_left_by_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut store = KeyStore::open(dir.path(), now).unwrap();
        let old = store.active().unwrap().kid.clone();
        let newer = store.add_new_key(now + Duration::from_secs(10)).unwrap();
        drop(store);
        let reloaded = KeyStore::open(dir.path(), now).unwrap();
        assert_eq!(reloaded.active().unwrap().kid, newer);
        let retired: Vec<_> = reloaded
            .published()
            .filter(|k| k.retired_at.is_some())
            .map(|k| k.kid.clone())
            .collect();
        assert_eq!(retired, vec![old]);
    }

    #[test]
    fn refuses_metadata_whose_kid_is_not_the_thumbprint() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path(), OffsetDateTime::now_utc()).unwrap();
        let kid = store.active().unwrap().kid.clone();
        let path = dir.path().join(KEYS_DIR).join(format!("{kid}.json"));
        let mut meta: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        meta["x"] = serde_json::json!(b64url(&[7u8; 32]));
        fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
        assert!(matches!(
            KeyStore::open(dir.path(), OffsetDateTime::now_utc()),
            Err(TokenError::InvalidMetadata { .. })
        ));
    }
}
