//! The control plane's HTTPS server: TLS with an optional client SVID, HTTP/1.1 (hyper),
//! one routing table ([`ROUTES`]), one handler per endpoint, one audit record per request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::PolicyBundle;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use palisade_audit::{AuditHandle, AuditRecord, AuthMethod, Decision, Direction};
use palisade_identity::tls::classify_handshake_error;
use palisade_identity::{
    roots_from_pem, CertificateAuthority, IdentityError, SpiffeId, TrustBundle, DEFAULT_SVID_TTL,
};
use palisade_token::{
    ClientRegistry, RegisteredClient, TokenIssuer, TokenResponse, DEFAULT_KEY_ROTATION,
    DEFAULT_TOKEN_TTL, JWKS_PATH, TOKEN_ENDPOINT_PATH,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::api::{BundleResponse, JoinRequest, RenewRequest, SvidResponse};
use crate::certs::{parse_csr, PeerSvid};
use crate::problem::{problem_response, Reason, Refusal};
use crate::state::{ControlState, Issued, JOIN_TOKEN_PREFIX};
use crate::tls::{certified_key, server_config, RotatingCert};
use crate::ControlError;

/// The `service` of every audit record the control plane writes.
pub const AUDIT_SERVICE: &str = "palisade-control";
/// Lifetime of the control plane's own SVID. It is re-issued at half-life while the
/// server runs, so clients never see one with less than 12 h left.
pub const CONTROL_SVID_TTL: Duration = Duration::from_secs(24 * 3600);
/// A handshake that takes longer than this is abandoned (slowloris defence); the same
/// bound applies to reading a request's headers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may finish after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after its SVID expired a workload may still renew with it. A sidecar cut off
/// from the control plane past its expiry thus recovers by itself when the control plane
/// returns; beyond this it needs a new join token. The expired SVID is accepted for
/// `/v1/renew` only, and revocation still applies.
pub const RENEWAL_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Largest request body accepted (a CSR is under 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Wait before retrying a failed rotation of the control plane's SVID.
const ROTATION_RETRY: Duration = Duration::from_secs(60);
/// How often the CA directory is checked for a rollover step made by another process,
/// when no request does it first.
pub const CA_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Directory (under the state directory) of the OAuth token signing keys.
pub const OAUTH_KEYS_DIR: &str = "oauth-keys";
/// How often the token signing keys are checked for rotation.
pub const OAUTH_KEY_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// `Cache-Control` of the JWKS: sidecars may keep it a minute (an unknown `kid` makes
/// them refetch anyway).
const JWKS_CACHE_CONTROL: &str = "max-age=60";

/// The OAuth 2.0 token endpoint (client credentials) and the JWKS, served by the control
/// plane when configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// Who may get tokens, how they authenticate, which scopes on which audience.
    pub clients: Vec<RegisteredClient>,
    /// Lifetime of the access tokens (default 5 min).
    pub token_ttl: Duration,
    /// Signing-key rotation period (default 24 h).
    pub key_rotation: Duration,
    /// The `iss` of the tokens and the base of the token endpoint URL: the URL clients and
    /// sidecars use (`[control] url`). `None`: `https://<bound address>`, which is only
    /// right when they reach the control plane at that address.
    pub issuer: Option<String>,
}

impl OAuthSettings {
    /// These clients with the default token TTL (5 min) and key rotation (24 h), issuing
    /// as `https://<bound address>`.
    pub fn new(clients: Vec<RegisteredClient>) -> Self {
        OAuthSettings {
            clients,
            token_ttl: DEFAULT_TOKEN_TTL,
            key_rotation: DEFAULT_KEY_ROTATION,
            issuer: None,
        }
    }
}

/// How to run the control plane.
#[derive(Debug, Clone)]
pub struct ControlServerConfig {
    /// The state directory: the CA in `ca/`, the database `control.db`.
    pub state_dir: PathBuf,
    /// The HTTPS listen address (port 0 picks a free one; see [`RunningControl::addr`]).
    pub listen: SocketAddr,
    /// The trust domain; must be the CA's.
    pub trust_domain: String,
    /// Lifetime of the SVIDs issued to workloads (default 1 h).
    pub svid_ttl: Duration,
    /// Where audit records go.
    pub audit: AuditHandle,
    /// The OAuth token endpoint and JWKS; `None` (the default) leaves them unmounted
    /// (404). Signing keys live in `<state_dir>/oauth-keys/`; the issuer is
    /// [`OAuthSettings::issuer`].
    pub oauth: Option<OAuthSettings>,
    /// The directory of `*.cedar` files served to sidecars at `GET /v1/policies` (mTLS
    /// callers only); `None` answers 404.
    pub policy_dir: Option<PathBuf>,
    /// Keep the live API inventory under `<state_dir>/inventory/`, rebuilt from the audit
    /// database every interval; `None` (the default) keeps none.
    pub inventory: Option<crate::inventory::InventoryRefresh>,
}

impl ControlServerConfig {
    /// A configuration with the default SVID TTL (1 h).
    pub fn new(
        state_dir: PathBuf,
        listen: SocketAddr,
        trust_domain: impl Into<String>,
        audit: AuditHandle,
    ) -> Self {
        ControlServerConfig {
            state_dir,
            listen,
            trust_domain: trust_domain.into(),
            svid_ttl: DEFAULT_SVID_TTL,
            audit,
            oauth: None,
            policy_dir: None,
            inventory: None,
        }
    }
}

/// The control plane server.
#[derive(Debug)]
pub struct ControlServer;

/// A started control plane. Call [`shutdown`](Self::shutdown) to stop it.
#[derive(Debug)]
pub struct RunningControl {
    /// The bound address.
    pub addr: SocketAddr,
    /// The identity the server presents: `spiffe://<trust domain>/palisade/control`.
    pub spiffe_id: SpiffeId,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningControl {
    /// Stops accepting connections, lets in-flight requests finish (at most
    /// [`DRAIN_TIMEOUT`]) and stops the SVID and signing-key rotations. Every request answered has been
    /// handed to the audit writer by the time this returns.
    pub async fn shutdown(self) {
        // Receivers live in the tasks; if they are all gone there is nothing to stop.
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "control plane task failed");
            }
        }
    }
}

impl ControlServer {
    /// Opens the state, issues the control plane's own SVID (24 h, re-issued at
    /// half-life), binds `config.listen` and starts serving.
    ///
    /// Opening the state and signing block briefly (SQLite, key generation) before the
    /// first await: call it at start-up, not on a hot path.
    pub async fn start(config: ControlServerConfig) -> Result<RunningControl, ControlError> {
        if config.svid_ttl.is_zero() {
            return Err(ControlError::InvalidTtl);
        }
        let state = Arc::new(ControlState::open(&config.state_dir)?);
        if state.trust_domain() != config.trust_domain {
            return Err(ControlError::TrustDomainMismatch {
                configured: config.trust_domain,
                ca: state.trust_domain().to_owned(),
            });
        }
        let spiffe_id = state.control_id()?;
        let issued_at = OffsetDateTime::now_utc();
        let (own, serial) = state.issue_own(CONTROL_SVID_TTL)?;
        tracing::info!(spiffe_id = %spiffe_id, %serial, not_after = %own.not_after, "issued the control plane's SVID");
        let cert = Arc::new(RotatingCert::new(certified_key(&own)?));
        let ca = state.ca();
        let trust = TrustBundle::from_pem(ca.bundle_pem()).map_err(IdentityError::from)?;
        remember_retired(&trust, &ca);
        let tls = server_config(trust.clone(), state.trust_domain(), cert.clone())?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ControlError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ControlError::Bind {
            addr: config.listen,
            source,
        })?;
        let oauth = match config.oauth {
            Some(settings) => Some(Arc::new(open_oauth(&config.state_dir, addr, settings)?)),
            None => None,
        };
        let (ca_changed, active_root) = watch::channel(ca.fingerprint().to_owned());
        let ctx = Arc::new(Context {
            trust,
            ca_changed,
            ca_sync: tokio::sync::Mutex::new(()),
            state: state.clone(),
            audit: config.audit,
            svid_ttl: config.svid_ttl,
            oauth: oauth.clone(),
            policy_dir: config.policy_dir.clone(),
        });
        let (shutdown, receiver) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let mut tasks = Vec::with_capacity(4);
        if let Some(oauth) = oauth {
            tasks.push(tokio::spawn(rotate_signing_keys(oauth, receiver.clone())));
        }
        if let Some(refresh) = config.inventory {
            tasks.push(tokio::spawn(crate::inventory::refresh_forever(
                Arc::new(refresh),
                config.state_dir.join(crate::inventory::INVENTORY_DIR),
                receiver.clone(),
            )));
        }
        tasks.extend([
            tokio::spawn(watch_ca(ctx.clone(), receiver.clone())),
            tokio::spawn(accept_loop(listener, acceptor, ctx, receiver.clone())),
            tokio::spawn(rotate_own_svid(
                state,
                cert,
                OwnSvid {
                    issued_at,
                    not_after: own.not_after,
                },
                active_root,
                receiver,
            )),
        ]);
        tracing::info!(%addr, spiffe_id = %spiffe_id, "control plane listening");
        Ok(RunningControl {
            addr,
            spiffe_id,
            shutdown,
            tasks,
        })
    }
}

/// What every request handler shares.
struct Context {
    state: Arc<ControlState>,
    /// The roots client certificates are checked against (the served bundle).
    trust: Arc<TrustBundle>,
    /// The fingerprint of the root that signs; the own-SVID task re-issues on a change.
    ca_changed: watch::Sender<String>,
    /// Held while a CA change is loaded and applied, so whoever calls [`follow_ca`]
    /// returns only once the handshake trust matches the state.
    ca_sync: tokio::sync::Mutex<()>,
    audit: AuditHandle,
    svid_ttl: Duration,
    oauth: Option<Arc<OAuth>>,
    policy_dir: Option<PathBuf>,
}

/// Picks up a CA rollover step made by `palisade control ca` in another process: the
/// served bundle and the handshake trust follow it, and a new active root makes the
/// server re-issue its own SVID from it.
///
/// Called before every request that depends on the CA (join, renew, bundle) and every
/// [`CA_CHECK_INTERVAL`] in the background. Re-checking costs two `stat` calls when
/// nothing changed: cheaper and simpler than a file watcher, and exact, since the CLI and
/// the server share nothing but the directory. So an answer given after a step completed
/// always reflects it.
async fn follow_ca(ctx: &Context) {
    let _applying = ctx.ca_sync.lock().await;
    let state = ctx.state.clone();
    match tokio::task::spawn_blocking(move || state.refresh_ca()).await {
        Ok(Ok(Some(ca))) => {
            match ctx.trust.replace_pem(ca.bundle_pem()) {
                Ok(change) => tracing::info!(
                    added = change.added,
                    removed = change.removed,
                    active_root = ca.fingerprint(),
                    "CA changed; serving the new trust bundle"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "the CA's new bundle is unusable; keeping the old one for handshakes")
                }
            }
            remember_retired(&ctx.trust, &ca);
            ctx.ca_changed.send_if_modified(|active| {
                let changed = *active != ca.fingerprint();
                if changed {
                    ca.fingerprint().clone_into(active);
                }
                changed
            });
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reloading the changed CA failed; still using the one loaded before")
        }
        Err(e) => tracing::error!(error = %e, "the CA reload task failed"),
    }
}

/// Lets the handshake name SVIDs of retired roots as such (`palisade.identity.retired_root`).
fn remember_retired(trust: &TrustBundle, ca: &CertificateAuthority) {
    if ca.retired_pem().is_empty() {
        return;
    }
    let remembered =
        roots_from_pem(ca.retired_pem()).and_then(|roots| trust.remember_retired(roots));
    if let Err(e) = remembered {
        tracing::warn!(error = %e, "retired roots unreadable; their SVIDs are refused as untrusted");
    }
}

/// Checks the CA directory every [`CA_CHECK_INTERVAL`] until shutdown, so the handshake
/// trust and the server's own SVID follow a rollover even without requests.
async fn watch_ca(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(CA_CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => follow_ca(&ctx).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// The token issuer and who may use it.
struct OAuth {
    issuer: TokenIssuer,
    clients: ClientRegistry,
}

/// Opens the signing keys (rotating them if due) and the client registry: a client
/// registry with an unusable key or a repeated client id is refused.
fn open_oauth(
    state_dir: &std::path::Path,
    addr: SocketAddr,
    settings: OAuthSettings,
) -> Result<OAuth, ControlError> {
    let clients = ClientRegistry::try_new(settings.clients)?;
    let issuer_url = settings.issuer.unwrap_or_else(|| format!("https://{addr}"));
    let issuer = TokenIssuer::open(
        &state_dir.join(OAUTH_KEYS_DIR),
        &issuer_url,
        settings.token_ttl,
        settings.key_rotation,
    )?;
    if issuer.rotate_if_due(OffsetDateTime::now_utc())? {
        tracing::info!("rotated the token signing key");
    }
    tracing::info!(issuer = issuer.issuer(), "OAuth token endpoint enabled");
    Ok(OAuth { issuer, clients })
}

/// Checks the token signing keys for rotation every [`OAUTH_KEY_CHECK_INTERVAL`], until
/// shutdown. A failure is logged and retried at the next check.
async fn rotate_signing_keys(oauth: Arc<OAuth>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(OAUTH_KEY_CHECK_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let rotating = oauth.clone();
        let result = tokio::task::spawn_blocking(move || {
            rotating.issuer.rotate_if_due(OffsetDateTime::now_utc())
        })
        .await;
        match result {
            Ok(Ok(true)) => tracing::info!("rotated the token signing key"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "rotating the token signing key failed"),
            Err(e) => tracing::error!(error = %e, "the signing-key rotation task failed"),
        }
    }
}

/// What a connection knows about its peer.
struct Connection {
    addr: SocketAddr,
    /// The verified client SVID, when one was presented.
    peer: Option<PeerSvid>,
    /// The DER of the verified client certificate, when one was presented (SVID or not).
    peer_der: Option<Vec<u8>>,
}

/// When the control plane's SVID in use was issued and when it expires.
struct OwnSvid {
    issued_at: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// Re-issues the control plane's SVID at half its lifetime, and at once when another root
/// becomes the signer (so clients that only trust the new root, after the old one is
/// retired, still trust the server), until shutdown.
async fn rotate_own_svid(
    state: Arc<ControlState>,
    cert: Arc<RotatingCert>,
    own: OwnSvid,
    mut active_root: watch::Receiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let OwnSvid {
        mut issued_at,
        mut not_after,
    } = own;
    let mut retry = false;
    loop {
        let wait = if retry {
            ROTATION_RETRY
        } else {
            until_half_life(issued_at, not_after, OffsetDateTime::now_utc())
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = active_root.changed() => {
                if changed.is_err() {
                    // The server's context is gone: it is shutting down.
                    return;
                }
                tracing::info!(active_root = %*active_root.borrow_and_update(), "re-issuing the control plane's SVID from the new active root");
            }
            _ = shutdown.changed() => return,
        }
        let now = OffsetDateTime::now_utc();
        let issuing = state.clone();
        let result = tokio::task::spawn_blocking(move || {
            let (svid, serial) = issuing.issue_own(CONTROL_SVID_TTL)?;
            Ok::<_, ControlError>((certified_key(&svid)?, svid.not_after, serial))
        })
        .await;
        match result {
            Ok(Ok((key, new_not_after, serial))) => {
                cert.replace(key);
                issued_at = now;
                not_after = new_not_after;
                retry = false;
                tracing::info!(%serial, not_after = %not_after, "rotated the control plane's SVID");
            }
            Ok(Err(e)) => {
                retry = true;
                tracing::error!(error = %e, "rotating the control plane's SVID failed; retrying in 60 s");
            }
            Err(e) => {
                retry = true;
                tracing::error!(error = %e, "the SVID rotation task failed; retrying in 60 s");
            }
        }
    }
}

/// How long from `now` until half of the validity `issued_at..not_after` has passed
/// (zero if it already has).
fn until_half_life(
    issued_at: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Duration {
    let half_life = issued_at + (not_after - issued_at) / 2;
    Duration::try_from(half_life - now).unwrap_or(Duration::ZERO)
}

/// Accepts connections until shutdown, then drains them (bounded by [`DRAIN_TIMEOUT`]).
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let watcher = graceful.watcher();
                    let acceptor = acceptor.clone();
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let Some(tls) = handshake(stream, addr, &acceptor, &ctx).await else {
                            return;
                        };
                        let leaf = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first());
                        let peer = leaf.and_then(PeerSvid::from_leaf);
                        let peer_der = leaf.map(|der| der.as_ref().to_vec());
                        let connection = Arc::new(Connection { addr, peer, peer_der });
                        let service = service_fn(move |request| {
                            let ctx = ctx.clone();
                            let connection = connection.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    handle(&ctx, &connection, request).await,
                                )
                            }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HANDSHAKE_TIMEOUT)
                            .serve_connection(TokioIo::new(tls), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%addr, error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// Runs the TLS handshake; a refused client certificate is audited.
async fn handshake(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: &TlsAcceptor,
    ctx: &Context,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let (code, detail) =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => return Some(tls),
            Ok(Err(e)) => {
                let rejection = classify_handshake_error(&e);
                (rejection.code, rejection.detail)
            }
            Err(_) => (
                "palisade.tls.handshake_timeout",
                "TLS handshake not completed within 10 s".to_owned(),
            ),
        };
    tracing::info!(%addr, code, %detail, "TLS handshake refused");
    let record = AuditRecord {
        ts: OffsetDateTime::now_utc(),
        request_id: uuid::Uuid::now_v7().to_string(),
        caller: None,
        auth: AuthMethod::None,
        service: AUDIT_SERVICE.to_owned(),
        method: None,
        path: None,
        route: None,
        decision: Decision::Deny,
        code: Some(code.to_owned()),
        policies: Vec::new(),
        status: None,
        latency_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        data_classes: Vec::new(),
        peer: Some(addr.to_string()),
        direction: Direction::Inbound,
        detail: Some(detail),
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
    };
    if let Err(e) = ctx.audit.record(record).await {
        tracing::error!(error = %e, %addr, "could not audit a refused handshake");
    }
    None
}

/// The endpoints. The one place where requests are routed: add a row (and a match arm
/// in [`dispatch`]) to mount another endpoint.
const ROUTES: &[(&str, Method, Route)] = &[
    ("/v1/join", Method::POST, Route::Join),
    ("/v1/renew", Method::POST, Route::Renew),
    ("/v1/bundle", Method::GET, Route::Bundle),
    ("/v1/revocations", Method::GET, Route::Revocations),
    ("/v1/policies", Method::GET, Route::Policies),
    (TOKEN_ENDPOINT_PATH, Method::POST, Route::Token),
    (JWKS_PATH, Method::GET, Route::Jwks),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Policies,
    Join,
    Renew,
    Bundle,
    Revocations,
    Token,
    Jwks,
}

impl Route {
    /// Whether the endpoint exists only when OAuth is configured.
    fn is_oauth(self) -> bool {
        matches!(self, Route::Token | Route::Jwks)
    }
}

/// Finds the route of a request: 404 for an unknown path (or an OAuth endpoint when
/// OAuth is not configured), 405 (with the allowed method) for a known path and another
/// method.
fn route(
    method: &Method,
    path: &str,
    oauth: bool,
) -> Result<(Route, &'static str), (Refusal, Option<Method>)> {
    let found = ROUTES
        .iter()
        .find(|(p, _, r)| *p == path && (oauth || !r.is_oauth()));
    let Some((template, allowed, route)) = found else {
        return Err((Refusal::new(Reason::NotFound, "no such endpoint"), None));
    };
    if method != allowed {
        return Err((
            Refusal::new(
                Reason::MethodNotAllowed,
                format!("{template} accepts {allowed} only"),
            ),
            Some(allowed.clone()),
        ));
    }
    Ok((*route, template))
}

/// Facts about a request that end up in its audit record.
struct Facts {
    caller: Option<String>,
    detail: Option<String>,
    bytes_in: u64,
    /// The refusal code of a handler that answers refusals itself (the token endpoint's
    /// RFC 6749 errors): the request is audited as denied with it.
    refused: Option<&'static str>,
}

/// Serves one request: route, dispatch, render, audit. Exactly one audit record per
/// request; if the audit log is gone the request is refused unrecorded (logged).
async fn handle(
    ctx: &Context,
    connection: &Connection,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let ts = OffsetDateTime::now_utc();
    let request_id = uuid::Uuid::now_v7().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let slot = match ctx.audit.reserve().await {
        Ok(slot) => Some(slot),
        Err(e) => {
            tracing::error!(error = %e, %method, %path, "audit log unavailable; refusing the request");
            None
        }
    };
    let mut facts = Facts {
        caller: connection.peer.as_ref().map(|p| p.spiffe_id.to_string()),
        detail: None,
        bytes_in: 0,
        refused: None,
    };
    let mut matched = None;
    let result = match (&slot, route(&method, &path, ctx.oauth.is_some())) {
        (None, _) => Err((
            Refusal::new(
                Reason::AuditUnavailable,
                "the audit log is unavailable; requests are refused until it is back",
            ),
            None,
        )),
        (Some(_), Ok((found, template))) => {
            matched = Some(template);
            dispatch(found, ctx, connection, request, &mut facts)
                .await
                .map_err(|refusal| (refusal, None))
        }
        (Some(_), Err(refused)) => Err(refused),
    };
    let (response, code) = match result {
        Ok(response) => (response, facts.refused),
        Err((refusal, allow)) => {
            let mut response = problem_response(&refusal, &request_id);
            if let Some(allow) = allow {
                if let Ok(value) = HeaderValue::from_str(allow.as_str()) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
            }
            facts.detail = Some(refusal.detail);
            (response, Some(refusal.reason.code()))
        }
    };
    let bytes_out = response.body().len() as u64;
    let mut response = response.map(Full::new);
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    let status = response.status();
    if let Some(slot) = slot {
        slot.send(AuditRecord {
            ts,
            request_id,
            auth: if connection.peer.is_some() {
                AuthMethod::Mtls
            } else {
                AuthMethod::None
            },
            caller: facts.caller,
            service: AUDIT_SERVICE.to_owned(),
            method: Some(method.to_string()),
            path: Some(path),
            route: matched.map(str::to_owned),
            decision: if code.is_none() {
                Decision::Allow
            } else {
                Decision::Deny
            },
            code: code.map(str::to_owned),
            policies: Vec::new(),
            status: Some(status.as_u16()),
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            bytes_in: facts.bytes_in,
            bytes_out,
            data_classes: Vec::new(),
            peer: Some(connection.addr.to_string()),
            direction: Direction::Inbound,
            detail: facts.detail,
            findings: Vec::new(),
            ratelimit_degraded: false,
            shape: None,
        });
    }
    response
}

async fn dispatch(
    route: Route,
    ctx: &Context,
    connection: &Connection,
    request: Request<Incoming>,
    facts: &mut Facts,
) -> Result<Response<Bytes>, Refusal> {
    match route {
        Route::Join => join(ctx, request, facts).await,
        Route::Renew => renew(ctx, connection, request, facts).await,
        Route::Bundle => Ok(bundle(ctx, request.headers()).await),
        Route::Revocations => revocations(ctx, request.headers()).await,
        Route::Policies => policies(ctx, connection, request.headers()),
        Route::Token => token(ctx, connection, request, facts).await,
        Route::Jwks => jwks(ctx),
    }
}

/// The OAuth issuer of a route that [`route`] only finds when OAuth is configured.
fn oauth_of(ctx: &Context) -> Result<Arc<OAuth>, Refusal> {
    ctx.oauth
        .clone()
        .ok_or_else(|| Refusal::new(Reason::NotFound, "no such endpoint"))
}

/// `POST /oauth2/token`: an access token for a registered client (RFC 6749 §4.4), over
/// the connection's client certificate (`tls_client_auth`) or a client assertion
/// (`private_key_jwt`). Refusals are RFC 6749 §5.2 JSON, audited with their
/// `palisade.token.*` code; neither the token nor an assertion is ever audited.
async fn token(
    ctx: &Context,
    connection: &Connection,
    request: Request<Incoming>,
    facts: &mut Facts,
) -> Result<Response<Bytes>, Refusal> {
    let oauth = oauth_of(ctx)?;
    let body = read_body(request, "application/x-www-form-urlencoded", facts).await?;
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    // An SVID admitted in its renewal grace (expired) authenticates nothing but renewal.
    let cert = connection.peer_der.clone().filter(|_| {
        connection
            .peer
            .as_ref()
            .is_none_or(|p| p.not_after > OffsetDateTime::now_utc())
    });
    let answer = tokio::task::spawn_blocking(move || {
        oauth.issuer.token_endpoint(
            &form,
            cert.as_deref(),
            &oauth.clients,
            OffsetDateTime::now_utc(),
        )
    })
    .await
    .map_err(task_failed)?;
    if let Some(client_id) = &answer.client_id {
        facts.caller = Some(client_id.clone());
    }
    facts.refused = answer.outcome_code;
    facts.detail = Some(token_detail(&answer));
    let body = serde_json::to_vec(&answer.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers() {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

/// The audit detail of a token-endpoint answer: what was granted, or why not. Built from
/// the fields that never hold a submitted value or the token.
fn token_detail(answer: &TokenResponse) -> String {
    let field = |name: &str| answer.body.get(name).and_then(|v| v.as_str()).unwrap_or("");
    if answer.is_success() {
        format!("token: issued an access token, scope {:?}", field("scope"))
    } else {
        format!("token: {} ({})", field("error"), field("error_description"))
    }
}

/// `GET /.well-known/jwks.json`: the token signing keys, cacheable for a minute.
fn jwks(ctx: &Context) -> Result<Response<Bytes>, Refusal> {
    let oauth = oauth_of(ctx)?;
    let mut response = json_response(&oauth.issuer.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(JWKS_CACHE_CONTROL),
    );
    Ok(response)
}

/// `POST /v1/join`: redeem a join token for an SVID certifying the CSR's key.
async fn join(
    ctx: &Context,
    request: Request<Incoming>,
    facts: &mut Facts,
) -> Result<Response<Bytes>, Refusal> {
    let body: JoinRequest = read_json(request, facts).await?;
    let csr = parse_csr(&body.csr);
    follow_ca(ctx).await;
    let state = ctx.state.clone();
    let ttl = ctx.svid_ttl;
    let outcome = tokio::task::spawn_blocking(move || state.join(&body.token, csr, ttl))
        .await
        .map_err(task_failed)?;
    if let Some(caller) = outcome.caller {
        facts.caller = Some(caller.to_string());
    }
    let issued = outcome.result?;
    Ok(svid_response(ctx, &issued, "join", facts))
}

/// `POST /v1/renew`: a new SVID for the client certificate's identity.
async fn renew(
    ctx: &Context,
    connection: &Connection,
    request: Request<Incoming>,
    facts: &mut Facts,
) -> Result<Response<Bytes>, Refusal> {
    let Some(peer) = connection.peer.clone() else {
        return Err(Refusal::new(
            Reason::ClientCertRequired,
            "renewal needs the current SVID as the TLS client certificate",
        ));
    };
    if peer.not_after + RENEWAL_GRACE <= OffsetDateTime::now_utc() {
        return Err(Refusal::new(
            Reason::SvidExpired,
            format!(
                "the presented SVID (serial {}) expired more than {} h ago; join again with a new token",
                peer.serial,
                RENEWAL_GRACE.as_secs() / 3600
            ),
        ));
    }
    let body: RenewRequest = read_json(request, facts).await?;
    let csr = parse_csr(&body.csr);
    follow_ca(ctx).await;
    let state = ctx.state.clone();
    let ttl = ctx.svid_ttl;
    let issued = tokio::task::spawn_blocking(move || state.renew(&peer, csr, ttl))
        .await
        .map_err(task_failed)??;
    Ok(svid_response(ctx, &issued, "renew", facts))
}

/// `GET /v1/bundle`, with an `ETag` (a digest of the bundle) and `If-None-Match`.
async fn bundle(ctx: &Context, headers: &HeaderMap) -> Response<Bytes> {
    follow_ca(ctx).await;
    let bundle = ctx.state.bundle_pem();
    let etag = format!("\"{}\"", short_digest(&bundle));
    if etag_matches(headers, &etag) {
        return not_modified(&etag);
    }
    let mut response = json_response(&BundleResponse { bundle });
    set_etag(&mut response, &etag);
    response
}

/// `GET /v1/revocations`, with `ETag: "<version>"` and `If-None-Match`.
async fn revocations(ctx: &Context, headers: &HeaderMap) -> Result<Response<Bytes>, Refusal> {
    let state = ctx.state.clone();
    let list = tokio::task::spawn_blocking(move || state.revocations())
        .await
        .map_err(task_failed)?
        .map_err(|e| {
            tracing::error!(error = %e, "reading the revocation list failed");
            Refusal::new(
                Reason::Internal,
                "the control plane could not read its revocation list; see its log",
            )
        })?;
    let etag = format!("\"{}\"", list.version);
    if etag_matches(headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let mut response = json_response(&list);
    set_etag(&mut response, &etag);
    Ok(response)
}

/// `GET /v1/policies`: the policy set sidecars should enforce, for any workload with a
/// valid SVID (policies describe the mesh's permissions: not for anonymous callers).
fn policies(
    ctx: &Context,
    connection: &Connection,
    headers: &HeaderMap,
) -> Result<Response<Bytes>, Refusal> {
    let Some(dir) = &ctx.policy_dir else {
        return Err(Refusal::new(
            Reason::NotFound,
            "this control plane distributes no policies",
        ));
    };
    if connection
        .peer
        .as_ref()
        .is_none_or(|p| p.not_after <= OffsetDateTime::now_utc())
    {
        return Err(Refusal::new(
            Reason::ClientCertRequired,
            "policies are served to workloads presenting a valid SVID",
        ));
    }
    let bundle = PolicyBundle::read_dir(dir).map_err(|e| {
        tracing::error!(dir = %dir.display(), error = %e, "reading the policy directory failed");
        Refusal::new(
            Reason::Internal,
            "the control plane could not read its policies; see its log",
        )
    })?;
    let etag = format!("\"{}\"", bundle.etag);
    if etag_matches(headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let mut response = json_response(&bundle);
    set_etag(&mut response, &etag);
    Ok(response)
}

fn svid_response(ctx: &Context, issued: &Issued, how: &str, facts: &mut Facts) -> Response<Bytes> {
    let not_after = issued
        .svid
        .not_after
        .format(&Rfc3339)
        .unwrap_or_else(|_| issued.svid.not_after.to_string());
    facts.detail = Some(format!(
        "{how}: issued SVID serial {} for {}, valid until {not_after}",
        issued.serial, issued.svid.spiffe_id
    ));
    tracing::info!(how, serial = %issued.serial, spiffe_id = %issued.svid.spiffe_id, %not_after, "issued an SVID");
    json_response(&SvidResponse {
        svid: issued.svid.cert_pem.clone(),
        bundle: ctx.state.bundle_pem(),
        not_after,
    })
}

/// Reads a JSON body: `Content-Type: application/json`, at most [`MAX_BODY_BYTES`].
async fn read_json<T: DeserializeOwned>(
    request: Request<Incoming>,
    facts: &mut Facts,
) -> Result<T, Refusal> {
    let body = read_body(request, "application/json", facts).await?;
    serde_json::from_slice(&body).map_err(|e| {
        // serde_json's messages name fields and types, not string values; but a token
        // misplaced as a key would be named as an unknown field: never echo one.
        let message = e.to_string();
        let detail = if message.contains(JOIN_TOKEN_PREFIX) {
            format!(
                "invalid request body (line {}, column {})",
                e.line(),
                e.column()
            )
        } else {
            format!("invalid request body: {message}")
        };
        Refusal::new(Reason::BadRequest, detail)
    })
}

/// Reads a body of media type `media_type`, at most [`MAX_BODY_BYTES`].
async fn read_body(
    request: Request<Incoming>,
    media_type: &str,
    facts: &mut Facts,
) -> Result<Bytes, Refusal> {
    let matches = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type));
    if !matches {
        return Err(Refusal::new(
            Reason::UnsupportedMediaType,
            format!("the body must be {media_type}"),
        ));
    }
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Refusal::new(
                    Reason::BodyTooLarge,
                    format!("the body exceeds {MAX_BODY_BYTES} bytes"),
                )
            } else {
                Refusal::new(
                    Reason::BadRequest,
                    format!("the body could not be read: {e}"),
                )
            }
        })?
        .to_bytes();
    facts.bytes_in = body.len() as u64;
    Ok(body)
}

fn json_response(value: &impl Serialize) -> Response<Bytes> {
    // Serializing these plain structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn not_modified(etag: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    set_etag(&mut response, etag);
    response
}

fn set_etag(response: &mut Response<Bytes>, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, lists and `*` included).
fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

fn task_failed(e: tokio::task::JoinError) -> Refusal {
    tracing::error!(error = %e, "control plane task failed");
    Refusal::new(
        Reason::Internal,
        "the control plane could not complete the request; see its log",
    )
}

/// The first 16 bytes of a SHA-256, hex: an ETag for the bundle and the policy set.
pub(crate) fn short_digest(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_known_paths_and_refuses_others_with_404_or_405() {
        assert_eq!(
            route(&Method::POST, "/v1/join", false).unwrap().0,
            Route::Join
        );
        assert_eq!(
            route(&Method::GET, "/v1/revocations", false).unwrap().0,
            Route::Revocations
        );
        let (refusal, allow) = route(&Method::GET, "/v1/join", false).unwrap_err();
        assert_eq!(refusal.reason, Reason::MethodNotAllowed);
        assert_eq!(allow, Some(Method::POST));
        let (refusal, allow) = route(&Method::GET, "/v1/nope", false).unwrap_err();
        assert_eq!(refusal.reason, Reason::NotFound);
        assert_eq!(allow, None);
    }

    #[test]
    fn oauth_endpoints_exist_only_when_oauth_is_configured() {
        for (method, path, expected) in [
            (Method::POST, "/oauth2/token", Route::Token),
            (Method::GET, "/.well-known/jwks.json", Route::Jwks),
        ] {
            assert_eq!(route(&method, path, true).unwrap().0, expected);
            let (refusal, allow) = route(&method, path, false).unwrap_err();
            assert_eq!(refusal.reason, Reason::NotFound);
            assert_eq!(allow, None);
        }
        let (refusal, allow) = route(&Method::GET, "/oauth2/token", true).unwrap_err();
        assert_eq!(refusal.reason, Reason::MethodNotAllowed);
        assert_eq!(allow, Some(Method::POST));
    }

    #[test]
    fn the_control_svid_is_rotated_at_half_life() {
        let issued = OffsetDateTime::UNIX_EPOCH;
        let not_after = issued + time::Duration::hours(24);
        assert_eq!(
            until_half_life(issued, not_after, issued),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            until_half_life(issued, not_after, issued + time::Duration::hours(11)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            until_half_life(issued, not_after, issued + time::Duration::hours(13)),
            Duration::ZERO
        );
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let mut headers = HeaderMap::new();
        assert!(!etag_matches(&headers, "\"3\""));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"2\", W/\"3\""),
        );
        assert!(etag_matches(&headers, "\"3\""));
        assert!(!etag_matches(&headers, "\"4\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&headers, "\"4\""));
    }
}
