//! The demo's workloads: three small HTTP/1.1 apps answering JSON for the routes in their
//! OpenAPI specs, and the impostor, a TLS server holding another service's SVID.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use palisade_proxy::stages::forward::{CALLER_HEADER, XFCC_HEADER};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::DemoError;

/// What a server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// `GET /orders/{id}`.
    Orders,
    /// `GET /invoices`, `GET /invoices/{id}`, `POST /payments`, and `GET /admin/export`,
    /// which its spec does not document.
    Billing,
    /// `GET /customers/{id}` (optionally `?fields=`), `DELETE /customers/{id}`.
    Customers,
    /// Claims to be the service whose port it took, whatever is asked.
    Impostor,
}

impl Workload {
    /// How messages name it.
    fn label(self) -> &'static str {
        match self {
            Workload::Orders => "the orders app",
            Workload::Billing => "the billing app",
            Workload::Customers => "the customers app",
            Workload::Impostor => "the impostor",
        }
    }
}

/// A running server; [`Server::shutdown`] stops it and closes its connections.
pub(crate) struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, closes open connections and waits for the server task.
    pub(crate) async fn shutdown(self) {
        // The task may already have ended; then there is nobody to tell.
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "demo server task failed");
        }
    }
}

/// Starts a plaintext HTTP app on `addr`.
pub(crate) async fn start_app(workload: Workload, addr: SocketAddr) -> Result<Server, DemoError> {
    start(workload, addr, None).await
}

/// Starts the impostor on `addr`, terminating TLS with `tls`.
pub(crate) async fn start_impostor(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
) -> Result<Server, DemoError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    start(Workload::Impostor, addr, Some(acceptor)).await
}

async fn start(
    workload: Workload,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> Result<Server, DemoError> {
    let what = workload.label();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Listen {
            what: what.to_owned(),
            addr,
            source,
        })?;
    tracing::debug!(%addr, what, "demo server listening");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, tls, workload, stopped));
    Ok(Server { stop, task })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    workload: Workload,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, tls.clone(), workload));
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "demo server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set aborts connections still open (idle keep-alives from sidecars).
    connections.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    workload: Workload,
) {
    let service = service_fn(move |request| handle(workload, request));
    let builder = auto::Builder::new(TokioExecutor::new());
    let served = match tls {
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "impostor: TLS handshake failed");
                return;
            }
        },
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "demo server connection ended with an error");
    }
}

async fn handle(
    workload: Workload,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let caller = verified_caller(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let (status, body) = match request.into_body().collect().await {
        Ok(body) => answer(
            workload,
            &method,
            &Target {
                path: &path,
                query: query.as_deref(),
            },
            caller.as_deref(),
            &body.to_bytes(),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json!({ "error": format!("could not read the request body: {e}") }),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The caller the sidecar verified: a certificate caller in `x-forwarded-client-cert`, a
/// token caller in `x-palisade-caller` (the sidecar removes any copies a caller sent).
fn verified_caller(headers: &HeaderMap) -> Option<String> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    header(XFCC_HEADER)
        .and_then(caller_from_xfcc)
        .or_else(|| header(CALLER_HEADER))
        .map(str::to_owned)
}

/// The verified caller a sidecar passes in `x-forwarded-client-cert` (`By=...;URI=<id>`).
pub(crate) fn caller_from_xfcc(xfcc: &str) -> Option<&str> {
    xfcc.split(';')
        .find_map(|element| element.trim().strip_prefix("URI="))
}

/// The path and raw query string of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The path.
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
}

impl Target<'_> {
    /// The raw (still percent-encoded) value of query parameter `name`.
    fn param(&self, name: &str) -> Option<&str> {
        self.query?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(key, value)| (key == name).then_some(value))
    }
}

/// The invoices the billing app knows: id, amount in cents, currency, customer.
const INVOICES: [(&str, u64, &str, &str); 3] = [
    ("41", 4500, "EUR", "7"),
    ("42", 1999, "EUR", "7"),
    ("43", 12000, "GBP", "8"),
];

fn invoice_json((id, amount_cents, currency, _customer): (&str, u64, &str, &str)) -> Value {
    json!({ "invoice": id, "amount_cents": amount_cents, "currency": currency })
}

/// What `workload` answers to `method target`, as status and JSON body.
pub(crate) fn answer(
    workload: Workload,
    method: &Method,
    target: &Target<'_>,
    caller: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let path = target.path;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let found = match (workload, method, segments.as_slice()) {
        (Workload::Orders, &Method::GET, ["orders", id]) => Some(json!({
            "order": id, "status": "shipped", "total_cents": 1999,
        })),
        (Workload::Billing, &Method::GET, ["invoices"]) => {
            // Ids are digits, so the raw value of `q` is what an id would contain.
            let q = target.param("q").unwrap_or("");
            let limit = target
                .param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(INVOICES.len());
            let invoices: Vec<Value> = INVOICES
                .into_iter()
                .filter(|(id, ..)| id.contains(q))
                .take(limit)
                .map(invoice_json)
                .collect();
            Some(json!({ "invoices": invoices }))
        }
        (Workload::Billing, &Method::GET, ["invoices", id]) => Some(json!({
            "invoice": id, "amount_cents": 1999, "currency": "EUR",
        })),
        // A leftover the billing spec does not document: every invoice with its customer.
        // The billing sidecar refuses the path (palisade.schema.unknown_route), so no
        // caller in the mesh ever gets here.
        (Workload::Billing, &Method::GET, ["admin", "export"]) => {
            let rows: Vec<Value> = INVOICES
                .into_iter()
                .map(|invoice| {
                    let mut row = invoice_json(invoice);
                    row["customer"] = Value::from(invoice.3);
                    row
                })
                .collect();
            Some(json!({ "export": rows }))
        }
        (Workload::Billing, &Method::POST, ["payments"]) => {
            let payment: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            match (
                &payment["invoice"],
                &payment["amount_cents"],
                &payment["currency"],
            ) {
                (Value::String(invoice), Value::Number(amount), Value::String(currency)) => {
                    Some(json!({
                        "payment": "accepted", "invoice": invoice,
                        "amount_cents": amount, "currency": currency,
                    }))
                }
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        json!({ "error": "expected a JSON body with \"invoice\" (string), \"amount_cents\" (integer) and \"currency\" (string)" }),
                    )
                }
            }
        }
        (Workload::Customers, &Method::GET, ["customers", id]) => {
            let mut customer = json!({
                "customer": id, "name": "Ada Lovelace", "email": "ada@example.com",
            });
            if let (Some(fields), Value::Object(all)) = (target.param("fields"), &mut customer) {
                let wanted: Vec<&str> = fields.split(',').collect();
                all.retain(|key, _| key == "customer" || wanted.contains(&key.as_str()));
            }
            Some(customer)
        }
        (Workload::Customers, &Method::DELETE, ["customers", id]) => Some(json!({ "deleted": id })),
        // A debug page nobody documented: a shadow API the inventory finds in traffic.
        (Workload::Customers, &Method::GET, ["internal", "debug"]) => Some(json!({
            "build": "2026.11.30", "cache_entries": 42, "last_admin_email": "ops@example.com",
        })),
        (Workload::Impostor, _, _) => Some(json!({
            "in_stock": 0,
            "served_by": "an impostor holding the customers SVID",
        })),
        _ => None,
    };
    match found {
        Some(mut body) => {
            if let (Some(caller), Value::Object(fields)) = (caller, &mut body) {
                fields.insert("caller".into(), Value::from(caller));
            }
            (StatusCode::OK, body)
        }
        None => (
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no route for {method} {path}") }),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const ORDERS: &str = "spiffe://palisade.demo/ns/demo/sa/orders";

    /// `workload`'s answer to `method uri` (a path with an optional query string).
    fn ask(
        workload: Workload,
        method: Method,
        uri: &str,
        caller: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let (path, query) = match uri.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (uri, None),
        };
        answer(workload, &method, &Target { path, query }, caller, body)
    }

    #[test]
    fn reads_the_caller_from_the_sidecars_header() {
        let xfcc = format!("By=spiffe://palisade.demo/ns/demo/sa/billing;URI={ORDERS}");
        assert_eq!(caller_from_xfcc(&xfcc), Some(ORDERS));
        assert_eq!(caller_from_xfcc("By=x"), None);
        let mut headers = HeaderMap::new();
        headers.insert(CALLER_HEADER, HeaderValue::from_static("reporting-job"));
        assert_eq!(verified_caller(&headers).as_deref(), Some("reporting-job"));
        headers.insert(XFCC_HEADER, HeaderValue::from_str(&xfcc).unwrap());
        assert_eq!(verified_caller(&headers).as_deref(), Some(ORDERS));
    }

    #[test]
    fn answers_the_routes_of_each_spec() {
        let (status, body) = ask(
            Workload::Billing,
            Method::GET,
            "/invoices/42",
            Some(ORDERS),
            b"",
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"invoice": "42", "amount_cents": 1999, "currency": "EUR", "caller": ORDERS})
        );
        let (status, body) = ask(Workload::Orders, Method::GET, "/orders/9", None, b"");
        assert_eq!((status, &body["order"]), (StatusCode::OK, &json!("9")));
        let (status, body) = ask(Workload::Customers, Method::GET, "/customers/7", None, b"");
        assert_eq!((status, &body["customer"]), (StatusCode::OK, &json!("7")));
        assert_eq!(body["email"], "ada@example.com");
        let (status, body) = ask(
            Workload::Customers,
            Method::DELETE,
            "/customers/7",
            None,
            b"",
        );
        assert_eq!((status, &body["deleted"]), (StatusCode::OK, &json!("7")));
    }

    #[test]
    fn searches_invoices_by_id_and_honours_the_limit() {
        let (status, body) = ask(Workload::Billing, Method::GET, "/invoices", None, b"");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["invoices"].as_array().unwrap().len(), INVOICES.len());
        let (_, body) = ask(Workload::Billing, Method::GET, "/invoices?q=42", None, b"");
        assert_eq!(
            body["invoices"],
            json!([{"invoice": "42", "amount_cents": 1999, "currency": "EUR"}])
        );
        let (_, body) = ask(
            Workload::Billing,
            Method::GET,
            "/invoices?limit=1&q=4",
            None,
            b"",
        );
        assert_eq!(body["invoices"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn returns_only_the_customer_fields_asked_for() {
        let (status, body) = ask(
            Workload::Customers,
            Method::GET,
            "/customers/7?fields=email",
            None,
            b"",
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"customer": "7", "email": "ada@example.com"}));
    }

    #[test]
    fn billing_serves_an_export_its_spec_does_not_document() {
        // The app would leak it: refusing the path is the billing sidecar's doing.
        let (status, body) = ask(Workload::Billing, Method::GET, "/admin/export", None, b"");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["export"].as_array().unwrap().len(), INVOICES.len());
        assert_eq!(body["export"][0]["customer"], "7");
        let spec = include_str!("../assets/specs/billing.yaml");
        assert!(!spec.contains("/admin"));
    }

    #[test]
    fn takes_a_payment_and_refuses_a_malformed_one() {
        let (status, body) = ask(
            Workload::Billing,
            Method::POST,
            "/payments",
            None,
            br#"{"invoice": "42", "amount_cents": 1999, "currency": "EUR"}"#,
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"payment": "accepted", "invoice": "42", "amount_cents": 1999, "currency": "EUR"})
        );
        let (status, _) = ask(Workload::Billing, Method::POST, "/payments", None, b"{}");
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unknown_routes_and_methods_are_not_found() {
        for (workload, method, path) in [
            (Workload::Billing, Method::DELETE, "/invoices/42"),
            (Workload::Orders, Method::GET, "/orders"),
            (Workload::Customers, Method::GET, "/invoices/1"),
            (Workload::Customers, Method::GET, "/admin/export"),
        ] {
            let (status, body) = ask(workload, method.clone(), path, None, b"");
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert!(body["error"].as_str().unwrap().contains(path));
        }
    }

    #[test]
    fn the_impostor_answers_anything() {
        let (status, body) = ask(Workload::Impostor, Method::GET, "/stock/1", None, b"");
        assert_eq!(status, StatusCode::OK);
        assert!(body["served_by"].as_str().unwrap().contains("impostor"));
    }

    #[tokio::test]
    async fn serves_its_routes_over_http_until_shut_down() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let server = start_app(Workload::Billing, addr).await.unwrap();
        let call = crate::client::Call::new(Method::GET, "billing", "/invoices?q=42");
        let reply = crate::client::plain(addr, &call).await.result.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["invoices"][0]["invoice"], "42");
        assert_eq!(body["invoices"].as_array().unwrap().len(), 1);
        server.shutdown().await;
        assert!(crate::client::plain(addr, &call).await.result.is_err());
    }
}
