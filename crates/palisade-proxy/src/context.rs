//! The per-request context the stages fill in, and the record stage that turns it into
//! exactly one audit record when the response is finished (or abandoned).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use palisade_audit::{AuditRecord, AuditSlot, AuthMethod, Decision, Direction};
use palisade_identity::SpiffeId;
use time::OffsetDateTime;

use crate::observe::{BodyTap, Observation, RequestTap};

/// Header that carries the request id to upstreams and back to callers.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Who is calling, as established by the identify stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's identity: its SPIFFE ID, or for an OAuth client outside the mesh the
    /// access token's `sub` (its client_id).
    pub id: String,
    /// The trust domain that vouched for it: the SPIFFE ID's, or the control plane's.
    pub trust_domain: String,
    /// How it was authenticated.
    pub auth: AuthMethod,
    /// The access token's scopes; empty for mTLS callers.
    pub scopes: Vec<String>,
}

impl Caller {
    /// A workload authenticated by its X.509-SVID.
    pub fn mtls(id: &SpiffeId) -> Self {
        Caller {
            id: id.to_string(),
            trust_domain: id.trust_domain().to_owned(),
            auth: AuthMethod::Mtls,
            scopes: Vec::new(),
        }
    }
}

/// What one request has accumulated on its way through the pipeline.
#[derive(Debug)]
pub struct RequestContext {
    /// Propagated from a trusted caller or newly made (UUIDv7).
    pub request_id: String,
    /// Wall-clock time the request arrived (audit `ts`).
    pub received_at: OffsetDateTime,
    /// Monotonic arrival time, for latency.
    pub started: Instant,
    /// The service whose sidecar handles the request (for outbound: the target).
    pub service: String,
    /// Inbound (a caller → this service) or outbound (this service → a target).
    pub direction: Direction,
    /// The remote socket address.
    pub peer: Option<SocketAddr>,
    /// Set by the identify stage.
    pub caller: Option<Caller>,
    /// The HTTP method.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The route template, set by the route stage when the service has a spec.
    pub route: Option<String>,
    /// Policies that decided, set by the authorize stage.
    pub policies: Vec<String>,
    /// Set when the request is observed for the API inventory (sampled, past identify):
    /// what the record stage turns into the record's `shape` and `data_classes`.
    pub observation: Option<Observation>,
    /// Guard findings as `"<code>@<location>"`: the refusing one, or those a stage in
    /// `report` mode let through.
    pub findings: Vec<String>,
    /// The rate limit was decided locally because the shared backend was down.
    pub ratelimit_degraded: bool,
    /// Headers every response to this request carries (rate-limit state).
    pub response_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl RequestContext {
    /// Starts a context for a request.
    pub fn new(
        request_id: String,
        service: String,
        direction: Direction,
        peer: Option<SocketAddr>,
        method: &http::Method,
        path: &str,
    ) -> Self {
        RequestContext {
            request_id,
            received_at: OffsetDateTime::now_utc(),
            started: Instant::now(),
            service,
            direction,
            peer,
            caller: None,
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            route: None,
            policies: Vec::new(),
            observation: None,
            findings: Vec::new(),
            ratelimit_degraded: false,
            response_headers: Vec::new(),
        }
    }

    /// The audit record for this request, with the outcome and the exchange's end supplied.
    /// An observed request's bodies are parsed and classified here.
    pub fn into_record(mut self, outcome: Outcome, ended: Ended) -> AuditRecord {
        let observed = self.observation.take().map(|o| o.finish(ended.response));
        let decision = if outcome.code.is_none() {
            Decision::Allow
        } else {
            Decision::Deny
        };
        AuditRecord {
            ts: self.received_at,
            request_id: self.request_id,
            auth: self.caller.as_ref().map_or(AuthMethod::None, |c| c.auth),
            caller: self.caller.map(|c| c.id),
            service: self.service,
            method: Some(self.method),
            path: Some(self.path),
            route: self.route,
            decision,
            code: outcome.code.map(str::to_owned),
            policies: self.policies,
            status: Some(outcome.status.as_u16()),
            latency_us: ended.latency_us,
            bytes_in: ended.bytes_in,
            bytes_out: ended.bytes_out,
            data_classes: observed.as_ref().map_or_else(Vec::new, |(_, classes)| {
                classes.iter().map(|c| c.as_str().to_owned()).collect()
            }),
            peer: self.peer.map(|p| p.to_string()),
            direction: self.direction,
            detail: outcome.detail,
            findings: self.findings,
            ratelimit_degraded: self.ratelimit_degraded,
            shape: observed.map(|(shape, _)| shape),
        }
    }
}

/// What the record stage knows when the response has ended (or was abandoned).
#[derive(Debug)]
pub struct Ended {
    /// Time from arrival to the end of the response.
    pub latency_us: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// The tee of an observed JSON response body.
    pub response: Option<BodyTap>,
}

/// How a request ended, as the record stage writes it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status sent to the caller.
    pub status: StatusCode,
    /// `None` when allowed; the rejection code otherwise.
    pub code: Option<&'static str>,
    /// Why it was denied.
    pub detail: Option<String>,
}

/// The record stage: holds the context and a reserved audit slot, and writes the record
/// exactly once, when the response body ends or is dropped (client gone, task cancelled).
/// Writing from `Drop` is what makes "one record per request" hold on every path.
pub struct Recorder {
    /// Taken (and the record written) exactly once, in `Drop`.
    armed: Option<(RequestContext, Outcome, AuditSlot)>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
    /// The tee of an observed JSON response body.
    response_tap: Option<BodyTap>,
}

impl Recorder {
    /// Arms the record stage for a request whose response status is known.
    pub fn new(
        context: RequestContext,
        outcome: Outcome,
        slot: AuditSlot,
        bytes_in: Arc<AtomicU64>,
    ) -> Self {
        Recorder {
            armed: Some((context, outcome, slot)),
            bytes_in,
            bytes_out: 0,
            response_tap: None,
        }
    }

    /// Tees the app's response body for an observed request, when it is JSON.
    pub fn observe_response(&mut self, headers: &http::HeaderMap) {
        if let Some((context, ..)) = self.armed.as_mut() {
            if let Some(observation) = context.observation.as_mut() {
                self.response_tap = observation.tap_response(headers);
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some((context, outcome, slot)) = self.armed.take() {
            let ended = Ended {
                latency_us: u64::try_from(context.started.elapsed().as_micros())
                    .unwrap_or(u64::MAX),
                bytes_in: self.bytes_in.load(Ordering::Relaxed),
                bytes_out: self.bytes_out,
                response: self.response_tap.take(),
            };
            PendingRecord(Some((context, outcome, slot, ended))).write_soon();
        }
    }
}

/// A record to write: by [`PendingRecord::write_soon`], or by `Drop` if that never ran (its
/// task was dropped unpolled because the runtime is shutting down): exactly once either way.
struct PendingRecord(Option<(RequestContext, Outcome, AuditSlot, Ended)>);

impl PendingRecord {
    /// Writes the record now, or, when observed bodies wait to be parsed and classified, in
    /// a task of its own. hyper drops a finished response body *before* it flushes the last
    /// bytes to the socket, so parsing inline would delay the caller's last byte; a task
    /// (spawned in about a microsecond) runs after the flush. The reserved audit slot
    /// travels with it, so pending records stay bounded by the audit queue.
    fn write_soon(mut self) {
        let has_bodies = self.0.as_ref().is_some_and(|(context, _, _, ended)| {
            ended.response.is_some()
                || context
                    .observation
                    .as_ref()
                    .is_some_and(Observation::has_body)
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if has_bodies => {
                runtime.spawn(async move { self.write() });
            }
            _ => self.write(),
        }
    }

    fn write(&mut self) {
        if let Some((context, outcome, slot, ended)) = self.0.take() {
            // The context is moved into the record: no per-request copies of its strings.
            let record = context.into_record(outcome, ended);
            tracing::debug!(request_id = %record.request_id, decision = record.decision.as_str(), code = ?record.code, "request recorded");
            slot.send(record);
        }
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        self.write();
    }
}

/// Error type of bodies the proxy serves.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body that counts what it sends and carries the [`Recorder`], which writes the
/// audit record when the body is finished or dropped.
pub struct RecordingBody<B> {
    inner: B,
    recorder: Option<Recorder>,
}

impl<B> RecordingBody<B> {
    /// Wraps a body.
    pub fn new(inner: B, recorder: Recorder) -> Self {
        RecordingBody {
            inner,
            recorder: Some(recorder),
        }
    }

    /// Wraps a body that must not be recorded (only when the audit log itself is gone).
    pub fn unrecorded(inner: B) -> Self {
        RecordingBody {
            inner,
            recorder: None,
        }
    }
}

impl<B> Body for RecordingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(recorder)) = (frame.data_ref(), this.recorder.as_mut()) {
                    recorder.bytes_out += data.len() as u64;
                    if let Some(tap) = recorder.response_tap.as_mut() {
                        tap.push(data);
                        // hyper stops polling a body that says it has ended.
                        if this.inner.is_end_stream() {
                            tap.end();
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                // Record as soon as the body is complete, not when hyper gets round to dropping it.
                if let Some(mut recorder) = this.recorder.take() {
                    if let Some(tap) = recorder.response_tap.as_mut() {
                        tap.end();
                    }
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts the bytes it passes on, into a counter the recorder reads,
/// and for an observed request tees them for the record stage.
pub struct CountingBody<B> {
    inner: B,
    count: Arc<AtomicU64>,
    tap: Option<RequestTap>,
}

impl<B> CountingBody<B> {
    /// Wraps a body; `count` receives the running total.
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        CountingBody {
            inner,
            count,
            tap: None,
        }
    }

    /// Tees the chunks still to come into `tap`.
    pub fn tap(&mut self, tap: RequestTap) {
        self.tap = Some(tap);
    }
}

impl<B> Body for CountingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if let Some(tap) = this.tap.as_mut() {
                        tap.push(data);
                        // hyper stops polling a body that says it has ended.
                        if this.inner.is_end_stream() {
                            tap.end();
                        }
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(tap) = this.tap.as_mut() {
                    tap.end();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;
    use palisade_audit::{AuditWriter, SinkConfig};
    use palisade_config::InventorySettings;

    use super::*;
    use crate::observe::Observer;

    /// Runs `drop_recorder` with a recorder for an observed request whose body waits to be
    /// parsed; returns the records the writer got.
    fn records_after(drop_recorder: impl FnOnce(Recorder)) -> Vec<AuditRecord> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let writer = AuditWriter::start(
            SinkConfig::JsonLines {
                path: Some(path.clone()),
            },
            8,
        )
        .unwrap();
        let reserve = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let slot = reserve.block_on(writer.handle().reserve()).unwrap();
        let mut ctx = RequestContext::new(
            "r1".into(),
            "billing".into(),
            Direction::Inbound,
            None,
            &http::Method::POST,
            "/customers",
        );
        let mut observation = Observer::new(&InventorySettings::default())
            .unwrap()
            .sample(Some("email=ada%40example.com"))
            .unwrap();
        observation.buffered_request(
            &Bytes::from_static(br#"{"ssn": "536-22-8145"}"#),
            None,
            true,
        );
        ctx.observation = Some(observation);
        let outcome = Outcome {
            status: StatusCode::OK,
            code: None,
            detail: None,
        };
        drop_recorder(Recorder::new(ctx, outcome, slot, Arc::default()));
        let stats = writer.shutdown().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(stats.written, text.lines().count() as u64);
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn an_observed_record_is_written_with_its_shape_from_a_runtime() {
        let records = records_after(|recorder| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            runtime.block_on(async move { drop(recorder) });
            // Shutting down waits for the worker to finish the task it was handed.
            runtime.shutdown_timeout(std::time::Duration::from_secs(10));
        });
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data_classes, ["email", "us_ssn"]);
        let shape = records[0].shape.as_ref().unwrap();
        assert_eq!(shape.request[1].name, "/ssn");
    }

    #[test]
    fn an_observed_record_is_written_once_even_when_its_task_never_runs() {
        let records = records_after(|recorder| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            // The task is queued, never polled, and dropped with the runtime.
            runtime.block_on(async move { drop(recorder) });
            drop(runtime);
        });
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data_classes, ["email", "us_ssn"]);
    }

    #[test]
    fn without_a_runtime_the_record_is_written_at_once() {
        let records = records_after(drop);
        assert_eq!(records.len(), 1);
        assert!(records[0].shape.is_some());
    }
}
