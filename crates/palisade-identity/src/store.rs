//! The workload's live identity: the current SVID, swapped in place when it is renewed,
//! and the set of revoked peers, both shared by every TLS configuration of a sidecar.
//!
//! rustls asks [`SvidStore`] for the certificate at every handshake, so a renewed SVID is
//! used by the next connection while connections already open keep theirs: rotation
//! drops nothing.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use time::OffsetDateTime;

use crate::svid::{svid_facts, SvidMaterial};
use crate::{IdentityError, SpiffeId};

/// One SVID as the store holds it.
#[derive(Debug)]
pub struct CurrentSvid {
    /// Its SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// Chain and signing key, ready for rustls.
    pub certified: Arc<CertifiedKey>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Serial number, lower-case hex without separators.
    pub serial: String,
}

impl CurrentSvid {
    fn from_material(material: &SvidMaterial) -> Result<Self, IdentityError> {
        let leaf = material
            .chain
            .first()
            .ok_or_else(|| IdentityError::EmptyPem {
                path: material.dir.clone(),
            })?;
        let facts = svid_facts(leaf).map_err(|source| IdentityError::NotAnSvid {
            path: material.dir.clone(),
            source,
        })?;
        let certified = CertifiedKey::from_der(
            material.chain.clone(),
            material.key.clone_key(),
            &rustls::crypto::ring::default_provider(),
        )
        .map_err(|e| IdentityError::Tls(e.to_string()))?;
        Ok(CurrentSvid {
            spiffe_id: material.spiffe_id.clone(),
            certified: Arc::new(certified),
            not_before: facts.not_before,
            not_after: facts.not_after,
            serial: facts.serial,
        })
    }

    /// Whether the SVID is still valid at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// The current SVID of a workload, swappable while in use.
#[derive(Debug)]
pub struct SvidStore {
    current: RwLock<Arc<CurrentSvid>>,
}

impl SvidStore {
    /// A store holding `material`.
    pub fn new(material: &SvidMaterial) -> Result<Arc<Self>, IdentityError> {
        Ok(Arc::new(SvidStore {
            current: RwLock::new(Arc::new(CurrentSvid::from_material(material)?)),
        }))
    }

    /// The SVID in use now.
    pub fn current(&self) -> Arc<CurrentSvid> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a renewed SVID. It must name the same SPIFFE ID: a workload's identity
    /// never changes under a running sidecar.
    pub fn replace(&self, material: &SvidMaterial) -> Result<(), IdentityError> {
        let next = CurrentSvid::from_material(material)?;
        let current = self.current();
        if next.spiffe_id != current.spiffe_id {
            return Err(IdentityError::IdentityChanged {
                current: current.spiffe_id.to_string(),
                offered: next.spiffe_id.to_string(),
            });
        }
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut slot) => *slot = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }
}

impl ResolvesServerCert for SvidStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }
}

impl ResolvesClientCert for SvidStore {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Revoked SVIDs, by serial number or by SPIFFE ID, as last fetched from the control plane.
#[derive(Debug, Default)]
pub struct Revocations {
    set: RwLock<RevokedSet>,
}

#[derive(Debug, Default)]
struct RevokedSet {
    version: u64,
    serials: HashSet<String>,
    spiffe_ids: HashSet<String>,
}

impl Revocations {
    /// An empty set (nothing revoked), shareable.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Replaces the set with the control plane's list `version`.
    pub fn replace(
        &self,
        version: u64,
        serials: impl IntoIterator<Item = String>,
        spiffe_ids: impl IntoIterator<Item = String>,
    ) {
        let next = RevokedSet {
            version,
            serials: serials
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            spiffe_ids: spiffe_ids.into_iter().collect(),
        };
        match self.set.write() {
            Ok(mut set) => *set = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// The version of the list in force (0 = never fetched).
    pub fn version(&self) -> u64 {
        self.read(|set| set.version)
    }

    /// Whether an SVID with this serial (hex) or SPIFFE ID is revoked.
    pub fn is_revoked(&self, serial: &str, spiffe_id: &str) -> bool {
        self.read(|set| {
            set.serials.contains(&serial.to_ascii_lowercase()) || set.spiffe_ids.contains(spiffe_id)
        })
    }

    fn read<T>(&self, f: impl FnOnce(&RevokedSet) -> T) -> T {
        match self.set.read() {
            Ok(set) => f(&set),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}
