//! forward: send the request on (to the local app inbound, to a target's sidecar over mTLS
//! outbound) with hop-by-hop headers removed, the request id set and the verified caller
//! identity passed in `x-forwarded-client-cert` (SVID callers) or `x-palisade-caller` and
//! `x-palisade-scopes` (token callers).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::{Client, Error as ClientError};
use hyper_util::rt::TokioExecutor;
use palisade_audit::AuthMethod;
use palisade_identity::tls::classify_tls_error;
use palisade_identity::SpiffeId;

use crate::context::{CountingBody, RequestContext, REQUEST_ID_HEADER};
use crate::rejection::Rejection;

/// The caller's body as the stages receive it: streamed, and counted for the record.
pub type CountedBody = CountingBody<Incoming>;

/// What the forward stage sends: the caller's body still streaming, or the copy a stage
/// buffered to read it (validate, inspect).
pub type ForwardBody = Either<CountedBody, Full<Bytes>>;

/// Envoy's header for the verified client identity; upstream apps can trust it because the
/// sidecar strips whatever the caller sent.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// The verified caller of a token-authenticated request (the token's `sub`).
pub const CALLER_HEADER: &str = "x-palisade-caller";
/// The scopes of that token, space-separated as in the token.
pub const SCOPES_HEADER: &str = "x-palisade-scopes";

/// How long an upstream may take to send response headers.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named in `Connection`.
/// `Transfer-Encoding` is left to hyper, which re-frames the body itself.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Prepares the headers of a forwarded request.
pub fn prepare_headers(headers: &mut HeaderMap, ctx: &RequestContext, own_id: &SpiffeId) {
    strip_hop_by_hop(headers);
    // Identity headers are only ever the sidecar's own: whatever the caller sent goes.
    for name in [XFCC_HEADER, CALLER_HEADER, SCOPES_HEADER] {
        headers.remove(name);
    }
    if let Ok(id) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    match &ctx.caller {
        Some(caller) if caller.auth == AuthMethod::Jwt => {
            // The token was consumed here (as Envoy's jwt_authn does by default): the app
            // gets the verified facts, and a compromised app cannot replay the token.
            headers.remove(header::AUTHORIZATION);
            if let Ok(v) = HeaderValue::from_str(&caller.id) {
                headers.insert(CALLER_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&caller.scopes.join(" ")) {
                headers.insert(SCOPES_HEADER, v);
            }
        }
        Some(caller) => {
            // Both IDs are validated SPIFFE IDs: ASCII with no separators, always valid here.
            if let Ok(v) = HeaderValue::from_str(&format!("By={own_id};URI={}", caller.id)) {
                headers.insert(XFCC_HEADER, v);
            }
        }
        None => {}
    }
}

fn target_uri(scheme: Scheme, addr: SocketAddr, original: &Uri) -> Result<Uri, http::Error> {
    let path = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let authority: Authority = addr.to_string().parse().map_err(http::Error::from)?;
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
}

/// One hop to forward over: where, as whom, and the pooled client to use.
#[derive(Clone)]
struct Hop<C> {
    scheme: Scheme,
    addr: SocketAddr,
    own_id: SpiffeId,
    client: Client<C, ForwardBody>,
}

impl<C> Hop<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn new(scheme: Scheme, addr: SocketAddr, own_id: SpiffeId, connector: C) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Hop {
            scheme,
            addr,
            own_id,
            client,
        }
    }

    /// Sends the request; `on_error` turns a connection or protocol failure into a refusal.
    async fn send(
        &self,
        ctx: &RequestContext,
        mut request: Request<ForwardBody>,
        pass_caller_header: bool,
        on_error: impl FnOnce(&ClientError) -> Rejection,
    ) -> Result<Response<Incoming>, Rejection> {
        let addr = self.addr.to_string();
        *request.uri_mut() =
            target_uri(self.scheme.clone(), self.addr, request.uri()).map_err(|e| {
                Rejection::UpstreamUnavailable {
                    addr: addr.clone(),
                    detail: e.to_string(),
                }
            })?;
        // HTTP/1.1 towards apps; towards sidecars ALPN may still upgrade the pool to HTTP/2.
        *request.version_mut() = http::Version::HTTP_11;
        prepare_headers(request.headers_mut(), ctx, &self.own_id);
        if !pass_caller_header {
            request.headers_mut().remove(XFCC_HEADER);
        }
        match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(on_error(&e)),
            Err(_) => Err(Rejection::UpstreamTimeout {
                addr,
                seconds: UPSTREAM_TIMEOUT.as_secs(),
            }),
        }
    }

    fn unavailable(&self, err: &ClientError) -> Rejection {
        Rejection::UpstreamUnavailable {
            addr: self.addr.to_string(),
            detail: error_chain(err),
        }
    }
}

fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

/// The local application behind an inbound sidecar, with a pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct LocalUpstream {
    hop: Hop<HttpConnector>,
}

impl LocalUpstream {
    /// A pooled client for the app at `addr`; `own_id` is the sidecar's identity (XFCC `By`).
    pub fn new(addr: SocketAddr, own_id: SpiffeId) -> Self {
        LocalUpstream {
            hop: Hop::new(Scheme::HTTP, addr, own_id, connector()),
        }
    }

    /// Forwards the request and returns the app's response headers (the body streams).
    /// The app learns the verified caller from `x-forwarded-client-cert`.
    pub async fn forward(
        &self,
        ctx: &RequestContext,
        request: Request<ForwardBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        self.hop
            .send(ctx, request, true, |e| self.hop.unavailable(e))
            .await
    }
}

/// A target service's sidecar, reached over mTLS with a client that accepts only the
/// target's configured SPIFFE ID.
#[derive(Clone)]
pub struct MeshTarget {
    name: String,
    hop: Hop<hyper_rustls::HttpsConnector<HttpConnector>>,
}

impl MeshTarget {
    /// A pooled mTLS client for `name` at `addr` using `tls` (from
    /// `palisade_identity::tls::outbound_client_config`).
    pub fn new(
        name: String,
        addr: SocketAddr,
        own_id: SpiffeId,
        tls: rustls::ClientConfig,
    ) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_all_versions()
            .wrap_connector(connector());
        MeshTarget {
            name,
            hop: Hop::new(Scheme::HTTPS, addr, own_id, connector),
        }
    }

    /// The target service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Forwards the request to the target's sidecar. The target learns who calls from our
    /// certificate, never from a header, so no `x-forwarded-client-cert` is sent.
    pub async fn forward(
        &self,
        ctx: &RequestContext,
        request: Request<ForwardBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        self.hop
            .send(ctx, request, false, |e| match find_tls_error(e) {
                Some(tls) => {
                    let rejection = classify_tls_error(tls);
                    Rejection::TargetRejected {
                        code: rejection.code,
                        service: self.name.clone(),
                        detail: rejection.detail,
                    }
                }
                None => self.hop.unavailable(e),
            })
            .await
    }
}

/// The rustls error somewhere in an error's chain. The connector nests it in `io::Error`s
/// (hyper-rustls wraps tokio-rustls' `io::Error` in another), whose payload is reached
/// through `get_ref`, not `source`.
fn find_tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// An error and its causes on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strips_hop_by_hop_headers_and_those_named_in_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn replaces_a_spoofed_client_cert_header_with_the_verified_identity() {
        use crate::context::Caller;
        let mut ctx = RequestContext::new(
            "rid".into(),
            "billing".into(),
            palisade_audit::Direction::Inbound,
            None,
            &http::Method::GET,
            "/",
        );
        ctx.caller = Some(Caller::mtls(&"spiffe://td/ns/a/sa/orders".parse().unwrap()));
        let mut headers = HeaderMap::new();
        headers.insert(
            XFCC_HEADER,
            HeaderValue::from_static("URI=spiffe://td/ns/a/sa/admin"),
        );
        let own: SpiffeId = "spiffe://td/ns/a/sa/billing".parse().unwrap();
        prepare_headers(&mut headers, &ctx, &own);
        assert_eq!(
            headers[XFCC_HEADER],
            "By=spiffe://td/ns/a/sa/billing;URI=spiffe://td/ns/a/sa/orders"
        );
        assert_eq!(headers[REQUEST_ID_HEADER], "rid");
    }
}
