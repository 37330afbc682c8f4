//! Test support for Palisade: a throwaway PKI (with the bad certificates tests need), a
//! local echo app, an mTLS HTTP client, and polling helpers. Not for production use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade_identity::tls::SvidServerVerifier;
use palisade_identity::{
    load_roots, svid_params, write_svid_dir, CertificateAuthority, IssuedSvid, SpiffeId,
    SvidMaterial, CA_CERT_FILE, CA_KEY_FILE,
};
use rcgen::{Issuer, KeyPair};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// A CA in a temporary state directory, and helpers to mint SVID directories from it.
pub struct TestPki {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub ca: CertificateAuthority,
}

impl TestPki {
    /// A fresh CA for `trust_domain`.
    pub fn new(trust_domain: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca =
            CertificateAuthority::init(&dir.path().join("state"), trust_domain, false).unwrap();
        TestPki { dir, ca }
    }

    /// The state directory (CA under `ca/`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The SPIFFE ID of a Kubernetes-style workload `name` in this trust domain.
    pub fn id(&self, name: &str) -> SpiffeId {
        SpiffeId::new(self.ca.trust_domain(), &format!("/ns/test/sa/{name}")).unwrap()
    }

    /// Issues a valid SVID for `id` into `<state>/svids/<label>` and returns that directory.
    pub fn svid_dir(&self, label: &str, id: &SpiffeId) -> PathBuf {
        let svid = self.ca.issue(id, Duration::from_secs(3600)).unwrap();
        self.write(label, &svid)
    }

    /// An SVID whose validity ended an hour ago.
    pub fn expired_svid_dir(&self, label: &str, id: &SpiffeId) -> PathBuf {
        let now = OffsetDateTime::now_utc();
        let svid = self
            .ca
            .issue_between(
                id,
                now - time::Duration::hours(2),
                now - time::Duration::hours(1),
            )
            .unwrap();
        self.write(label, &svid)
    }

    /// An SVID signed by this CA's key but naming a SPIFFE ID in another trust domain (as
    /// a compromised or misconfigured signer might produce).
    pub fn foreign_domain_svid_dir(&self, label: &str, id: &SpiffeId) -> PathBuf {
        let ca_dir = CertificateAuthority::dir(&self.state_dir());
        let key =
            KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join(CA_KEY_FILE)).unwrap()).unwrap();
        let issuer = Issuer::from_ca_cert_pem(
            &std::fs::read_to_string(ca_dir.join(CA_CERT_FILE)).unwrap(),
            key,
        )
        .unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let now = OffsetDateTime::now_utc();
        let params = svid_params(
            id,
            now - time::Duration::minutes(1),
            now + time::Duration::hours(1),
        )
        .unwrap();
        let cert = params.signed_by(&leaf_key, &issuer).unwrap();
        let svid = IssuedSvid {
            spiffe_id: id.clone(),
            cert_pem: cert.pem(),
            key_pem: leaf_key.serialize_pem(),
            not_after: now + time::Duration::hours(1),
        };
        self.write(label, &svid)
    }

    fn write(&self, label: &str, svid: &IssuedSvid) -> PathBuf {
        let dir = self.state_dir().join("svids").join(label);
        write_svid_dir(&dir, svid, self.ca.bundle_pem()).unwrap();
        dir
    }
}

/// A loopback address with a port that was free a moment ago (for configs that must name
/// ports before the listener exists). Never the same port twice in one test process: the
/// kernel may hand a just-released ephemeral port out again, and two listeners of one
/// config would then collide.
pub fn free_addr() -> SocketAddr {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let addr = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        if !handed_out.contains(&addr.port()) {
            handed_out.push(addr.port());
            return addr;
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `deadline` passes (then panics with `what`).
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts an HTTP/1.1 app on `addr` (port 0 for any) that answers every request with a JSON
/// echo: `{"service", "method", "path", "xfcc", "request_id", "body_len", "caller",
/// "scopes", "authorization"}` (the last three: the token caller headers a sidecar sets, and
/// whether an `Authorization` header reached the app).
///
/// A request with `x-echo-body: json` also gets its JSON body back under `"body"` (`null`
/// when it is not JSON), as `application/json`: a JSON response carrying whatever the
/// test planted in the request.
pub async fn spawn_echo_app(addr: SocketAddr, service: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let (xfcc, rid) = (header("x-forwarded-client-cert"), header("x-request-id"));
                    let (caller, scopes) =
                        (header("x-palisade-caller"), header("x-palisade-scopes"));
                    let authorization = req.headers().contains_key("authorization");
                    let echo_body = header("x-echo-body").as_deref() == Some("json");
                    let method = req.method().to_string();
                    let path = req.uri().path().to_owned();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut json = serde_json::json!({
                        "service": service, "method": method, "path": path,
                        "xfcc": xfcc, "request_id": rid, "body_len": body.len(),
                        "caller": caller, "scopes": scopes, "authorization": authorization,
                    });
                    let mut response = Response::builder();
                    if echo_body {
                        json["body"] = serde_json::from_slice(&body).unwrap_or_default();
                        response = response.header("content-type", "application/json");
                    }
                    let response = response
                        .body(Full::new(Bytes::from(json.to_string())))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    bound
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// A TLS client configuration for tests: presents the SVID in `client_svid` (or no
/// certificate at all), trusts `bundle`, and accepts only a server presenting `server_id`.
pub fn client_config(
    client_svid: Option<&Path>,
    bundle: &Path,
    server_id: &SpiffeId,
) -> rustls::ClientConfig {
    let roots = load_roots(bundle).unwrap();
    let verifier = Arc::new(SvidServerVerifier::new(roots, server_id.clone()));
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(verifier);
    let mut config = match client_svid {
        Some(dir) => {
            let svid = SvidMaterial::load_dir(dir).unwrap();
            builder.with_client_auth_cert(svid.chain, svid.key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Sends one HTTP/1.1 request over TLS with `config`. A refused handshake comes back as
/// `Err` with its text.
pub async fn tls_request(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    method: &str,
    path: &str,
) -> Result<TestResponse, String> {
    let tls = tls_connect(addr, config).await?;
    // With TLS 1.3 the server checks the client certificate after the client's handshake
    // finishes, so a refusal shows up in the request, not in `connect`.
    send(
        TokioIo::new(tls),
        "palisade.test",
        method,
        path,
        &[],
        Bytes::new(),
    )
    .await
}

/// Like [`tls_request`] with extra headers and a body.
pub async fn tls_request_with(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<TestResponse, String> {
    let tls = tls_connect(addr, config).await?;
    send(
        TokioIo::new(tls),
        "palisade.test",
        method,
        path,
        headers,
        body.into(),
    )
    .await
}

async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // SVID verification ignores the server name; rustls still needs one.
    connector
        .connect(
            rustls::pki_types::ServerName::try_from("palisade.invalid").unwrap(),
            tcp,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Like [`tls_request`] but speaks HTTP/2 (set ALPN `h2` in `config`).
pub async fn tls_request_h2(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    method: &str,
    path: &str,
) -> Result<TestResponse, String> {
    let tls = tls_connect(addr, config).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri(format!("https://palisade.test{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    collect(response).await
}

/// Sends one plain HTTP/1.1 request (to an outbound listener or an app).
pub async fn plain_request(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
) -> Result<TestResponse, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    send(TokioIo::new(tcp), host, method, path, &[], Bytes::new()).await
}

async fn send<T>(
    io: TokioIo<T>,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<TestResponse, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body)).unwrap())
        .await
        .map_err(|e| format!("{e:?}"))?;
    collect(response).await
}

async fn collect(response: Response<hyper::body::Incoming>) -> Result<TestResponse, String> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}
