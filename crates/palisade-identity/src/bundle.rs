//! The trust bundle: the roots peers' SVIDs must chain to, replaceable while in use.
//!
//! A CA rollover adds a new root to the bundle before it signs anything and removes the
//! old one once nothing it signed is in use. Verifiers built over a [`TrustBundle`] read
//! it at every handshake, so a replaced bundle applies from the next connection on while
//! connections already open keep going. The rustls WebPKI verifier over the roots is
//! built once per replacement, never per handshake.

use std::sync::{Arc, RwLock};

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;

/// How many roots dropped from a bundle are remembered, to tell a peer whose SVID chains
/// to a retired root (`palisade.identity.retired_root`) from one nobody ever trusted.
const RETIRED_MEMORY: usize = 8;

/// Why a trust bundle was not accepted. The bundle in use stays when a replacement fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle holds no certificate: it would trust nothing, so every peer would be
    /// refused.
    #[error("the trust bundle holds no certificate")]
    Empty,
    /// The bundle is not PEM.
    #[error("the trust bundle is not valid PEM: {0}")]
    Pem(std::io::Error),
    /// A certificate of the bundle cannot be a trust anchor.
    #[error("certificate {index} of the trust bundle is not a usable CA certificate: {source}")]
    BadRoot {
        /// Its position in the bundle, from 0.
        index: usize,
        /// The cause.
        source: rustls::Error,
    },
    /// rustls refused to build a verifier over the roots.
    #[error("cannot build a certificate verifier over the trust bundle: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// What a replacement changed, counted in trust anchors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleChange {
    /// Roots trusted now that were not before.
    pub added: usize,
    /// Roots trusted before that are not any more.
    pub removed: usize,
}

impl BundleChange {
    /// Whether the set of trusted roots changed.
    pub fn is_changed(&self) -> bool {
        self.added > 0 || self.removed > 0
    }
}

/// Roots with the WebPKI client verifier built over them.
#[derive(Debug)]
pub(crate) struct Anchors {
    pub roots: Arc<RootCertStore>,
    /// `None` only for an empty store (rustls refuses to build a verifier without roots):
    /// such a bundle refuses every certificate.
    pub client: Option<Arc<dyn ClientCertVerifier>>,
}

impl Anchors {
    fn build(roots: RootCertStore, provider: &Arc<CryptoProvider>) -> Result<Self, BundleError> {
        let roots = Arc::new(roots);
        let client = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()?,
            )
        };
        Ok(Anchors { roots, client })
    }

    /// Verifies a client chain against these roots only.
    pub fn verify_client(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        match &self.client {
            Some(client) => client
                .verify_client_cert(end_entity, intermediates, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    /// Verifies a server chain against these roots only.
    pub fn verify_server(
        &self,
        end_entity: &ParsedCertificate<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<(), rustls::Error> {
        verify_server_cert_signed_by_trust_anchor(
            end_entity,
            &self.roots,
            intermediates,
            now,
            algorithms.all,
        )
    }
}

/// One version of the bundle: what a handshake reads, whole.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The roots trusted now.
    pub trusted: Anchors,
    /// Roots this bundle dropped (most recent last), only to name a refusal.
    pub retired: Option<Anchors>,
    pem: Option<Arc<str>>,
    generation: u64,
}

/// A shared, replaceable set of trust anchors.
///
/// Every verifier of a workload holds the same `Arc<TrustBundle>`; [`replace`](Self::replace)
/// swaps the roots for all of them at once. Roots a replacement drops are remembered (the
/// last few) so that a peer still presenting an SVID from a retired root is refused with
/// `palisade.identity.retired_root` rather than the generic `untrusted`.
#[derive(Debug)]
pub struct TrustBundle {
    current: RwLock<Arc<Snapshot>>,
    provider: Arc<CryptoProvider>,
}

impl TrustBundle {
    /// A bundle trusting `roots`. Refused when `roots` is empty.
    pub fn new(roots: RootCertStore) -> Result<Arc<Self>, BundleError> {
        if roots.is_empty() {
            return Err(BundleError::Empty);
        }
        Self::build(roots, None)
    }

    /// A bundle trusting every certificate of a PEM text (one or more `CERTIFICATE`
    /// blocks; anything else in the text is ignored).
    pub fn from_pem(pem: &str) -> Result<Arc<Self>, BundleError> {
        let roots = roots_from_pem(pem)?;
        Self::build(roots, Some(pem.into()))
    }

    /// A bundle over `roots` even when it is empty (then it refuses every certificate):
    /// for the constructors that always accepted any root store.
    pub(crate) fn fixed(roots: RootCertStore) -> Arc<Self> {
        let provider = provider();
        let roots = dedup(roots);
        // Only an empty store makes the build fail; that store trusts nothing either way.
        let trusted = Anchors::build(roots.clone(), &provider).unwrap_or(Anchors {
            roots: Arc::new(roots),
            client: None,
        });
        Arc::new(TrustBundle {
            current: RwLock::new(Arc::new(Snapshot {
                trusted,
                retired: None,
                pem: None,
                generation: 0,
            })),
            provider,
        })
    }

    fn build(roots: RootCertStore, pem: Option<Arc<str>>) -> Result<Arc<Self>, BundleError> {
        let provider = provider();
        let trusted = Anchors::build(dedup(roots), &provider)?;
        Ok(Arc::new(TrustBundle {
            current: RwLock::new(Arc::new(Snapshot {
                trusted,
                retired: None,
                pem,
                generation: 0,
            })),
            provider,
        }))
    }

    /// Trusts `roots` from the next handshake on; connections already open are not
    /// touched. Roots dropped by the change are remembered as retired. An empty `roots`
    /// is refused and the bundle in use stays.
    pub fn replace(&self, roots: RootCertStore) -> Result<BundleChange, BundleError> {
        self.swap(roots, None)
    }

    /// [`replace`](Self::replace) with the certificates of a PEM text.
    pub fn replace_pem(&self, pem: &str) -> Result<BundleChange, BundleError> {
        let roots = roots_from_pem(pem)?;
        self.swap(roots, Some(pem.into()))
    }

    fn swap(
        &self,
        roots: RootCertStore,
        pem: Option<Arc<str>>,
    ) -> Result<BundleChange, BundleError> {
        if roots.is_empty() {
            return Err(BundleError::Empty);
        }
        let roots = dedup(roots);
        let before = self.snapshot();
        let old = &before.trusted.roots.roots;
        let change = BundleChange {
            added: roots.roots.iter().filter(|a| !contains(old, a)).count(),
            removed: old.iter().filter(|a| !contains(&roots.roots, a)).count(),
        };
        // Retired: what was retired or trusted before and is not trusted now.
        let mut retired: Vec<TrustAnchor<'static>> = before
            .retired
            .iter()
            .flat_map(|r| r.roots.roots.iter())
            .chain(old.iter())
            .filter(|a| !contains(&roots.roots, a))
            .cloned()
            .collect();
        retired = dedup(RootCertStore { roots: retired }).roots;
        let retired = self.retired_anchors(retired)?;
        let trusted = Anchors::build(roots, &self.provider)?;
        let next = Arc::new(Snapshot {
            trusted,
            retired,
            pem,
            generation: before.generation + u64::from(change.is_changed()),
        });
        match self.current.write() {
            Ok(mut slot) => *slot = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(change)
    }

    /// Remembers `roots` as retired (those not trusted now): a peer whose SVID chains to
    /// one of them is refused with `palisade.identity.retired_root`. For a process that
    /// knows its retired roots without having seen them dropped (the control plane, at
    /// start).
    pub fn remember_retired(&self, roots: RootCertStore) -> Result<(), BundleError> {
        let before = self.snapshot();
        let mut retired: Vec<TrustAnchor<'static>> = before
            .retired
            .iter()
            .flat_map(|r| r.roots.roots.iter())
            .cloned()
            .collect();
        retired.extend(
            roots
                .roots
                .into_iter()
                .filter(|a| !contains(&before.trusted.roots.roots, a)),
        );
        retired = dedup(RootCertStore { roots: retired }).roots;
        let next = Arc::new(Snapshot {
            trusted: Anchors {
                roots: before.trusted.roots.clone(),
                client: before.trusted.client.clone(),
            },
            retired: self.retired_anchors(retired)?,
            pem: before.pem.clone(),
            generation: before.generation,
        });
        match self.current.write() {
            Ok(mut slot) => *slot = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    fn retired_anchors(
        &self,
        mut retired: Vec<TrustAnchor<'static>>,
    ) -> Result<Option<Anchors>, BundleError> {
        if retired.is_empty() {
            return Ok(None);
        }
        // Most recent last: keep the newest few.
        let excess = retired.len().saturating_sub(RETIRED_MEMORY);
        retired.drain(..excess);
        Anchors::build(RootCertStore { roots: retired }, &self.provider).map(Some)
    }

    /// The roots trusted now.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.snapshot().trusted.roots.clone()
    }

    /// How many roots are trusted now.
    pub fn len(&self) -> usize {
        self.snapshot().trusted.roots.len()
    }

    /// Whether no root is trusted (only a bundle made by a fixed-roots constructor from an
    /// empty store; such a bundle refuses every certificate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the CA certificate `cert` is one of the roots trusted now.
    pub fn contains(&self, cert: &CertificateDer<'_>) -> bool {
        let mut probe = RootCertStore::empty();
        if probe.add(cert.clone().into_owned()).is_err() {
            return false;
        }
        let snapshot = self.snapshot();
        probe
            .roots
            .iter()
            .all(|a| contains(&snapshot.trusted.roots.roots, a))
    }

    /// The PEM text the bundle was last built from, when it was built from PEM.
    pub fn pem(&self) -> Option<Arc<str>> {
        self.snapshot().pem.clone()
    }

    /// Incremented by every replacement that changed the trusted roots: a cheap way to
    /// notice a new bundle.
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// The version in force, for one handshake.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Parses the certificates of a PEM trust bundle into a root store.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, BundleError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in rustls_pemfile::certs(&mut pem.as_bytes()).enumerate() {
        let cert = cert.map_err(BundleError::Pem)?;
        roots
            .add(cert)
            .map_err(|source| BundleError::BadRoot { index, source })?;
    }
    if roots.is_empty() {
        return Err(BundleError::Empty);
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Two anchors are the same root when subject, key and name constraints agree.
fn same(a: &TrustAnchor<'_>, b: &TrustAnchor<'_>) -> bool {
    a.subject.as_ref() == b.subject.as_ref()
        && a.subject_public_key_info.as_ref() == b.subject_public_key_info.as_ref()
        && a.name_constraints.as_ref().map(|n| n.as_ref())
            == b.name_constraints.as_ref().map(|n| n.as_ref())
}

fn contains(set: &[TrustAnchor<'_>], anchor: &TrustAnchor<'_>) -> bool {
    set.iter().any(|a| same(a, anchor))
}

/// The store without repeated anchors, first occurrence kept.
fn dedup(roots: RootCertStore) -> RootCertStore {
    let mut unique: Vec<TrustAnchor<'static>> = Vec::with_capacity(roots.roots.len());
    for anchor in roots.roots {
        if !contains(&unique, &anchor) {
            unique.push(anchor);
        }
    }
    RootCertStore { roots: unique }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::CertificateAuthority;

    fn root(trust_domain: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::init(dir.path(), trust_domain, false).unwrap();
        let pem = ca.bundle_pem().to_owned();
        (dir, pem)
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn replacing_counts_added_and_removed_roots_and_bumps_the_generation() {
        let ((_a, a), (_b, b)) = (root("example.org"), root("example.org"));
        let bundle = TrustBundle::from_pem(&a).unwrap();
        assert_eq!(bundle.generation(), 0);
        let change = bundle.replace_pem(&format!("{a}{b}")).unwrap();
        assert_eq!(
            change,
            BundleChange {
                added: 1,
                removed: 0
            }
        );
        assert_eq!(bundle.len(), 2);
        assert!(bundle.contains(&der(&a)) && bundle.contains(&der(&b)));
        assert_eq!(bundle.generation(), 1);
        // The same roots in another order (and repeated) change nothing.
        let change = bundle.replace_pem(&format!("{b}{a}{b}")).unwrap();
        assert!(!change.is_changed());
        assert_eq!(bundle.len(), 2);
        assert_eq!(bundle.generation(), 1);
        let change = bundle.replace_pem(&b).unwrap();
        assert_eq!(
            change,
            BundleChange {
                added: 0,
                removed: 1
            }
        );
        assert!(!bundle.contains(&der(&a)));
        assert_eq!(bundle.pem().as_deref(), Some(b.as_str()));
    }

    #[test]
    fn an_empty_or_unparseable_bundle_is_refused_and_the_old_one_stays() {
        let (_a, a) = root("example.org");
        let bundle = TrustBundle::from_pem(&a).unwrap();
        assert!(matches!(bundle.replace_pem(""), Err(BundleError::Empty)));
        assert!(matches!(
            bundle.replace(RootCertStore::empty()),
            Err(BundleError::Empty)
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            bundle.replace_pem(garbage),
            Err(BundleError::BadRoot { index: 0, .. })
        ));
        assert!(bundle.contains(&der(&a)));
        assert!(matches!(
            TrustBundle::new(RootCertStore::empty()),
            Err(BundleError::Empty)
        ));
    }

    #[test]
    fn dropped_roots_are_remembered_as_retired_until_trusted_again() {
        let ((_a, a), (_b, b)) = (root("example.org"), root("example.org"));
        let bundle = TrustBundle::from_pem(&format!("{a}{b}")).unwrap();
        assert!(bundle.snapshot().retired.is_none());
        bundle.replace_pem(&b).unwrap();
        let retired = bundle.snapshot().retired.as_ref().unwrap().roots.len();
        assert_eq!(retired, 1);
        bundle.replace_pem(&format!("{a}{b}")).unwrap();
        assert!(bundle.snapshot().retired.is_none());
        bundle
            .remember_retired(roots_from_pem(&a).unwrap())
            .unwrap();
        assert!(
            bundle.snapshot().retired.is_none(),
            "a trusted root is never retired"
        );
    }
}
