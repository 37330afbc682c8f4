//! The small HTTP/1.1 clients the scenarios use: plain (as an app calls its sidecar's
//! outbound listener, or a misconfigured caller hits an mTLS port) and over TLS (as a
//! caller reaches a sidecar's inbound listener directly).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use palisade_identity::tls::SvidServerVerifier;
use palisade_identity::{SpiffeId, SvidMaterial};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::DemoError;

/// How long one exchange may take, connection included, before it counts as failed.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Header carrying the request id, which sidecars keep and propagate.
pub(crate) const REQUEST_ID_HEADER: &str = palisade_proxy::context::REQUEST_ID_HEADER;

/// One request to send.
#[derive(Clone)]
pub(crate) struct Call {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The Host header: for an outbound listener, the target service's name.
    pub host: String,
    /// An `x-request-id` to send, so the audit records of the call can be found.
    pub request_id: Option<String>,
    /// An `Authorization` header, e.g. `Bearer <access token>`.
    pub authorization: Option<String>,
    /// The body.
    pub body: Body,
}

impl Call {
    /// A call of `method path` with `Host: host`, no request id, no credential, no body.
    pub(crate) fn new(method: Method, host: &str, path: &str) -> Self {
        Call {
            method,
            path: path.to_owned(),
            host: host.to_owned(),
            request_id: None,
            authorization: None,
            body: Body::Empty,
        }
    }
}

// By hand: the Authorization header and a form body carry credentials (an access token,
// a client assertion), which must never reach a log.
impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("request_id", &self.request_id)
            .field("authorization", &self.authorization.as_ref().map(|_| "…"))
            .field("body", &self.body)
            .finish()
    }
}

/// The body of a [`Call`].
#[derive(Clone)]
pub(crate) enum Body {
    /// None.
    Empty,
    /// JSON (`application/json`).
    Json(serde_json::Value),
    /// An HTML form (`application/x-www-form-urlencoded`), as OAuth 2.0 token requests are.
    Form(Vec<(&'static str, String)>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Json(json) => f.debug_tuple("Json").field(json).finish(),
            // The names say what was sent; the values may be credentials.
            Body::Form(fields) => f
                .debug_tuple("Form")
                .field(&fields.iter().map(|(name, _)| *name).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The `code` of an RFC 9457 problem body, if the body is one.
    pub(crate) fn problem_code(&self) -> Option<String> {
        self.member("code")
    }

    /// The `field` of a problem body: where in the request the problem is.
    pub(crate) fn problem_field(&self) -> Option<String> {
        self.member("field")
    }

    /// The `Retry-After` header, if there is one.
    pub(crate) fn retry_after(&self) -> Option<String> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?;
        Some(value.to_owned())
    }

    /// The string member `name` of a JSON object body.
    pub(crate) fn member(&self, name: &str) -> Option<String> {
        let body: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        body.get(name)?.as_str().map(str::to_owned)
    }
}

/// What happened to one call: the client's local address (how a sidecar's audit record
/// names the peer) once connected, and the reply or why there was none.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The client socket's address, once connected.
    pub local: Option<SocketAddr>,
    /// The reply, or the error text.
    pub result: Result<Reply, String>,
}

/// Sends `call` as plain HTTP/1.1 to `addr`.
pub(crate) async fn plain(addr: SocketAddr, call: &Call) -> Exchange {
    bounded(async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| (None, e.to_string()))?;
        let local = tcp.local_addr().ok();
        let reply = send(tcp, call).await.map_err(|e| (local, e))?;
        Ok((local, reply))
    })
    .await
}

/// Sends `call` over TLS to `addr` with `config`.
pub(crate) async fn tls(addr: SocketAddr, config: Arc<ClientConfig>, call: &Call) -> Exchange {
    bounded(async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| (None, e.to_string()))?;
        let local = tcp.local_addr().ok();
        let tls = TlsConnector::from(config)
            .connect(ServerName::from(addr.ip()), tcp)
            .await
            .map_err(|e| (local, format!("TLS handshake failed: {}", chain(&e))))?;
        // With TLS 1.3 the server checks the client certificate after the client has
        // finished its side of the handshake, so a refusal surfaces here, in the request.
        let reply = send(tls, call).await.map_err(|e| (local, e))?;
        Ok((local, reply))
    })
    .await
}

async fn bounded(
    exchange: impl std::future::Future<
        Output = Result<(Option<SocketAddr>, Reply), (Option<SocketAddr>, String)>,
    >,
) -> Exchange {
    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok((local, reply))) => Exchange {
            local,
            result: Ok(reply),
        },
        Ok(Err((local, error))) => Exchange {
            local,
            result: Err(error),
        },
        Err(_) => Exchange {
            local: None,
            result: Err(format!("no answer within {} s", EXCHANGE_TIMEOUT.as_secs())),
        },
    }
}

async fn send<T>(io: T, call: &Call) -> Result<Reply, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| chain(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "demo client connection ended with an error");
        }
    });
    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(call.path.as_str())
        .header(HOST, call.host.as_str());
    if let Some(id) = &call.request_id {
        request = request.header(REQUEST_ID_HEADER, id.as_str());
    }
    if let Some(credentials) = &call.authorization {
        request = request.header(AUTHORIZATION, credentials.as_str());
    }
    let body = match &call.body {
        Body::Empty => Bytes::new(),
        Body::Json(json) => {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(json.to_string())
        }
        Body::Form(fields) => {
            request = request.header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            let form = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter().map(|(name, value)| (*name, value.as_str())))
                .finish();
            Bytes::from(form)
        }
    };
    let request = request.body(Full::new(body)).map_err(|e| chain(&e))?;
    let response = sender.send_request(request).await.map_err(|e| chain(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| chain(&e))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A TLS client configuration that trusts `roots`, accepts only a server presenting
/// `server`, and presents `identity`'s SVID (or no certificate at all).
pub(crate) fn client_config(
    roots: RootCertStore,
    server: SpiffeId,
    identity: Option<&SvidMaterial>,
) -> Result<Arc<ClientConfig>, DemoError> {
    let tls_error = |e: rustls::Error| DemoError::Tls {
        what: "a demo client",
        reason: e.to_string(),
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .dangerous() // Not dangerous: the SVID verifier is stricter than WebPKI's.
            .with_custom_certificate_verifier(Arc::new(SvidServerVerifier::new(roots, server)));
    let mut config = match identity {
        Some(svid) => builder
            .with_client_auth_cert(svid.chain.clone(), svid.key.clone_key())
            .map_err(tls_error)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An error and its causes on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let cause = e.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn reads_the_code_of_a_problem_body() {
        let reply = Reply {
            status: StatusCode::FORBIDDEN,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"status":403,"code":"palisade.authz.denied"}"#),
        };
        assert_eq!(
            reply.problem_code().as_deref(),
            Some("palisade.authz.denied")
        );
        assert_eq!(reply.problem_field(), None);
        let reply = Reply {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"invoice":"42"}"#),
        };
        assert_eq!(reply.problem_code(), None);
    }

    #[test]
    fn reads_the_field_of_a_problem_and_the_retry_after_header() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        let reply = Reply {
            status: StatusCode::BAD_REQUEST,
            headers,
            body: Bytes::from_static(
                br#"{"code":"palisade.schema.unknown_field","field":"/approved_by"}"#,
            ),
        };
        assert_eq!(reply.problem_field().as_deref(), Some("/approved_by"));
        assert_eq!(reply.retry_after().as_deref(), Some("12"));
    }

    #[tokio::test]
    async fn sends_the_authorization_header_and_a_form_body() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 4096];
            // Until the head and the whole body (its Content-Length) have arrived.
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                assert_ne!(n, 0, "the client closed early");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.parse().unwrap());
                    if body.len() >= length {
                        break;
                    }
                }
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let mut call = Call::new(Method::POST, "control", "/oauth2/token");
        call.authorization = Some("Bearer not-a-real-token".into());
        call.body = Body::Form(vec![
            ("grant_type", "client_credentials".into()),
            (
                "client_id",
                "spiffe://palisade.demo/ns/demo/sa/orders".into(),
            ),
        ]);
        let exchange = plain(addr, &call).await;
        assert_eq!(exchange.result.unwrap().status, StatusCode::OK);
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /oauth2/token HTTP/1.1\r\n"),
            "{request}"
        );
        for line in [
            "authorization: Bearer not-a-real-token\r\n",
            "content-type: application/x-www-form-urlencoded\r\n",
        ] {
            assert!(request.contains(line), "{line} missing in {request}");
        }
        assert!(
            request.ends_with(
                "\r\n\r\ngrant_type=client_credentials&client_id=\
                 spiffe%3A%2F%2Fpalisade.demo%2Fns%2Fdemo%2Fsa%2Forders"
            ),
            "{request}"
        );
        // Credentials stay out of logs.
        let debug = format!("{call:?}");
        assert!(
            !debug.contains("not-a-real-token") && !debug.contains("spiffe%3A"),
            "{debug}"
        );
        assert!(debug.contains("grant_type"), "{debug}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_without_a_local_address() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let exchange = plain(addr, &Call::new(Method::GET, "x", "/")).await;
        assert!(exchange.local.is_none());
        assert!(exchange.result.is_err());
    }
}
