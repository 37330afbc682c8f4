//! Listeners: accept connections, run the TLS handshake (inbound), and serve HTTP/1.1 and
//! HTTP/2 with hyper. Refusals that happen before HTTP (plaintext, handshake failures) are
//! audited here, since no request pipeline runs for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use palisade_audit::{AuditRecord, AuthMethod, Decision, Direction};
use palisade_identity::tls::classify_handshake_error;
use palisade_identity::{svid_facts, svid_identity};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::pipeline::{
    request_id, ConnectionInfo, HandleRequest, InboundPipeline, OutboundPipeline,
};
use crate::rejection::render_problem;
use crate::stages::identify::ConnectionIdentity;

/// A handshake that takes longer than this is abandoned (slowloris defence).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves the inbound mTLS listener until `shutdown` flips.
pub async fn serve_inbound(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    pipeline: Arc<InboundPipeline>,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop(listener, shutdown, move |stream, peer, watcher| {
        let acceptor = acceptor.clone();
        let pipeline = pipeline.clone();
        async move {
            let Some(io) = handshake(stream, peer, &acceptor, &pipeline).await else {
                return;
            };
            let identity = io
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| Some((leaf, svid_identity(leaf).ok()?, svid_facts(leaf).ok()?)))
                .map_or(ConnectionIdentity::Anonymous, |(leaf, id, facts)| {
                    ConnectionIdentity::Mtls {
                        id,
                        serial: facts.serial,
                        certificate: leaf.clone().into_owned(),
                    }
                });
            serve_http(io, ConnectionInfo { peer, identity }, pipeline, watcher).await;
        }
    })
    .await;
}

/// Serves the outbound plain-HTTP listener (for the local app) until `shutdown` flips.
pub async fn serve_outbound(
    listener: TcpListener,
    pipeline: Arc<OutboundPipeline>,
    shutdown: watch::Receiver<bool>,
) {
    accept_loop(listener, shutdown, move |stream, peer, watcher| {
        let connection = ConnectionInfo {
            peer,
            identity: ConnectionIdentity::Anonymous,
        };
        serve_http(stream, connection, pipeline.clone(), watcher)
    })
    .await;
}

/// Accepts connections and hands each to `serve` on its own task until `shutdown` flips,
/// then lets open connections finish (bounded by [`DRAIN_TIMEOUT`]).
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, peer, graceful.watcher()));
                }
                Err(e) => accept_error(e).await,
            },
            _ = shutdown.changed() => break,
        }
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection, every request through `pipeline`.
async fn serve_http<I, P>(io: I, connection: ConnectionInfo, pipeline: Arc<P>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: HandleRequest,
{
    let peer = connection.peer;
    let connection = Arc::new(connection);
    let service = service_fn(move |request| {
        let pipeline = pipeline.clone();
        let connection = connection.clone();
        async move { Ok::<_, std::convert::Infallible>(pipeline.handle(&connection, request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

async fn accept_error(e: std::io::Error) {
    // Typically EMFILE: back off instead of spinning.
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Runs the TLS handshake; refusals (plaintext, no or bad certificate, timeout) are audited.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
    pipeline: &InboundPipeline,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => {
            refuse_plaintext(stream, peer, pipeline).await;
            return None;
        }
        // Closed before sending anything (port scans, health probes): nothing to audit.
        Ok(_) => return None,
        Err(_) => {
            audit_refusal(
                pipeline,
                peer,
                Refusal::before_http(
                    "palisade.tls.handshake_timeout",
                    "no TLS handshake within 10 s".into(),
                ),
            )
            .await;
            return None;
        }
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            let rejection = classify_handshake_error(&e);
            tracing::info!(%peer, code = rejection.code, detail = %rejection.detail, "TLS handshake refused");
            audit_refusal(
                pipeline,
                peer,
                Refusal::before_http(rejection.code, rejection.detail),
            )
            .await;
            None
        }
        Err(_) => {
            audit_refusal(
                pipeline,
                peer,
                Refusal::before_http(
                    "palisade.tls.handshake_timeout",
                    "TLS handshake not completed within 10 s".into(),
                ),
            )
            .await;
            None
        }
    }
}

/// Answers a plaintext HTTP request on the mTLS port with a problem, as nginx does, so a
/// misconfigured caller learns why instead of seeing a reset.
async fn refuse_plaintext(mut stream: TcpStream, peer: SocketAddr, pipeline: &InboundPipeline) {
    const CODE: &str = "palisade.identity.plaintext";
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut head))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let line = head[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = std::str::from_utf8(line).unwrap_or("").split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let is_http = version.is_some_and(|v| v.starts_with("HTTP/"));
    let detail = "plaintext connection refused: this port requires mutual TLS with an X.509-SVID client certificate";
    let request_id = request_id(None);
    let status = if is_http {
        let problem = render_problem(
            StatusCode::BAD_REQUEST,
            "Mutual TLS required",
            CODE,
            detail,
            &request_id,
            None,
            &[],
        );
        let body = problem.body();
        let head = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown().await;
        Some(400)
    } else {
        None
    };
    let path = target.map(|t| t.split('?').next().unwrap_or(t).to_owned());
    let refusal = Refusal {
        code: CODE,
        detail: detail.into(),
        method: method.filter(|_| is_http).map(str::to_owned),
        path: path.filter(|_| is_http),
        status,
    };
    audit_refusal(pipeline, peer, refusal).await;
}

/// A connection refused before the request pipeline could run.
struct Refusal {
    code: &'static str,
    detail: String,
    method: Option<String>,
    path: Option<String>,
    status: Option<u16>,
}

impl Refusal {
    /// A refusal during the handshake: no HTTP request was seen.
    fn before_http(code: &'static str, detail: String) -> Self {
        Refusal {
            code,
            detail,
            method: None,
            path: None,
            status: None,
        }
    }
}

async fn audit_refusal(pipeline: &InboundPipeline, peer: SocketAddr, refusal: Refusal) {
    let Refusal {
        code,
        detail,
        method,
        path,
        status,
    } = refusal;
    let record = AuditRecord {
        ts: OffsetDateTime::now_utc(),
        request_id: request_id(None),
        caller: None,
        auth: AuthMethod::None,
        service: pipeline.service.clone(),
        method,
        path,
        route: None,
        decision: Decision::Deny,
        code: Some(code.to_owned()),
        policies: Vec::new(),
        status,
        latency_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        data_classes: Vec::new(),
        peer: Some(peer.to_string()),
        direction: Direction::Inbound,
        detail: Some(detail),
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
    };
    if let Err(e) = pipeline.audit.record(record).await {
        tracing::error!(error = %e, code, "could not audit a refused connection");
    }
}
