//! The request path. Read this file to know what happens to a request.
//!
//! Inbound (a caller's sidecar → this service):
//!
//! ```text
//! TLS handshake (client SVID required and verified; optional where tokens are accepted)
//!   → identify (SVID or bearer token) → [observe] → route → limit → authorize → validate
//!   → inspect → forward → record
//! ```
//!
//! A sampled request past identify is observed for the API inventory ([`crate::observe`]):
//! the stages hand the query and body they already have to its observation, and the record
//! stage turns it into the record's `shape` and `data_classes`.
//!
//! Outbound (the local app → another service):
//!
//! ```text
//! identify (own workload) → route (Host names the target) → forward (mTLS, target's SPIFFE ID pinned) → record
//! ```
//!
//! Every stage returns `Result<_, Rejection>`; the first refusal ends the request with an
//! RFC 9457 problem. Whatever happened, the record stage (the [`Recorder`] carried in the
//! response body) writes exactly one audit record.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use palisade_audit::{AuditHandle, Direction};
use palisade_config::StageMode;
use palisade_identity::SpiffeId;
use palisade_inspect::Inspector;
use palisade_openapi::{ApiSpec, RequestValidator};
use palisade_policy::PolicyEngine;
use palisade_ratelimit::RateLimiter;

use crate::context::{
    Caller, CountingBody, Outcome, Recorder, RecordingBody, RequestContext, REQUEST_ID_HEADER,
};
use crate::identity::SidecarIdentity;
use crate::observe::{is_json, Observer};
use crate::rejection::{bearer_challenge, problem_body, Rejection};
use crate::stages::authorize::{authorize, Call};
use crate::stages::forward::{CountedBody, LocalUpstream, MeshTarget};
use crate::stages::identify::{check_not_revoked, identify, ConnectionIdentity, TokenPolicy};
use crate::stages::inspect::{inspect, InspectedBody};
use crate::stages::limit::limit;
use crate::stages::route::{endpoint, route};
use crate::stages::validate::{allow_header, read_body, validate_body, validate_request};
use crate::tokens::BearerTokens;

/// What every response body of the proxy is: the upstream's streamed body or a problem,
/// carrying the record stage.
pub type ProxyBody = RecordingBody<Either<Incoming, Full<Bytes>>>;

/// What a connection knows about its peer, handed to every request on it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The remote socket address.
    pub peer: SocketAddr,
    /// The verified identity, if any.
    pub identity: ConnectionIdentity,
}

/// A guard stage and what to do with its findings.
pub struct Guarded<T> {
    /// Enforce (refuse) or report (record and let through); `off` means no stage at all.
    pub mode: StageMode,
    /// The stage's compiled state.
    pub stage: T,
}

impl<T> Guarded<T> {
    /// Applies the mode to a stage's result: a finding always goes into the record; only
    /// `enforce` turns it into a refusal. In `report` mode the value is lost (`None`).
    fn apply<V>(
        &self,
        ctx: &mut RequestContext,
        result: Result<V, Rejection>,
    ) -> Result<Option<V>, Rejection> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(rejection) => {
                ctx.findings.push(rejection.finding());
                match self.mode {
                    StageMode::Report => Ok(None),
                    StageMode::Enforce | StageMode::Off => Err(rejection),
                }
            }
        }
    }
}

/// The inbound pipeline of one service's sidecar.
pub struct InboundPipeline {
    /// The service this sidecar fronts.
    pub service: String,
    /// Its OpenAPI spec, if any.
    pub spec: Option<ApiSpec>,
    /// Rate limits per caller identity, if configured.
    pub limiter: Option<Guarded<RateLimiter>>,
    /// Access tokens accepted besides SVIDs (`[service.tokens]`), if configured.
    pub tokens: Option<Arc<BearerTokens>>,
    /// The mesh's trust domain (that of token callers outside the mesh).
    pub trust_domain: String,
    /// The authorizer.
    pub policy: Arc<PolicyEngine>,
    /// OpenAPI request validation, if the service has a spec.
    pub validator: Option<Guarded<RequestValidator>>,
    /// Injection and deserialization defence.
    pub inspector: Option<Guarded<Inspector>>,
    /// Largest body a stage buffers (413 beyond).
    pub max_body_bytes: usize,
    /// Observation for the API inventory (`[service.inventory]`), unless off.
    pub observer: Option<Observer>,
    /// The local app.
    pub upstream: LocalUpstream,
    /// This sidecar's live identity (its revocation set is checked on every request).
    pub identity: Arc<SidecarIdentity>,
    /// Where records go.
    pub audit: AuditHandle,
}

/// A pipeline's ordered stages, run by [`handle_request`] between the audit slot
/// reservation and the record stage.
trait Stages {
    /// Runs the stages in order; the first refusal ends the request.
    async fn run(
        &self,
        ctx: &mut RequestContext,
        connection: &ConnectionInfo,
        request: Request<CountedBody>,
    ) -> Result<Response<Incoming>, Rejection>;
}

impl Stages for InboundPipeline {
    async fn run(
        &self,
        ctx: &mut RequestContext,
        connection: &ConnectionInfo,
        request: Request<CountedBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        // identify: the SVID verified in the handshake, or the access token's `sub`.
        let token_policy = self.tokens.as_deref().map(|tokens| TokenPolicy {
            tokens,
            trust_domain: &self.trust_domain,
        });
        let identified = identify(
            &connection.identity,
            request.headers(),
            token_policy,
            ctx.received_at,
        )
        .await;
        let caller = identified.inspect_err(|rejection| {
            if self.tokens.is_some() && *rejection == Rejection::CallerUnidentified {
                ctx.response_headers.push(bearer_challenge(&self.service));
            }
        })?;
        ctx.caller = Some(caller.clone());
        // ...not revoked since the connection was opened (the handshake saw an older list).
        check_not_revoked(&connection.identity, &caller, &self.identity.revocations)?;
        // observe: decided now, so unidentified traffic never shapes the inventory.
        ctx.observation = self
            .observer
            .as_ref()
            .and_then(|o| o.sample(request.uri().query()));
        // route: the endpoint is the spec's route template, else the literal path.
        ctx.route = route(self.spec.as_ref(), &ctx.method, &ctx.path);
        let endpoint = endpoint(ctx.route.as_deref(), &ctx.path).to_owned();
        // limit: the caller identity's budget (per route when configured), before any work.
        if let Some(limiter) = &self.limiter {
            let result = limit(&limiter.stage, ctx, &endpoint).await;
            limiter.apply(ctx, result)?;
        }
        // authorize: Cedar, deny by default; the deciding policies go into the record.
        ctx.policies = authorize(
            &self.policy,
            Call {
                caller: &caller,
                method: &ctx.method,
                service: &self.service,
                endpoint: &endpoint,
                path: &ctx.path,
                at: ctx.received_at,
            },
        )
        .inspect_err(|rejection| ctx.policies = rejection.policies().to_vec())?;
        // validate: route, method, parameters and content type against the OpenAPI spec.
        let (parts, body) = request.into_parts();
        let has_body = !http_body::Body::is_end_stream(&body);
        let validated = match &self.validator {
            Some(v) => {
                let result = validate_request(&v.stage, &parts, has_body);
                if let (Err(rejection), Some(spec)) = (&result, &self.spec) {
                    if rejection.status() == http::StatusCode::METHOD_NOT_ALLOWED {
                        ctx.response_headers
                            .extend(allow_header(spec, &ctx.method, &ctx.path));
                    }
                }
                v.apply(ctx, result)?
            }
            None => None,
        };
        // Bodies stream through untouched unless a stage needs to read them.
        let needs_body = has_body && (validated.is_some() || self.inspector.is_some());
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let body = if needs_body {
            let read = read_body(body, declared, self.max_body_bytes).await;
            if let (Err(Rejection::BodyTooLarge { .. }), Some(observation)) =
                (&read, ctx.observation.as_mut())
            {
                observation.request_too_large();
            }
            Either::Right(read?)
        } else {
            Either::Left(body)
        };
        // validate (body): size, depth and the operation's schema; unknown fields refused.
        let mut json = None;
        if let (Some(v), Some(route), Either::Right(bytes)) = (&self.validator, &validated, &body) {
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let result = validate_body(&v.stage, route, content_type, bytes);
            json = v.apply(ctx, result)?.flatten();
        }
        // inspect: injection and serialized-object payloads in path, query, headers, body.
        let declares_json = is_json(&parts.headers);
        let inspected = self.inspector.as_ref().map(|inspector| {
            if let (Either::Right(bytes), None, true) = (&body, &json, declares_json) {
                json = serde_json::from_slice::<serde_json::Value>(bytes).ok();
            }
            let seen = match (&body, &json) {
                (Either::Left(_), _) => InspectedBody::None,
                (Either::Right(_), Some(value)) => InspectedBody::Json(value),
                (Either::Right(bytes), None) => InspectedBody::Raw(bytes),
            };
            (inspector, inspect(&inspector.stage, &parts, seen))
        });
        // observe: the buffered body (and the JSON a stage parsed) goes to the record stage,
        // even when inspect refuses the request.
        // (A JSON body inspect failed to parse is not worth parsing again.)
        if let (Some(observation), Either::Right(bytes)) = (ctx.observation.as_mut(), &body) {
            let parse_later = declares_json && self.inspector.is_none();
            observation.buffered_request(bytes, json.take(), parse_later);
        }
        if let Some((inspector, result)) = inspected {
            inspector.apply(ctx, result)?;
        }
        // forward: to the local app, with x-request-id and x-forwarded-client-cert.
        let body = match body {
            Either::Left(mut streaming) => {
                // observe: a JSON body nobody read is teed on its way to the app.
                if let (Some(observation), true, true) =
                    (ctx.observation.as_mut(), has_body, declares_json)
                {
                    if let Some(tap) = observation.tap_request(declared) {
                        streaming.tap(tap);
                    }
                }
                Either::Left(streaming)
            }
            Either::Right(bytes) => Either::Right(Full::new(bytes)),
        };
        self.upstream
            .forward(ctx, Request::from_parts(parts, body))
            .await
        // record: done by the Recorder in the response body, see `handle_request`.
    }
}

/// A pipeline as the listeners see it: a request in, a response (carrying its record) out.
pub trait HandleRequest: Send + Sync + 'static {
    /// Handles one request from a connection.
    fn handle(
        &self,
        connection: &ConnectionInfo,
        request: Request<Incoming>,
    ) -> impl std::future::Future<Output = Response<ProxyBody>> + Send;
}

impl HandleRequest for InboundPipeline {
    async fn handle(
        &self,
        connection: &ConnectionInfo,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let ctx = new_context(
            &request,
            self.service.clone(),
            Direction::Inbound,
            connection.peer,
        );
        handle_request(self, &self.audit, ctx, connection, request).await
    }
}

/// The outbound pipeline of one service's sidecar.
pub struct OutboundPipeline {
    /// This sidecar's own workload identity (the caller of every outbound request).
    pub own_id: SpiffeId,
    /// Its live SVID: an expired one stops outbound calls (fail closed).
    pub identity: Arc<SidecarIdentity>,
    /// The configured services this one may address, by name.
    pub targets: HashMap<String, MeshTarget>,
    /// Where records go.
    pub audit: AuditHandle,
}

impl Stages for OutboundPipeline {
    async fn run(
        &self,
        ctx: &mut RequestContext,
        _connection: &ConnectionInfo,
        request: Request<CountedBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        // identify: the outbound listener is bound to loopback for the local workload only,
        // whose SVID must still be valid (fail closed until a renewal succeeds).
        ctx.caller = Some(Caller::mtls(&self.own_id));
        if let Err(expired_at) = self.identity.check_own_validity(ctx.received_at) {
            tracing::error!(spiffe_id = %self.own_id, %expired_at, "own SVID expired; refusing outbound calls until it is renewed");
            return Err(Rejection::OwnIdentityExpired { expired_at });
        }
        // route: the Host header names the target service.
        let target = self.target_of(&request)?;
        ctx.service = target.name().to_owned();
        // forward: mTLS to the target's sidecar, which must present the target's SPIFFE ID.
        target.forward(ctx, request.map(Either::Left)).await
        // record: done by the Recorder in the response body, see `handle_request`.
    }
}

impl OutboundPipeline {
    fn target_of<B>(&self, request: &Request<B>) -> Result<&MeshTarget, Rejection> {
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host())
            .ok_or(Rejection::MissingTarget)?;
        let name = host.rsplit_once(':').map_or(host, |(name, _port)| name);
        self.targets
            .get(name)
            .ok_or_else(|| Rejection::UnknownTarget {
                host: host.to_owned(),
            })
    }
}

impl HandleRequest for OutboundPipeline {
    async fn handle(
        &self,
        connection: &ConnectionInfo,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        // Until the target is known the record names the Host the app asked for.
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let ctx = new_context(&request, host, Direction::Outbound, connection.peer);
        handle_request(self, &self.audit, ctx, connection, request).await
    }
}

fn new_context<B>(
    request: &Request<B>,
    service: String,
    direction: Direction,
    peer: SocketAddr,
) -> RequestContext {
    RequestContext::new(
        request_id(request.headers().get(REQUEST_ID_HEADER)),
        service,
        direction,
        Some(peer),
        request.method(),
        request.uri().path(),
    )
}

/// Runs `stages` with the audit slot reserved first (backpressure), then arms the record
/// stage on the response, whether the stages answered or refused.
async fn handle_request(
    stages: &impl Stages,
    audit: &AuditHandle,
    mut ctx: RequestContext,
    connection: &ConnectionInfo,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    // A slot is reserved before any work, so a request that runs always has room for its
    // record; when the audit queue is full, new requests wait here.
    let slot = match audit.reserve().await {
        Ok(slot) => slot,
        Err(e) => {
            tracing::error!(error = %e, "audit writer is gone; refusing the request");
            let rejection = Rejection::AuditUnavailable;
            return problem_body(&rejection, &ctx.request_id)
                .map(|b| RecordingBody::unrecorded(Either::Right(Full::new(b))));
        }
    };
    let bytes_in = Arc::new(AtomicU64::new(0));
    let request = request.map(|body| CountingBody::new(body, bytes_in.clone()));
    let result = stages.run(&mut ctx, connection, request).await;
    let request_id = ctx.request_id.clone();
    let response_headers = std::mem::take(&mut ctx.response_headers);
    let mut response = match result {
        Ok(mut response) => {
            if let Ok(id) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, id);
            }
            let outcome = Outcome {
                status: response.status(),
                code: None,
                detail: None,
            };
            let mut recorder = Recorder::new(ctx, outcome, slot, bytes_in);
            recorder.observe_response(response.headers());
            response.map(|body| RecordingBody::new(Either::Left(body), recorder))
        }
        Err(rejection) => {
            tracing::info!(request_id = %request_id, code = rejection.code(), detail = %rejection, "request refused");
            let outcome = Outcome {
                status: rejection.status(),
                code: Some(rejection.code()),
                detail: Some(rejection.to_string()),
            };
            let recorder = Recorder::new(ctx, outcome, slot, bytes_in);
            problem_body(&rejection, &request_id)
                .map(|b| RecordingBody::new(Either::Right(Full::new(b)), recorder))
        }
    };
    // Headers stages asked for on every response (rate-limit state), refused or not.
    for (name, value) in response_headers {
        response.headers_mut().append(name, value);
    }
    response
}

/// Keeps a caller's request id when it is a sane token, otherwise makes a new one, so ids
/// can correlate hops without letting a caller inject log-breaking text.
pub fn request_id(header: Option<&HeaderValue>) -> String {
    header
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_request_id_and_replaces_a_hostile_one() {
        let sane = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(request_id(Some(&sane)), "abc-123_x.y:z");
        let hostile = HeaderValue::from_static("id\" injected=\"1");
        let replaced = request_id(Some(&hostile));
        assert_ne!(replaced, "id\" injected=\"1");
        assert_eq!(replaced.len(), 36);
        assert_eq!(request_id(None).len(), 36);
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new(
            "r".into(),
            "billing".into(),
            Direction::Inbound,
            None,
            &http::Method::GET,
            "/",
        )
    }

    fn finding() -> Rejection {
        Rejection::InjectionDetected {
            code: "palisade.injection.sql",
            location: "query/q".into(),
            rule: "libinjection",
        }
    }

    #[test]
    fn enforce_mode_refuses_and_records_the_finding() {
        let guard = Guarded {
            mode: StageMode::Enforce,
            stage: (),
        };
        let mut ctx = ctx();
        let err = guard.apply::<()>(&mut ctx, Err(finding())).unwrap_err();
        assert_eq!(err.code(), "palisade.injection.sql");
        assert_eq!(ctx.findings, vec!["palisade.injection.sql@query/q"]);
    }

    #[test]
    fn report_mode_lets_the_request_through_and_records_the_finding() {
        let guard = Guarded {
            mode: StageMode::Report,
            stage: (),
        };
        let mut ctx = ctx();
        assert_eq!(guard.apply::<()>(&mut ctx, Err(finding())).unwrap(), None);
        assert_eq!(ctx.findings, vec!["palisade.injection.sql@query/q"]);
        assert_eq!(guard.apply(&mut ctx, Ok(7)).unwrap(), Some(7));
        assert_eq!(ctx.findings.len(), 1);
    }
}
