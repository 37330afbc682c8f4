//! The control plane's rustls pieces: an optional-but-checked client certificate
//! verifier, a server certificate that can be swapped while serving, and client configs.

use std::sync::{Arc, RwLock};

use palisade_identity::tls::{SvidClientVerifier, SvidServerVerifier};
use palisade_identity::{IssuedSvid, SpiffeId, SvidMaterial, TrustBundle};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};

use crate::ControlError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(e: impl std::fmt::Display) -> ControlError {
    ControlError::Tls(e.to_string())
}

/// The server's certificate and key, replaced when the control plane rotates its SVID.
/// New handshakes get the new one; open connections keep theirs.
#[derive(Debug)]
pub(crate) struct RotatingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl RotatingCert {
    pub fn new(key: CertifiedKey) -> Self {
        RotatingCert {
            current: RwLock::new(Arc::new(key)),
        }
    }

    pub fn replace(&self, key: CertifiedKey) {
        // A writer cannot panic half-way through an Arc swap, so a poisoned lock still
        // holds a whole value.
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

/// Turns an SVID (certificate and key PEM) into what rustls serves.
pub(crate) fn certified_key(svid: &IssuedSvid) -> Result<CertifiedKey, ControlError> {
    let chain = rustls_pemfile::certs(&mut svid.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(tls_error)?;
    let key = rustls_pemfile::private_key(&mut svid.key_pem.as_bytes())
        .map_err(tls_error)?
        .ok_or_else(|| ControlError::Tls("the control plane SVID has no private key".into()))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(tls_error)?;
    Ok(CertifiedKey::new(chain, signing_key))
}

/// The server configuration: TLS 1.3 and 1.2, HTTP/1.1, optional client SVID checked
/// against the live `bundle` (replaced when the CA rolls over).
pub(crate) fn server_config(
    bundle: Arc<TrustBundle>,
    trust_domain: &str,
    cert: Arc<RotatingCert>,
) -> Result<ServerConfig, ControlError> {
    // Optional: joining workloads have no SVID yet; a presented one must pass every check
    // of the sidecars' verifier. Endpoints that need an identity check for it themselves.
    let verifier = SvidClientVerifier::with_bundle(bundle, vec![trust_domain.to_owned()])
        .allow_unauthenticated()
        // Expired SVIDs get in only to renew (the renew endpoint checks the grace).
        .with_expired_grace(crate::server::RENEWAL_GRACE);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_error)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that accepts only a server presenting `expected` chained to
/// the live `bundle`, and presents `svid` when given.
pub(crate) fn client_config(
    bundle: Arc<TrustBundle>,
    expected: SpiffeId,
    svid: Option<&SvidMaterial>,
) -> Result<ClientConfig, ControlError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_error)?
        .dangerous() // Not dangerous here: the SVID verifier is stricter than WebPKI's.
        .with_custom_certificate_verifier(Arc::new(SvidServerVerifier::with_bundle(
            bundle, expected,
        )));
    let mut config = match svid {
        Some(svid) => builder
            .with_client_auth_cert(svid.chain.clone(), svid.key.clone_key())
            .map_err(tls_error)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
