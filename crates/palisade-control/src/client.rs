//! [`ControlClient`]: what sidecars use to join, renew, and follow revocations and the
//! trust bundle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use palisade_identity::tls::classify_handshake_error;
use palisade_identity::{
    svid_identity, validate_trust_domain, BundleChange, IdentityError, IssuedSvid, SpiffeId,
    SvidMaterial, TrustBundle,
};
use rcgen::{CertificateParams, KeyPair, PublicKeyData, SanType};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::api::{BundleResponse, JoinRequest, RenewRequest, SvidResponse};
use crate::problem::Problem;
use crate::state::{RevocationList, CONTROL_ID_PATH};
use crate::tls::client_config;
use crate::ControlError;

/// Longest a whole exchange (connect, handshake, request, response) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The trust bundle as `GET /v1/bundle` served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBundle {
    /// The bundle, PEM.
    pub pem: String,
    /// Its `ETag`, to send back as `If-None-Match` next time.
    pub etag: Option<String>,
}

/// A client of one control plane. Every call opens its own TLS connection and checks
/// that the server presents exactly `spiffe://<trust domain>/palisade/control`, chained
/// to the client's trust bundle.
///
/// That bundle starts as the one given to [`new`](Self::new) and follows the control
/// plane: the bundle of every join or renewal answer replaces it, as does
/// [`install_bundle`](Self::install_bundle). So once a CA rollover's new root is in the
/// served bundle, the client keeps trusting the control plane after it re-issues its own
/// certificate from that root. Clones share the bundle.
#[derive(Debug, Clone)]
pub struct ControlClient {
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    trust: Arc<TrustBundle>,
    expected: SpiffeId,
    anonymous: Arc<ClientConfig>,
}

impl ControlClient {
    /// `bundle_pem`: the trust bundle to verify the control plane with (from `palisade
    /// ca`/the state dir), `url` like `https://127.0.0.1:7000`; the server must present
    /// exactly `spiffe://<trust_domain>/palisade/control`.
    pub fn new(url: &str, bundle_pem: &str, trust_domain: &str) -> Result<Self, ControlError> {
        validate_trust_domain(trust_domain)
            .map_err(|e| ControlError::Identity(IdentityError::BadTrustDomain(e)))?;
        let bad = |reason: &str| ControlError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the control plane is reached over https only"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give the base URL only, without a path or query"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host"))?
            .as_str()
            .to_owned();
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = uri
            .host()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        // The SVID verifier ignores the name; rustls still needs one (and sends it as SNI
        // when it is a DNS name).
        let server_name = ServerName::try_from(host.clone())
            .or_else(|_| ServerName::try_from("palisade-control.invalid"))
            .map_err(|_| bad("the host is not a usable name"))?;
        let trust = TrustBundle::from_pem(bundle_pem).map_err(IdentityError::from)?;
        let expected = SpiffeId::new(trust_domain, CONTROL_ID_PATH)
            .map_err(|e| ControlError::Identity(IdentityError::BadTrustDomain(e)))?;
        // Built once: the verifier reads the live bundle at each handshake.
        let anonymous = Arc::new(client_config(trust.clone(), expected.clone(), None)?);
        Ok(ControlClient {
            host,
            port,
            authority,
            server_name,
            trust,
            expected,
            anonymous,
        })
    }

    /// The bundle this client trusts the control plane with (shared by its clones).
    pub fn trust_bundle(&self) -> Arc<TrustBundle> {
        self.trust.clone()
    }

    /// The PEM of the bundle this client trusts now.
    pub fn bundle_pem(&self) -> String {
        // Always built from PEM (new, install_bundle, answers), so the text is known.
        self.trust.pem().map(|p| p.to_string()).unwrap_or_default()
    }

    /// Trusts `bundle_pem` for this client's connections from now on. A bundle without a
    /// usable root is refused and the one in force stays.
    pub fn install_bundle(&self, bundle_pem: &str) -> Result<BundleChange, ControlError> {
        Ok(self
            .trust
            .replace_pem(bundle_pem)
            .map_err(IdentityError::from)?)
    }

    /// Adopts the bundle of a join or renewal answer (it came over a connection that
    /// verified the control plane, so it is as trustworthy as the one in force).
    fn adopt_bundle(&self, bundle_pem: &str) -> Result<(), ControlError> {
        self.trust
            .replace_pem(bundle_pem)
            .map(|_| ())
            .map_err(|e| ControlError::BadResponse(format!("the trust bundle: {e}")))
    }

    /// Generates a key pair locally (ECDSA P-256), sends a CSR with the token; returns
    /// the new SVID material. The private key never leaves this process.
    pub async fn join(
        &self,
        token: &str,
        spiffe_id: &SpiffeId,
    ) -> Result<IssuedSvid, ControlError> {
        let key = new_key()?;
        let request = JoinRequest {
            token: token.to_owned(),
            csr: csr_pem(&key, spiffe_id)?,
        };
        let response: SvidResponse = self
            .post("/v1/join", &request, self.anonymous.clone())
            .await?;
        let svid = accept_svid(&response, spiffe_id, key)?;
        self.adopt_bundle(&response.bundle)?;
        Ok(svid)
    }

    /// Renews over mTLS using `current` (its chain + key); the new key is generated
    /// locally. The new SVID names the same SPIFFE ID. The answer's bundle becomes this
    /// client's ([`bundle_pem`](Self::bundle_pem)).
    pub async fn renew(&self, current: &SvidMaterial) -> Result<IssuedSvid, ControlError> {
        let key = new_key()?;
        let request = RenewRequest {
            csr: csr_pem(&key, &current.spiffe_id)?,
        };
        let config = Arc::new(client_config(
            self.trust.clone(),
            self.expected.clone(),
            Some(current),
        )?);
        let response: SvidResponse = self.post("/v1/renew", &request, config).await?;
        let svid = accept_svid(&response, &current.spiffe_id, key)?;
        self.adopt_bundle(&response.bundle)?;
        Ok(svid)
    }

    /// The revocation list; `None` when it is still at version `etag`.
    pub async fn revocations(
        &self,
        etag: Option<u64>,
    ) -> Result<Option<RevocationList>, ControlError> {
        let mut headers = HeaderMap::new();
        if let Some(version) = etag {
            if let Ok(value) = format!("\"{version}\"").parse() {
                headers.insert(header::IF_NONE_MATCH, value);
            }
        }
        let (status, body) = self
            .exchange(
                Method::GET,
                "/v1/revocations",
                headers,
                None,
                self.anonymous.clone(),
            )
            .await?;
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        parse_json(&body).map(Some)
    }

    /// The policy set, fetched over mTLS with `current`; `None` when still at `etag`.
    pub async fn policies(
        &self,
        current: &SvidMaterial,
        etag: Option<&str>,
    ) -> Result<Option<crate::api::PolicyBundle>, ControlError> {
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag {
            if let Ok(value) = format!("\"{etag}\"").parse() {
                headers.insert(header::IF_NONE_MATCH, value);
            }
        }
        let config = Arc::new(client_config(
            self.trust.clone(),
            self.expected.clone(),
            Some(current),
        )?);
        let (status, body) = self
            .exchange(Method::GET, "/v1/policies", headers, None, config)
            .await?;
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        parse_json(&body).map(Some)
    }

    /// The trust bundle (PEM) the control plane serves.
    pub async fn bundle(&self) -> Result<String, ControlError> {
        let (_, body) = self
            .exchange(
                Method::GET,
                "/v1/bundle",
                HeaderMap::new(),
                None,
                self.anonymous.clone(),
            )
            .await?;
        parse_json::<BundleResponse>(&body).map(|b| b.bundle)
    }

    /// The trust bundle with its `ETag`; `None` when it still has `etag`. Fetching
    /// changes nothing here: install it with [`install_bundle`](Self::install_bundle).
    pub async fn bundle_since(
        &self,
        etag: Option<&str>,
    ) -> Result<Option<FetchedBundle>, ControlError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = etag.and_then(|e| e.parse().ok()) {
            headers.insert(header::IF_NONE_MATCH, value);
        }
        let (status, response_headers, body) = self
            .exchange_with_headers(
                Method::GET,
                "/v1/bundle",
                headers,
                None,
                self.anonymous.clone(),
            )
            .await?;
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let etag = response_headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let pem = parse_json::<BundleResponse>(&body)?.bundle;
        Ok(Some(FetchedBundle { pem, etag }))
    }

    /// The token signing keys (RFC 7517 JWK Set) the control plane publishes, for
    /// sidecars that accept access tokens.
    pub async fn jwks(&self) -> Result<serde_json::Value, ControlError> {
        let (_, body) = self
            .exchange(
                Method::GET,
                palisade_token::JWKS_PATH,
                HeaderMap::new(),
                None,
                self.anonymous.clone(),
            )
            .await?;
        parse_json(&body)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        config: Arc<ClientConfig>,
    ) -> Result<T, ControlError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ControlError::Http(format!("encoding the request: {e}")))?;
        let (_, body) = self
            .exchange(Method::POST, path, HeaderMap::new(), Some(body), config)
            .await?;
        parse_json(&body)
    }

    /// One request on a fresh connection. A 4xx/5xx answer becomes
    /// [`ControlError::Refused`]; 2xx and 304 are returned.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        config: Arc<ClientConfig>,
    ) -> Result<(StatusCode, Bytes), ControlError> {
        self.exchange_with_headers(method, path, headers, body, config)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// [`exchange`](Self::exchange), keeping the response headers.
    async fn exchange_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        config: Arc<ClientConfig>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ControlError> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange_inner(method, path, headers, body, config),
        )
        .await
        .map_err(|_| {
            ControlError::Http(format!(
                "no answer from {} within {} s",
                self.authority,
                REQUEST_TIMEOUT.as_secs()
            ))
        })?
    }

    async fn exchange_inner(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
        config: Arc<ClientConfig>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ControlError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| ControlError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let rejection = classify_handshake_error(&e);
                ControlError::Handshake {
                    code: rejection.code,
                    detail: rejection.detail,
                }
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ControlError::Http(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "control plane connection ended with an error");
            }
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ControlError::Http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ControlError::Http(describe_hyper_error(&e)))?;
        let status = response.status();
        let response_headers = response.headers().clone();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| ControlError::Http(format!("reading the response: {e}")))?
            .to_bytes();
        if status.is_client_error() || status.is_server_error() {
            return Err(match serde_json::from_slice::<Problem>(&body) {
                Ok(problem) => ControlError::Refused {
                    status: status.as_u16(),
                    code: problem.code,
                    detail: problem.detail,
                },
                Err(_) => {
                    ControlError::BadResponse(format!("HTTP {status} without a problem+json body"))
                }
            });
        }
        if !status.is_success() && status != StatusCode::NOT_MODIFIED {
            return Err(ControlError::BadResponse(format!(
                "unexpected HTTP {status}"
            )));
        }
        Ok((status, response_headers, body))
    }
}

/// A hyper error with its causes: with TLS 1.3 a refused client certificate surfaces
/// here (as the server's alert), not in the handshake.
fn describe_hyper_error(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(|e| ControlError::BadResponse(e.to_string()))
}

fn new_key() -> Result<KeyPair, ControlError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(ControlError::KeyGeneration)
}

/// A CSR carrying `id` as its only URI SAN, signed by `key`.
fn csr_pem(key: &KeyPair, id: &SpiffeId) -> Result<String, ControlError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        id.as_str()
            .try_into()
            .map_err(ControlError::KeyGeneration)?,
    )];
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(ControlError::KeyGeneration)
}

/// Checks that the issued SVID names `expected` and certifies `key`'s public key, then
/// pairs it with the key.
fn accept_svid(
    response: &SvidResponse,
    expected: &SpiffeId,
    key: KeyPair,
) -> Result<IssuedSvid, ControlError> {
    let der = rustls_pemfile::certs(&mut response.svid.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| ControlError::BadResponse("the response holds no certificate".into()))?;
    let id = svid_identity(&der)
        .map_err(|e| ControlError::BadResponse(format!("the issued certificate: {e}")))?;
    if id != *expected {
        return Err(ControlError::BadResponse(format!(
            "the control plane issued an SVID for {id}, not {expected}"
        )));
    }
    let (_, x509) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| ControlError::BadResponse(format!("the issued certificate: {e}")))?;
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(ControlError::BadResponse(
            "the issued SVID certifies a key other than the one this client generated".into(),
        ));
    }
    Ok(IssuedSvid {
        spiffe_id: id,
        cert_pem: response.svid.clone(),
        key_pem: key.serialize_pem(),
        not_after: x509.validity().not_after.to_datetime(),
    })
}
