//! rustls configurations for sidecars: SVID-checking verifiers for both directions, and
//! the classification of handshake failures into stable codes.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

use crate::bundle::{Snapshot, TrustBundle};
use crate::store::{Revocations, SvidStore};
use crate::svid::{svid_facts, svid_identity, SvidError, SvidMaterial};
use crate::{IdentityError, SpiffeId};

/// ALPN protocols the inbound listener offers, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn svid_rejection(err: SvidError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

/// Verifies client certificates: the chain must lead to the trust bundle (rustls' WebPKI
/// verifier does that, including validity period and the clientAuth EKU), and the leaf
/// must be an X.509-SVID from a trusted trust domain.
///
/// The bundle is read at every handshake, so a [`TrustBundle::replace`] applies to the
/// next connection (CA rollover) without rebuilding any configuration.
#[derive(Debug)]
pub struct SvidClientVerifier {
    bundle: Arc<TrustBundle>,
    provider: Arc<CryptoProvider>,
    trust_domains: Vec<String>,
    revocations: Arc<Revocations>,
    mandatory: bool,
    expired_grace: std::time::Duration,
}

impl SvidClientVerifier {
    /// A verifier that trusts `roots` (fixed) for SVIDs in any of `trust_domains`.
    pub fn new(roots: RootCertStore, trust_domains: Vec<String>) -> Result<Self, IdentityError> {
        Ok(Self::with_bundle(TrustBundle::new(roots)?, trust_domains))
    }

    /// A verifier that trusts whatever `bundle` holds at each handshake, for SVIDs in any
    /// of `trust_domains`.
    pub fn with_bundle(bundle: Arc<TrustBundle>, trust_domains: Vec<String>) -> Self {
        SvidClientVerifier {
            bundle,
            provider: provider(),
            trust_domains,
            revocations: Revocations::new(),
            mandatory: true,
            expired_grace: std::time::Duration::ZERO,
        }
    }

    /// Also accepts SVIDs that expired less than `grace` ago (every other check still
    /// applies, the chain as of the certificate's last valid second). Only for a server
    /// whose endpoints check expiry themselves: the control plane lets such a workload
    /// renew (and nothing else), so a sidecar cut off from the control plane past its
    /// SVID's expiry recovers by itself when the control plane returns.
    pub fn with_expired_grace(mut self, grace: std::time::Duration) -> Self {
        self.expired_grace = grace;
        self
    }

    /// Lets clients connect without a certificate (a presented one is still fully
    /// checked): for endpoints such as the control plane's join, whose callers have no
    /// SVID yet and must prove themselves otherwise.
    pub fn allow_unauthenticated(mut self) -> Self {
        self.mandatory = false;
        self
    }

    /// Also refuses SVIDs on `revocations` (shared, updated in place).
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }
}

/// Whether a chain error means "no trusted root signed this".
fn is_untrusted(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature
        )
    )
}

/// Verifies a client chain against the bundle's trusted roots; an untrusted chain that
/// leads to a root the bundle retired is refused as such.
fn verify_client_chain(
    snapshot: &Snapshot,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    match snapshot
        .trusted
        .verify_client(end_entity, intermediates, now)
    {
        Err(e) if is_untrusted(&e) => {
            let retired = snapshot
                .retired
                .as_ref()
                .is_some_and(|r| r.verify_client(end_entity, intermediates, now).is_ok());
            Err(if retired {
                retired_rejection(end_entity)
            } else {
                e
            })
        }
        other => other,
    }
}

fn retired_rejection(end_entity: &CertificateDer<'_>) -> rustls::Error {
    let id = svid_identity(end_entity)
        .map(|id| id.to_string())
        .unwrap_or_else(|_| "the certificate".to_owned());
    svid_rejection(SvidError::RetiredRoot { id })
}

/// Refuses a verified SVID that the control plane has revoked.
fn check_revocation(
    revocations: &Revocations,
    cert: &CertificateDer<'_>,
    id: &SpiffeId,
) -> Result<(), rustls::Error> {
    let serial = svid_facts(cert).map_err(svid_rejection)?.serial;
    if revocations.is_revoked(&serial, id.as_str()) {
        return Err(svid_rejection(SvidError::Revoked {
            id: id.to_string(),
            serial,
        }));
    }
    Ok(())
}

impl ClientCertVerifier for SvidClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// No CA names are sent in the CertificateRequest: a workload holds exactly one SVID,
    /// so the hint would choose nothing, and with a live bundle a borrowed list could
    /// not follow a replacement.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // One snapshot for the whole check: a concurrent replacement cannot mix bundles.
        let snapshot = self.bundle.snapshot();
        match verify_client_chain(&snapshot, end_entity, intermediates, now) {
            Ok(()) => {}
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) if !self.expired_grace.is_zero() => {
                // Within the grace, verify the chain as of the certificate's last valid second.
                let not_after = svid_facts(end_entity).map_err(svid_rejection)?.not_after;
                let expired_for = std::time::Duration::from_secs(now.as_secs()).saturating_sub(
                    std::time::Duration::from_secs(
                        u64::try_from(not_after.unix_timestamp()).unwrap_or(0),
                    ),
                );
                if expired_for > self.expired_grace {
                    return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
                }
                let last_valid = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(not_after.unix_timestamp()).unwrap_or(0),
                ));
                verify_client_chain(&snapshot, end_entity, intermediates, last_valid)?;
            }
            Err(e) => return Err(e),
        }
        let id = svid_identity(end_entity).map_err(svid_rejection)?;
        if !self.trust_domains.iter().any(|td| td == id.trust_domain()) {
            return Err(svid_rejection(SvidError::ForeignTrustDomain {
                id: id.to_string(),
                trust_domain: id.trust_domain().to_owned(),
                trusted: self.trust_domains.join(", "),
            }));
        }
        check_revocation(&self.revocations, end_entity, &id)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verifies a server's SVID: the chain must lead to the trust bundle and the leaf must
/// name exactly the SPIFFE ID configured for the target service. DNS names and IP
/// addresses play no part: identity, not network location, is what is checked.
///
/// Like [`SvidClientVerifier`], it reads its [`TrustBundle`] at every handshake.
#[derive(Debug)]
pub struct SvidServerVerifier {
    bundle: Arc<TrustBundle>,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
    revocations: Arc<Revocations>,
}

impl SvidServerVerifier {
    /// A verifier that accepts only `expected`, chained to `roots` (fixed).
    pub fn new(roots: RootCertStore, expected: SpiffeId) -> Self {
        Self::with_bundle(TrustBundle::fixed(roots), expected)
    }

    /// A verifier that accepts only `expected`, chained to whatever `bundle` holds at
    /// each handshake.
    pub fn with_bundle(bundle: Arc<TrustBundle>, expected: SpiffeId) -> Self {
        SvidServerVerifier {
            bundle,
            expected,
            provider: provider(),
            revocations: Revocations::new(),
        }
    }

    /// Also refuses server SVIDs on `revocations` (shared, updated in place).
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }
}

impl ServerCertVerifier for SvidServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let snapshot = self.bundle.snapshot();
        let algorithms = &self.provider.signature_verification_algorithms;
        match snapshot
            .trusted
            .verify_server(&cert, intermediates, now, algorithms)
        {
            Err(e) if is_untrusted(&e) => {
                let retired = snapshot.retired.as_ref().is_some_and(|r| {
                    r.verify_server(&cert, intermediates, now, algorithms)
                        .is_ok()
                });
                return Err(if retired {
                    retired_rejection(end_entity)
                } else {
                    e
                });
            }
            other => other?,
        }
        let id = svid_identity(end_entity).map_err(svid_rejection)?;
        if id != self.expected {
            return Err(svid_rejection(SvidError::UnexpectedServerIdentity {
                expected: self.expected.to_string(),
                presented: id.to_string(),
            }));
        }
        check_revocation(&self.revocations, end_entity, &id)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The inbound (server) TLS configuration of a sidecar: TLS 1.3 and 1.2, client
/// certificate required and verified as an SVID from one of `trust_domains`.
pub fn inbound_server_config(
    svid: &SvidMaterial,
    trust_domains: Vec<String>,
) -> Result<ServerConfig, IdentityError> {
    inbound_server_config_from(
        SvidStore::new(svid)?,
        svid.roots.clone(),
        trust_domains,
        Revocations::new(),
    )
}

/// [`inbound_server_config`] over a live [`SvidStore`] (renewed SVIDs are served from the
/// next handshake on) that also refuses revoked callers. The roots are fixed.
pub fn inbound_server_config_from(
    store: Arc<SvidStore>,
    roots: RootCertStore,
    trust_domains: Vec<String>,
    revocations: Arc<Revocations>,
) -> Result<ServerConfig, IdentityError> {
    inbound_server_config_with_bundle(
        store,
        TrustBundle::new(roots)?,
        trust_domains,
        revocations,
        true,
    )
}

/// The inbound configuration over a live SVID and a live [`TrustBundle`]: renewed SVIDs
/// and replaced bundles apply from the next handshake on. `client_cert_required = false`
/// lets callers connect without a certificate (a presented one is still fully checked;
/// [`SvidClientVerifier::allow_unauthenticated`]).
pub fn inbound_server_config_with_bundle(
    store: Arc<SvidStore>,
    bundle: Arc<TrustBundle>,
    trust_domains: Vec<String>,
    revocations: Arc<Revocations>,
    client_cert_required: bool,
) -> Result<ServerConfig, IdentityError> {
    let mut verifier =
        SvidClientVerifier::with_bundle(bundle, trust_domains).with_revocations(revocations);
    if !client_cert_required {
        verifier = verifier.allow_unauthenticated();
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The outbound (client) TLS configuration towards one service: presents this
/// workload's SVID and accepts only a server SVID naming `expected`. ALPN is left empty
/// for the HTTP client to fill in with what it speaks.
pub fn outbound_client_config(
    svid: &SvidMaterial,
    expected: SpiffeId,
) -> Result<ClientConfig, IdentityError> {
    outbound_client_config_from(
        SvidStore::new(svid)?,
        svid.roots.clone(),
        expected,
        Revocations::new(),
    )
}

/// [`outbound_client_config`] over a live [`SvidStore`] that also refuses revoked servers.
/// The roots are fixed.
pub fn outbound_client_config_from(
    store: Arc<SvidStore>,
    roots: RootCertStore,
    expected: SpiffeId,
    revocations: Arc<Revocations>,
) -> Result<ClientConfig, IdentityError> {
    outbound_client_config_with_bundle(store, TrustBundle::fixed(roots), expected, revocations)
}

/// The outbound configuration over a live SVID and a live [`TrustBundle`].
pub fn outbound_client_config_with_bundle(
    store: Arc<SvidStore>,
    bundle: Arc<TrustBundle>,
    expected: SpiffeId,
    revocations: Arc<Revocations>,
) -> Result<ClientConfig, IdentityError> {
    let verifier = SvidServerVerifier::with_bundle(bundle, expected).with_revocations(revocations);
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .dangerous() // Not dangerous here: the custom verifier is stricter than WebPKI's.
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(store))
}

/// Why a TLS handshake failed, as a stable code and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRejection {
    /// A `palisade.identity.*` or `palisade.tls.*` code.
    pub code: &'static str,
    /// What went wrong, without secrets.
    pub detail: String,
}

/// Classifies a failed handshake (the I/O error tokio-rustls returns) into a stable code.
pub fn classify_handshake_error(err: &std::io::Error) -> HandshakeRejection {
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return HandshakeRejection {
            code: "palisade.tls.handshake_failed",
            detail: format!("connection failed during the TLS handshake: {err}"),
        };
    };
    classify_tls_error(tls)
}

/// Classifies a rustls error into a stable code.
pub fn classify_tls_error(err: &rustls::Error) -> HandshakeRejection {
    let (code, detail) = match err {
        rustls::Error::NoCertificatesPresented => (
            "palisade.identity.missing",
            "no client certificate was presented; an X.509-SVID is required".to_owned(),
        ),
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                "palisade.identity.expired",
                format!("certificate expired: {cert}"),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                "palisade.identity.not_yet_valid",
                format!("certificate not yet valid: {cert}"),
            ),
            CertificateError::UnknownIssuer | CertificateError::BadSignature => (
                "palisade.identity.untrusted",
                "certificate does not chain to the trust bundle".to_owned(),
            ),
            CertificateError::Other(OtherError(inner)) => match inner.downcast_ref::<SvidError>() {
                Some(svid) => (svid.code(), svid.to_string()),
                None => ("palisade.identity.invalid_certificate", inner.to_string()),
            },
            other => (
                "palisade.identity.invalid_certificate",
                format!("certificate rejected: {other}"),
            ),
        },
        rustls::Error::AlertReceived(alert) => (
            "palisade.tls.alert_received",
            format!("peer aborted the handshake with alert {alert:?}"),
        ),
        other => ("palisade.tls.handshake_failed", other.to_string()),
    };
    HandshakeRejection { code, detail }
}
