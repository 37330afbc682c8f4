//! The scenarios: what each one does, what it should lead to, and the verdict, which needs
//! both the caller's view and the audit records left by the sidecar that decided.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use palisade_audit::{AuditRecord, AuthMethod, Decision, Direction};
use palisade_config::Config;
use palisade_identity::{load_roots, SvidMaterial};
use rustls::ClientConfig;
use serde_json::json;

use crate::client::{self, Body, Call, Exchange};
use crate::mesh::{limited_rate, service, Mesh};
use crate::oauth::REPORTING_JOB;
use crate::workspace::{
    spiffe_id, Layout, DEMO_SVID_TTL, IMPERSONATED, IMPOSTOR_SVID_OF, ROGUE_CLAIMS, TOKEN_SERVICE,
};
use crate::{DemoError, ScenarioResult};

/// The code of a rate-limit refusal.
const RATE_LIMITED: &str = "palisade.ratelimit.exceeded";
/// Its status.
const TOO_MANY_REQUESTS: u16 = 429;
/// A retry loop that is never refused is cut off after this many calls (and fails).
const RETRY_LOOP_MAX_CALLS: usize = 50;
/// The code of a handshake refusal of a revoked certificate.
const REVOKED: &str = "palisade.identity.revoked";
/// Why the demo revokes a service, as the control plane records it.
const REVOCATION_REASON: &str = "palisade demo: revocation scenario";
/// How long the rotation scenario waits for the SVID to be renewed: a whole lifetime
/// (renewal is due at half of it, ±10 %).
const ROTATION_DEADLINE: Duration = DEMO_SVID_TTL;
/// The pace of the calls made while waiting for the rotation: 10 a second, within the
/// callee's default rate limit (600 a minute, 100 back to back).
const ROTATION_CALL_INTERVAL: Duration = Duration::from_millis(100);
/// How long the enforcing sidecar may take to fetch a new revocation list (it polls
/// every 200 ms).
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);
/// How often to look meanwhile.
const REVOCATION_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// The outcome a scenario should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// 200, allowed by a policy.
    Allowed,
    /// 200, allowed by a policy, and the deciding record names `caller` identified by
    /// `auth` (for a caller identified by an access token rather than its certificate).
    AllowedAs {
        /// The record's `caller`.
        caller: &'static str,
        /// The record's `auth`.
        auth: AuthMethod,
    },
    /// 200, allowed, with a guard stage in `report` mode having recorded `code` in the
    /// deciding record's findings (what the API inventory later flags).
    Reported {
        /// The finding's code.
        code: &'static str,
    },
    /// An HTTP refusal with a problem body, by the identity or policy checks.
    Refused {
        /// The status.
        status: u16,
        /// The problem's `code`.
        code: &'static str,
    },
    /// An HTTP refusal by a guard stage (validation or inspection): the problem says
    /// where in the request, and the deciding record's `findings` holds
    /// `<code>@<location>`.
    Blocked {
        /// The status.
        status: u16,
        /// The problem's `code`.
        code: &'static str,
        /// The problem's `field`, if the refusal names one.
        field: Option<&'static str>,
    },
    /// The call is repeated until refused: 429 with `Retry-After` once the caller's
    /// budget for the route is spent, and not before.
    Throttled {
        /// How many calls the budget admits back to back.
        budget: u32,
    },
    /// The TLS handshake is refused: no HTTP exchange happens.
    HandshakeRefused {
        /// The code the sidecar records.
        code: &'static str,
    },
    /// The callee's SVID is renewed while the call is repeated: every call is answered
    /// 200, before, during and after the rotation.
    Rotated,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Allowed => f.write_str("200 allowed"),
            Expected::AllowedAs { caller, auth } => {
                write!(f, "200 allowed for {caller}, auth {auth}")
            }
            Expected::Reported { code } => write!(f, "200 allowed, {code} reported"),
            Expected::Refused { status, code }
            | Expected::Blocked {
                status,
                code,
                field: None,
            } => write!(f, "{status} {code}"),
            Expected::Blocked {
                status,
                code,
                field: Some(field),
            } => write!(f, "{status} {code} at {field}"),
            Expected::Throttled { budget } => {
                write!(
                    f,
                    "{TOO_MANY_REQUESTS} {RATE_LIMITED} after {budget} admitted"
                )
            }
            Expected::HandshakeRefused { code } => write!(f, "handshake refused: {code}"),
            Expected::Rotated => f.write_str("new SVID serial, every call 200 allowed"),
        }
    }
}

impl Expected {
    fn matches_observation(self, observation: &Observation) -> bool {
        let Observation::Reply {
            status: s,
            code: c,
            field: at,
            retry_after,
        } = observation
        else {
            return matches!(self, Expected::HandshakeRefused { .. });
        };
        match self {
            Expected::Allowed | Expected::AllowedAs { .. } | Expected::Reported { .. } => {
                *s == 200 && c.is_none()
            }
            Expected::Refused { status, code } => *s == status && c.as_deref() == Some(code),
            Expected::Blocked {
                status,
                code,
                field,
            } => *s == status && c.as_deref() == Some(code) && at.as_deref() == field,
            Expected::Throttled { .. } => {
                *s == TOO_MANY_REQUESTS
                    && c.as_deref() == Some(RATE_LIMITED)
                    && retry_after.is_some()
            }
            Expected::HandshakeRefused { .. } => false,
            Expected::Rotated => *s == 200 && c.is_none(),
        }
    }

    /// Whether `record` agrees with this outcome (for [`Expected::Throttled`]: with the
    /// refusal that ends the loop).
    fn matches_record(self, record: &AuditRecord) -> bool {
        let refused = |status: Option<u16>, code: &str| {
            record.decision == Decision::Deny
                && record.code.as_deref() == Some(code)
                && record.status == status
        };
        match self {
            Expected::Allowed => {
                record.decision == Decision::Allow
                    && record.code.is_none()
                    && record.status == Some(200)
                    && record.findings.is_empty()
            }
            Expected::AllowedAs { caller, auth } => {
                Expected::Allowed.matches_record(record)
                    && record.caller.as_deref() == Some(caller)
                    && record.auth == auth
            }
            Expected::Reported { code } => {
                record.decision == Decision::Allow
                    && record.code.is_none()
                    && record.status == Some(200)
                    && is_finding(&record.findings, code, None)
            }
            Expected::Refused { status, code } => {
                refused(Some(status), code) && record.findings.is_empty()
            }
            Expected::Blocked {
                status,
                code,
                field,
            } => refused(Some(status), code) && is_finding(&record.findings, code, field),
            Expected::Throttled { .. } => {
                refused(Some(TOO_MANY_REQUESTS), RATE_LIMITED)
                    && is_finding(&record.findings, RATE_LIMITED, None)
            }
            Expected::HandshakeRefused { code } => refused(None, code),
            Expected::Rotated => Expected::Allowed.matches_record(record),
        }
    }
}

/// Whether `findings` is exactly one finding `<code>@<location>`, at `field` if given.
fn is_finding(findings: &[String], code: &str, field: Option<&str>) -> bool {
    match findings {
        [finding] => match finding.strip_prefix(code).and_then(|f| f.strip_prefix('@')) {
            Some(location) => field.is_none_or(|field| location == field),
            None => false,
        },
        _ => false,
    }
}

/// The sidecar that decides a scenario, and how its audit record names the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decider {
    /// The sidecar's service.
    pub sidecar: &'static str,
    /// The record's `service`: the sidecar's own for inbound calls, the target's for
    /// outbound ones.
    pub service: &'static str,
    /// Which listener saw the call.
    pub direction: Direction,
}

impl Decider {
    /// The inbound listener of `service`'s sidecar.
    const fn inbound(service: &'static str) -> Self {
        Decider {
            sidecar: service,
            service,
            direction: Direction::Inbound,
        }
    }
}

/// What a scenario does besides making its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Just the call (for [`Expected::Throttled`], repeated until refused).
    Call,
    /// Repeats the call until `service`'s sidecar has a new SVID serial, then once more.
    Rotation {
        /// The service whose SVID rotates.
        service: &'static str,
    },
    /// Gets an access token for the OAuth client `client` from the control plane (client
    /// credentials, for `audience` and `scope`), then makes the call with it in
    /// `Authorization: Bearer`, over TLS without a client certificate.
    Token {
        /// The OAuth client that gets the token (see [`crate::oauth::CLIENTS`]).
        client: &'static str,
        /// The service the token is for.
        audience: &'static str,
        /// The scope asked for.
        scope: &'static str,
    },
    /// Revokes `revoked`'s SPIFFE ID at the control plane and waits until `enforcer`'s
    /// sidecar has the new revocation list, then calls `enforcer`'s inbound listener
    /// presenting `revoked`'s current SVID, in a new TLS handshake.
    Revocation {
        /// The service revoked.
        revoked: &'static str,
        /// The sidecar that must refuse it.
        enforcer: &'static str,
    },
}

/// One scenario, ready to run.
pub(crate) struct Scenario {
    /// What it shows.
    pub name: String,
    /// What should happen.
    pub expected: Expected,
    /// Who decides.
    pub decider: Decider,
    /// What it does around the call.
    pub step: Step,
    call: Call,
    to: SocketAddr,
    /// TLS client configuration, for calls straight to an inbound listener.
    tls: Option<Arc<ClientConfig>>,
}

impl Scenario {
    /// Runs the scenario in `mesh`: its step, its call or calls, and what the caller saw.
    pub(crate) async fn run(self, mesh: &Mesh) -> Probe {
        match self.step {
            Step::Call => self.run_call().await,
            Step::Token {
                client,
                audience,
                scope,
            } => self.run_token(mesh, client, audience, scope).await,
            Step::Rotation { service } => self.run_rotation(mesh, service).await,
            Step::Revocation { revoked, enforcer } => {
                self.run_revocation(mesh, revoked, enforcer).await
            }
        }
    }

    /// A probe for a scenario that could not make its call, failing with `why`.
    fn not_run(self, why: String) -> Probe {
        Probe {
            name: self.name,
            expected: self.expected,
            decider: self.decider,
            keys: Vec::new(),
            admitted: 0,
            rotation: None,
            observation: Observation::Failed(why),
        }
    }

    /// Calls again and again, [`ROTATION_CALL_INTERVAL`] apart, until `service`'s SVID
    /// serial changes (then once more, so that a call follows the rotation) or
    /// [`ROTATION_DEADLINE`] passes.
    async fn run_rotation(self, mesh: &Mesh, service: &'static str) -> Probe {
        let Some(identity) = mesh.identity(service) else {
            return self.not_run(format!("no {service} sidecar"));
        };
        let before = identity.store.current().serial.clone();
        let deadline = Instant::now() + ROTATION_DEADLINE;
        let mut pace = tokio::time::interval(ROTATION_CALL_INTERVAL);
        let mut keys = Vec::new();
        let mut admitted = 0;
        let mut calls = 0;
        loop {
            pace.tick().await;
            let current = identity.store.current().serial.clone();
            let after = (current != before).then_some(current);
            calls += 1;
            let mut call = self.call.clone();
            call.request_id = call.request_id.map(|id| format!("{id}.{calls}"));
            let (key, observation) = self.send(&call).await;
            keys.extend(key);
            if observation.is_ok() {
                admitted += 1;
            }
            if after.is_some() || Instant::now() >= deadline {
                return Probe {
                    name: self.name,
                    expected: self.expected,
                    decider: self.decider,
                    keys,
                    admitted,
                    rotation: Some(Rotation {
                        before,
                        after,
                        calls,
                    }),
                    observation,
                };
            }
        }
    }

    /// Gets the token from the control plane as `client` would, then makes the call with it.
    /// Without a token the scenario fails: there is nothing to show.
    async fn run_token(
        mut self,
        mesh: &Mesh,
        client: &'static str,
        audience: &'static str,
        scope: &'static str,
    ) -> Probe {
        match mesh.access_token(client, audience, scope).await {
            Ok(token) => self.call.authorization = Some(format!("Bearer {token}")),
            Err(e) => return self.not_run(e.to_string()),
        }
        self.run_call().await
    }

    /// Revokes `revoked` as `palisade control revoke --spiffe-id` does, waits (at most
    /// [`REVOCATION_DEADLINE`]) until `enforcer`'s sidecar has fetched the new list, and
    /// makes the call in a new handshake, presenting `revoked`'s current SVID (the one its
    /// sidecar last renewed).
    ///
    /// A new handshake shows the refusal at the TLS layer; calls on connections opened
    /// before the revocation get a 403 instead (the sidecar rechecks every request).
    async fn run_revocation(
        mut self,
        mesh: &Mesh,
        revoked: &'static str,
        enforcer: &'static str,
    ) -> Probe {
        let Some(identity) = mesh.identity(enforcer) else {
            return self.not_run(format!("no {enforcer} sidecar"));
        };
        let id = match spiffe_id(revoked) {
            Ok(id) => id,
            Err(e) => return self.not_run(e.to_string()),
        };
        let version = match mesh.revoke(id, REVOCATION_REASON).await {
            Ok(version) => version,
            Err(e) => return self.not_run(format!("revoking {revoked}: {e}")),
        };
        let deadline = Instant::now() + REVOCATION_DEADLINE;
        while identity.revocations.version() < version {
            if Instant::now() >= deadline {
                return self.not_run(format!(
                    "the {enforcer} sidecar did not fetch revocation list {version} within {} s",
                    REVOCATION_DEADLINE.as_secs()
                ));
            }
            tokio::time::sleep(REVOCATION_CHECK_INTERVAL).await;
        }
        match mesh.client_presenting(revoked, enforcer) {
            Ok(tls) => self.tls = Some(tls),
            Err(e) => return self.not_run(format!("presenting {revoked}'s SVID: {e}")),
        }
        self.run_call().await
    }

    /// Makes the call (for [`Expected::Throttled`], again and again until it is not
    /// answered 200, like a client stuck in a retry loop) and records what the caller saw.
    async fn run_call(self) -> Probe {
        let repeat = matches!(self.expected, Expected::Throttled { .. });
        let mut keys = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut call = self.call.clone();
            if repeat {
                call.request_id = call.request_id.map(|id| format!("{id}.{attempt}"));
            }
            let (key, observation) = self.send(&call).await;
            keys.extend(key);
            let again = repeat && attempt < RETRY_LOOP_MAX_CALLS && observation.is_ok();
            if !again {
                return Probe {
                    name: self.name,
                    expected: self.expected,
                    decider: self.decider,
                    keys,
                    admitted: attempt - 1,
                    rotation: None,
                    observation,
                };
            }
        }
    }

    /// Sends `call`: how to find its audit record, and what the caller saw.
    async fn send(&self, call: &Call) -> (Option<Key>, Observation) {
        let exchange: Exchange = match &self.tls {
            Some(config) => client::tls(self.to, config.clone(), call).await,
            None => client::plain(self.to, call).await,
        };
        let key = match (&call.request_id, exchange.local) {
            (Some(id), _) => Some(Key::RequestId(id.clone())),
            (None, Some(local)) => Some(Key::Peer(local.to_string())),
            (None, None) => None,
        };
        let observation = match exchange.result {
            Ok(reply) => Observation::Reply {
                status: reply.status.as_u16(),
                code: reply.problem_code(),
                field: reply.problem_field(),
                retry_after: reply.retry_after(),
            },
            Err(error) => {
                tracing::debug!(scenario = %self.name, %error, "the call failed");
                Observation::Failed(error)
            }
        };
        (key, observation)
    }
}

/// How to find a call's audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// The `x-request-id` the call carried, which sidecars keep.
    RequestId(String),
    /// The caller's socket address, for calls refused before HTTP.
    Peer(String),
}

impl Key {
    fn identifies(&self, record: &AuditRecord) -> bool {
        match self {
            Key::RequestId(id) => record.request_id == *id,
            Key::Peer(peer) => record.peer.as_deref() == Some(peer.as_str()),
        }
    }
}

/// The SVID serials seen by a rotation scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotation {
    /// The serial when the scenario started.
    pub before: String,
    /// The new serial, if it changed before the deadline.
    pub after: Option<String>,
    /// How many calls were made.
    pub calls: usize,
}

/// What the caller saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observation {
    /// An HTTP response.
    Reply {
        /// Its status.
        status: u16,
        /// Its problem `code`, if the body is a problem.
        code: Option<String>,
        /// Its problem `field`, if the problem names where in the request.
        field: Option<String>,
        /// Its `Retry-After` header.
        retry_after: Option<String>,
    },
    /// No response: the connection or handshake failed.
    Failed(String),
}

impl Observation {
    /// A 200 reply.
    fn is_ok(&self) -> bool {
        matches!(self, Observation::Reply { status: 200, .. })
    }
}

/// A scenario that has run, waiting for its audit records to be judged.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// What it shows.
    pub name: String,
    /// What should have happened.
    pub expected: Expected,
    /// Who decides.
    pub decider: Decider,
    /// How to find the audit record of each call it made, in order; empty when its one
    /// call never connected (then there is nothing to find).
    pub keys: Vec<Key>,
    /// How many calls were answered 200: before the last one for a retry loop, in all
    /// for a rotation (only those make more than one call).
    pub admitted: usize,
    /// For a rotation: the serials seen.
    pub rotation: Option<Rotation>,
    /// What the caller saw for the last call.
    pub observation: Observation,
}

impl Probe {
    /// Whether `record` is the deciding sidecar's record of a call of this scenario.
    fn decided(&self, record: &AuditRecord) -> bool {
        self.on_decider(record) && self.keys.iter().any(|key| key.identifies(record))
    }

    /// Whether `record` was written by the deciding sidecar's listener.
    fn on_decider(&self, record: &AuditRecord) -> bool {
        record.service == self.decider.service && record.direction == self.decider.direction
    }

    /// Whether the deciding sidecar has recorded every call (or never could have).
    pub(crate) fn is_recorded(&self, records: &[AuditRecord]) -> bool {
        self.keys.iter().all(|key| {
            records
                .iter()
                .any(|r| self.on_decider(r) && key.identifies(r))
        })
    }

    /// The verdict: the caller saw the expected outcome, and the deciding sidecar's audit
    /// records agree: exactly one per call.
    pub(crate) fn judge(&self, records: &[AuditRecord]) -> ScenarioResult {
        let found: Vec<&AuditRecord> = records.iter().filter(|r| self.decided(r)).collect();
        let sidecar = self.decider.sidecar;
        let (observed, record_ok) = match self.expected {
            Expected::Throttled { budget } => {
                let last = self
                    .keys
                    .last()
                    .and_then(|key| found.iter().copied().find(|r| key.identifies(r)));
                let mut observed = self.describe(last);
                let verdict = self.check_loop(budget, records, &found);
                match &verdict {
                    Ok(spent) => observed.push_str(spent),
                    Err(problem) => observed.push_str(&format!("; {problem}")),
                }
                (observed, verdict.is_ok())
            }
            Expected::Rotated => self.check_rotation(&found),
            _ => {
                let record = match found.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                };
                let mut observed = self.describe(record);
                let record_ok = record.is_some_and(|r| self.expected.matches_record(r));
                let names_caller = matches!(self.expected, Expected::AllowedAs { .. });
                match record {
                    Some(r) if record_ok && names_caller => observed.push_str(&format!(
                        " for {}, auth {}",
                        r.caller.as_deref().unwrap_or("no caller"),
                        r.auth
                    )),
                    Some(_) if record_ok => {}
                    Some(r) if names_caller => observed.push_str(&format!(
                        "; but the {sidecar} sidecar recorded {} for {}, auth {}",
                        summary(r),
                        r.caller.as_deref().unwrap_or("no caller"),
                        r.auth
                    )),
                    Some(r) => observed.push_str(&format!(
                        "; but the {sidecar} sidecar recorded {}",
                        summary(r)
                    )),
                    None => observed.push_str(&format!(
                        "; {} audit records on the {sidecar} sidecar, expected 1",
                        found.len()
                    )),
                }
                (observed, record_ok)
            }
        };
        let passed = record_ok && self.expected.matches_observation(&self.observation);
        ScenarioResult {
            name: self.name.clone(),
            expected: self.expected.to_string(),
            observed: if record_ok {
                format!("{observed} ({sidecar} sidecar)")
            } else {
                observed
            },
            passed,
        }
    }

    /// What the caller saw for the last call, with the policies from its `record`.
    fn describe(&self, record: Option<&AuditRecord>) -> String {
        match (&self.observation, record) {
            (
                Observation::Reply {
                    status,
                    code: Some(code),
                    field,
                    ..
                },
                _,
            ) => match field {
                Some(field) => format!("{status} {code} at {field}"),
                None => format!("{status} {code}"),
            },
            (
                Observation::Reply {
                    status, code: None, ..
                },
                Some(r),
            ) if *status < 400 && !r.policies.is_empty() => {
                format!("{status} allowed by {}", r.policies.join(", "))
            }
            (
                Observation::Reply {
                    status, code: None, ..
                },
                _,
            ) if *status < 400 => {
                format!("{status} allowed")
            }
            (
                Observation::Reply {
                    status, code: None, ..
                },
                _,
            ) => {
                format!("{status} without a problem code")
            }
            (Observation::Failed(_), Some(r)) if r.status.is_none() => format!(
                "handshake refused: {}",
                r.code.as_deref().unwrap_or("(no code)")
            ),
            (Observation::Failed(error), _) => format!("no response: {error}"),
        }
    }

    /// For a rotation: the serial changed, every call was answered 200, and the deciding
    /// sidecar recorded each as allowed. Returns what was seen and whether it holds.
    fn check_rotation(&self, found: &[&AuditRecord]) -> (String, bool) {
        let sidecar = self.decider.sidecar;
        let Some(rotation) = &self.rotation else {
            return (self.describe(None), false);
        };
        let calls = rotation.calls;
        let failed = calls - self.admitted;
        let mut observed = match &rotation.after {
            Some(after) => format!(
                "serial {}…→{}… after {calls} calls, {failed} failed",
                short_serial(&rotation.before),
                short_serial(after)
            ),
            None => format!(
                "serial {}… unchanged after {calls} calls ({} s), {failed} failed",
                short_serial(&rotation.before),
                ROTATION_DEADLINE.as_secs()
            ),
        };
        let allowed = found
            .iter()
            .filter(|r| self.expected.matches_record(r))
            .count();
        let recorded = found.len() == calls && allowed == calls;
        if !recorded {
            observed.push_str(&format!(
                "; {} audit records on the {sidecar} sidecar ({allowed} allowed) for {calls} \
                 calls",
                found.len()
            ));
        }
        (
            observed,
            recorded && failed == 0 && rotation.after.is_some(),
        )
    }

    /// For a retry loop: one record per call, every call before the last allowed, the last
    /// refused by the limiter, after exactly `budget` calls were admitted on the caller's
    /// budget for the route, counting earlier scenarios' calls that spent the same budget.
    /// Returns how the budget was spent, or what is wrong.
    fn check_loop(
        &self,
        budget: u32,
        records: &[AuditRecord],
        found: &[&AuditRecord],
    ) -> Result<String, String> {
        let sidecar = self.decider.sidecar;
        let calls = self.keys.len();
        if found.len() != calls {
            return Err(format!(
                "{} audit records on the {sidecar} sidecar for {calls} calls",
                found.len()
            ));
        }
        let refusals: Vec<&AuditRecord> = found
            .iter()
            .copied()
            .filter(|r| r.decision == Decision::Deny)
            .collect();
        let refusal = match refusals.as_slice() {
            [] if self.observation.is_ok() => {
                return Err(format!("no refusal after {calls} calls"));
            }
            [one] => *one,
            _ => {
                return Err(format!(
                    "the {sidecar} sidecar recorded {} refusals, expected 1",
                    refusals.len()
                ))
            }
        };
        if !self.expected.matches_record(refusal) {
            return Err(format!(
                "but the {sidecar} sidecar recorded {}",
                summary(refusal)
            ));
        }
        let allowed = found
            .iter()
            .filter(|r| Expected::Allowed.matches_record(r))
            .count();
        if allowed != self.admitted {
            return Err(format!(
                "the {sidecar} sidecar recorded {allowed} allowed calls, expected {}",
                self.admitted
            ));
        }
        // Calls by the same caller on the same route, before the loop, spent the same budget:
        // the limiter runs before every other check, so refused ones count too.
        let earlier = records
            .iter()
            .filter(|r| {
                self.on_decider(r)
                    && !self.decided(r)
                    && r.caller.is_some()
                    && r.caller == refusal.caller
                    && r.route == refusal.route
                    && r.code.as_deref() != Some(RATE_LIMITED)
                    && r.ts < refusal.ts
            })
            .count();
        let total = earlier + allowed;
        if total != budget as usize {
            return Err(format!(
                "{total} admitted ({earlier} by earlier scenarios, {allowed} in the loop), \
                 but the budget is {budget}"
            ));
        }
        let retry = match &self.observation {
            Observation::Reply {
                retry_after: Some(seconds),
                ..
            } => format!(", Retry-After {seconds} s"),
            _ => String::new(),
        };
        Ok(if earlier == 0 {
            format!(" after {total} admitted{retry}")
        } else {
            format!(
                " after {total} admitted ({earlier} by earlier scenarios, {allowed} in the \
                 loop){retry}"
            )
        })
    }
}

/// The first 8 hex digits of a serial: enough to tell two apart.
fn short_serial(serial: &str) -> &str {
    serial.get(..8).unwrap_or(serial)
}

/// A record's decision, status and code, for messages.
fn summary(record: &AuditRecord) -> String {
    format!(
        "{} {} {}",
        record.decision,
        record
            .status
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        record.code.as_deref().unwrap_or("(no code)"),
    )
}
/// The demo's scenarios, in the order they run, addressed from `config`.
pub(crate) fn plan(config: &Config, layout: &Layout) -> Result<Vec<Scenario>, DemoError> {
    let outbound = |name: &'static str| {
        service(config, name)?
            .outbound
            .ok_or_else(|| DemoError::MissingListener {
                service: name.to_owned(),
                listener: "outbound",
            })
    };
    let orders_out = outbound("orders")?;
    let billing_out = outbound("billing")?;
    let billing_in = service(config, "billing")?.inbound;
    let customers = service(config, "customers")?;
    let token_service = service(config, TOKEN_SERVICE)?;
    let roots = load_roots(&layout.bundle())?;
    let rogue = SvidMaterial::load_dir(&layout.rogue_svid_dir())?;
    let anonymous = client::client_config(roots.clone(), customers.spiffe_id.clone(), None)?;
    let impersonating =
        client::client_config(roots.clone(), customers.spiffe_id.clone(), Some(&rogue))?;
    // The reporting job has no certificate: it checks the server's, and brings a token.
    let token_bearer = client::client_config(roots, token_service.spiffe_id.clone(), None)?;
    let budget = limited_rate(config)?.burst;

    let mut n = 0;
    let mut call = |method: Method, host: &str, path: &str, traced: bool| {
        n += 1;
        let mut call = Call::new(method, host, path);
        call.request_id = traced.then(|| format!("demo-scenario-{n}"));
        call
    };
    let app =
        |from: &str, to: &str, call: &Call| format!("{from} → {to}: {} {}", call.method, call.path);

    let get_invoice = call(Method::GET, "billing", "/invoices/42", true);
    let mut pay = call(Method::POST, "billing", "/payments", true);
    pay.body = Body::Json(json!({ "invoice": "42", "amount_cents": 1999, "currency": "EUR" }));
    let get_customer = call(Method::GET, "customers", "/customers/7", true);
    let debug_page = call(Method::GET, "customers", "/internal/debug", true);
    let delete_customer = call(Method::DELETE, "customers", "/customers/7", true);
    let no_cert = call(Method::GET, "customers", "/customers/7", false);
    let rogue_cert = call(Method::GET, "customers", "/customers/7", false);
    let plaintext = call(Method::GET, "billing", "/invoices/42", false);
    let impostor = call(Method::GET, IMPERSONATED, "/stock/1", true);
    let with_token = call(Method::GET, TOKEN_SERVICE, "/invoices/42", true);
    let with_stolen_token = call(Method::GET, TOKEN_SERVICE, "/invoices/42", true);
    let with_token_for_customers = call(Method::GET, TOKEN_SERVICE, "/invoices/42", true);
    let mut unknown_field = call(Method::POST, "billing", "/payments", true);
    unknown_field.body = Body::Json(json!({
        "invoice": "42", "amount_cents": 1999, "currency": "EUR", "approved_by": "admin",
    }));
    let undocumented = call(Method::GET, "billing", "/admin/export", true);
    // q = 1' OR '1'='1
    let sql_injection = call(
        Method::GET,
        "billing",
        "/invoices?q=1%27%20OR%20%271%27%3D%271",
        true,
    );
    let traversal = call(
        Method::GET,
        "billing",
        "/invoices/..%2F..%2Fetc%2Fpasswd",
        true,
    );
    let retry_loop = call(Method::GET, "billing", "/invoices/42", true);
    // Invoice searches: orders' default budget at billing, not its small one for
    // /invoices/{id}, which the retry loop has spent.
    let under_rotation = call(Method::GET, "billing", "/invoices?q=42", true);
    let after_revocation = call(Method::GET, "billing", "/invoices?q=42", false);

    Ok(vec![
        Scenario {
            name: app("orders", "billing", &get_invoice),
            expected: Expected::Allowed,
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: get_invoice,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: app("orders", "billing", &pay),
            expected: Expected::Allowed,
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: pay,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: app("billing", "customers", &get_customer),
            expected: Expected::Allowed,
            decider: Decider::inbound("customers"),
            step: Step::Call,
            call: get_customer,
            to: billing_out,
            tls: None,
        },
        Scenario {
            name: format!(
                "{} (served by the customers app, in no spec: customers validates in report mode)",
                app("billing", "customers", &debug_page)
            ),
            expected: Expected::Reported {
                code: "palisade.schema.unknown_route",
            },
            decider: Decider::inbound("customers"),
            step: Step::Call,
            call: debug_page,
            to: billing_out,
            tls: None,
        },
        Scenario {
            name: app("orders", "customers", &delete_customer),
            expected: Expected::Refused {
                status: 403,
                code: "palisade.authz.denied",
            },
            decider: Decider::inbound("customers"),
            step: Step::Call,
            call: delete_customer,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: "caller without a client certificate → customers inbound".into(),
            expected: Expected::HandshakeRefused {
                code: "palisade.identity.missing",
            },
            decider: Decider::inbound("customers"),
            step: Step::Call,
            call: no_cert,
            to: customers.inbound,
            tls: Some(anonymous),
        },
        Scenario {
            name: format!("\"{ROGUE_CLAIMS}\" certificate from a rogue CA → customers inbound"),
            expected: Expected::HandshakeRefused {
                code: "palisade.identity.untrusted",
            },
            decider: Decider::inbound("customers"),
            step: Step::Call,
            call: rogue_cert,
            to: customers.inbound,
            tls: Some(impersonating),
        },
        Scenario {
            name: "plaintext HTTP → billing inbound".into(),
            expected: Expected::Refused {
                status: 400,
                code: "palisade.identity.plaintext",
            },
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: plaintext,
            to: billing_in,
            tls: None,
        },
        Scenario {
            name: format!(
                "{} (an impostor with the {IMPOSTOR_SVID_OF} SVID answers)",
                app("orders", IMPERSONATED, &impostor)
            ),
            expected: Expected::Refused {
                status: 502,
                code: "palisade.identity.server_mismatch",
            },
            decider: Decider {
                sidecar: "orders",
                service: IMPERSONATED,
                direction: Direction::Outbound,
            },
            step: Step::Call,
            call: impostor,
            to: orders_out,
            tls: None,
        },
        // Access tokens from the control plane, presented straight to billing's inbound
        // listener without a client certificate, as a caller outside the mesh does.
        Scenario {
            name: format!(
                "reporting job outside the mesh (token via private_key_jwt, no certificate) \
                 → {TOKEN_SERVICE} inbound: {} {}",
                with_token.method, with_token.path
            ),
            expected: Expected::AllowedAs {
                caller: REPORTING_JOB,
                auth: AuthMethod::Jwt,
            },
            decider: Decider::inbound(TOKEN_SERVICE),
            step: Step::Token {
                client: REPORTING_JOB,
                audience: TOKEN_SERVICE,
                scope: "invoices:read",
            },
            call: with_token,
            to: token_service.inbound,
            tls: Some(token_bearer.clone()),
        },
        // A token orders got with its SVID is bound to that certificate: whoever copies
        // it cannot use it without orders' private key.
        Scenario {
            name: format!(
                "reporting job presents a token orders obtained (bound to orders' \
                 certificate) → {TOKEN_SERVICE} inbound: {} {}",
                with_stolen_token.method, with_stolen_token.path
            ),
            expected: Expected::Refused {
                status: 401,
                code: "palisade.token.certificate_required",
            },
            decider: Decider::inbound(TOKEN_SERVICE),
            step: Step::Token {
                client: "orders",
                audience: TOKEN_SERVICE,
                scope: "invoices:read",
            },
            call: with_stolen_token,
            to: token_service.inbound,
            tls: Some(token_bearer.clone()),
        },
        // A token is good for the one service it names (its audience), whoever holds it.
        Scenario {
            name: format!(
                "reporting job presents its token for customers → {TOKEN_SERVICE} inbound: {} {}",
                with_token_for_customers.method, with_token_for_customers.path
            ),
            expected: Expected::Refused {
                status: 401,
                code: "palisade.token.wrong_audience",
            },
            decider: Decider::inbound(TOKEN_SERVICE),
            step: Step::Token {
                client: REPORTING_JOB,
                audience: "customers",
                scope: "customers:read",
            },
            call: with_token_for_customers,
            to: token_service.inbound,
            tls: Some(token_bearer),
        },
        // From here on the policies permit every call (orders may GET anything on billing,
        // and POST /payments), so each is refused by the guard stage it is about.
        Scenario {
            name: format!(
                "{} with a field the spec does not declare (approved_by)",
                app("orders", "billing", &unknown_field)
            ),
            expected: Expected::Blocked {
                status: 400,
                code: "palisade.schema.unknown_field",
                field: Some("/approved_by"),
            },
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: unknown_field,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: format!(
                "{} (served by the billing app, not in its spec)",
                app("orders", "billing", &undocumented)
            ),
            expected: Expected::Blocked {
                status: 404,
                code: "palisade.schema.unknown_route",
                field: None,
            },
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: undocumented,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: "orders → billing: GET /invoices?q=1' OR '1'='1 (SQL injection, sent \
                   percent-encoded)"
                .into(),
            expected: Expected::Blocked {
                status: 400,
                code: "palisade.injection.sql",
                field: Some("query/q"),
            },
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: sql_injection,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: format!("{} (path traversal)", app("orders", "billing", &traversal)),
            expected: Expected::Blocked {
                status: 400,
                code: "palisade.injection.path_traversal",
                field: Some("path"),
            },
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: traversal,
            to: orders_out,
            tls: None,
        },
        // Last: it spends orders' budget for invoice reads, which the invoice reads above
        // share (and which would refuse them for the next 12 s).
        Scenario {
            name: format!(
                "orders retry loop → billing: {} {} until refused",
                retry_loop.method, retry_loop.path
            ),
            expected: Expected::Throttled { budget },
            decider: Decider::inbound("billing"),
            step: Step::Call,
            call: retry_loop,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: format!(
                "billing's SVID rotates under traffic: {} every {} ms until renewed",
                app("orders", "billing", &under_rotation),
                ROTATION_CALL_INTERVAL.as_millis()
            ),
            expected: Expected::Rotated,
            decider: Decider::inbound("billing"),
            step: Step::Rotation { service: "billing" },
            call: under_rotation,
            to: orders_out,
            tls: None,
        },
        // Last: it cuts orders off for good.
        Scenario {
            name: format!(
                "orders is revoked by the control plane; orders' current SVID → billing \
                 inbound: {} {}",
                after_revocation.method, after_revocation.path
            ),
            expected: Expected::HandshakeRefused { code: REVOKED },
            decider: Decider::inbound("billing"),
            step: Step::Revocation {
                revoked: "orders",
                enforcer: "billing",
            },
            call: after_revocation,
            to: billing_in,
            // Built when the scenario runs, from the SVID orders' sidecar holds then.
            tls: None,
        },
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use palisade_audit::AuthMethod;
    use time::{Duration, OffsetDateTime};

    use super::*;

    const ORDERS: &str = "spiffe://palisade.demo/ns/demo/sa/orders";

    fn record(service: &str, direction: Direction, request_id: &str, peer: &str) -> AuditRecord {
        AuditRecord {
            ts: OffsetDateTime::now_utc(),
            request_id: request_id.into(),
            caller: None,
            auth: AuthMethod::Mtls,
            service: service.into(),
            method: Some("GET".into()),
            path: Some("/invoices/42".into()),
            route: Some("/invoices/{id}".into()),
            decision: Decision::Allow,
            code: None,
            policies: vec!["orders-read-billing".into()],
            status: Some(200),
            latency_us: 1,
            bytes_in: 0,
            bytes_out: 10,
            data_classes: vec![],
            peer: Some(peer.into()),
            direction,
            detail: None,
            findings: Vec::new(),
            ratelimit_degraded: false,
            shape: None,
        }
    }

    /// A deny record by billing's inbound listener for orders' call `request_id`.
    fn refused(request_id: &str, status: u16, code: &str, finding: Option<&str>) -> AuditRecord {
        let mut r = record("billing", Direction::Inbound, request_id, "127.0.0.1:2");
        r.caller = Some(ORDERS.into());
        r.decision = Decision::Deny;
        r.status = Some(status);
        r.code = Some(code.into());
        r.findings = finding.into_iter().map(str::to_owned).collect();
        r
    }

    fn reply(status: u16, code: Option<&str>, field: Option<&str>) -> Observation {
        Observation::Reply {
            status,
            code: code.map(str::to_owned),
            field: field.map(str::to_owned),
            retry_after: None,
        }
    }

    fn allowed_probe() -> Probe {
        Probe {
            name: "orders → billing".into(),
            expected: Expected::Allowed,
            decider: Decider::inbound("billing"),
            keys: vec![Key::RequestId("demo-scenario-1".into())],
            admitted: 0,
            rotation: None,
            observation: reply(200, None, None),
        }
    }

    #[test]
    fn passes_with_one_agreeing_record_on_the_deciding_sidecar() {
        let records = [
            // The caller's own sidecar also records the call; it did not decide it.
            record(
                "billing",
                Direction::Outbound,
                "demo-scenario-1",
                "127.0.0.1:1",
            ),
            record(
                "billing",
                Direction::Inbound,
                "demo-scenario-1",
                "127.0.0.1:2",
            ),
            record("billing", Direction::Inbound, "other", "127.0.0.1:3"),
        ];
        let result = allowed_probe().judge(&records);
        assert!(result.passed, "{result:?}");
        assert_eq!(result.expected, "200 allowed");
        assert_eq!(
            result.observed,
            "200 allowed by orders-read-billing (billing sidecar)"
        );
    }

    #[test]
    fn fails_without_a_record_or_with_two() {
        let result = allowed_probe().judge(&[]);
        assert!(!result.passed);
        assert!(
            result
                .observed
                .contains("0 audit records on the billing sidecar"),
            "{}",
            result.observed
        );
        let one = record(
            "billing",
            Direction::Inbound,
            "demo-scenario-1",
            "127.0.0.1:2",
        );
        let result = allowed_probe().judge(&[one.clone(), one]);
        assert!(!result.passed);
        assert!(
            result.observed.contains("2 audit records"),
            "{}",
            result.observed
        );
    }

    #[test]
    fn fails_when_the_record_disagrees_with_the_caller() {
        let mut denied = record(
            "billing",
            Direction::Inbound,
            "demo-scenario-1",
            "127.0.0.1:2",
        );
        denied.decision = Decision::Deny;
        denied.code = Some("palisade.authz.denied".into());
        let result = allowed_probe().judge(&[denied]);
        assert!(!result.passed);
        assert!(
            result
                .observed
                .contains("recorded deny 200 palisade.authz.denied"),
            "{}",
            result.observed
        );
    }

    #[test]
    fn an_allowed_call_with_a_reported_finding_does_not_pass() {
        let mut reported = record(
            "billing",
            Direction::Inbound,
            "demo-scenario-1",
            "127.0.0.1:2",
        );
        reported.findings = vec!["palisade.injection.sql@query/q".into()];
        assert!(!allowed_probe().judge(&[reported]).passed);
    }

    #[test]
    fn fails_when_the_caller_sees_another_outcome() {
        let mut probe = allowed_probe();
        probe.observation = reply(403, Some("palisade.authz.denied"), None);
        let result = probe.judge(&[record(
            "billing",
            Direction::Inbound,
            "demo-scenario-1",
            "p",
        )]);
        assert!(!result.passed);
        assert!(result.observed.starts_with("403 palisade.authz.denied"));
    }

    /// The reporting job's call with a token, allowed by billing.
    fn token_probe() -> Probe {
        Probe {
            name: "reporting job → billing inbound".into(),
            expected: Expected::AllowedAs {
                caller: REPORTING_JOB,
                auth: AuthMethod::Jwt,
            },
            ..allowed_probe()
        }
    }

    fn token_record() -> AuditRecord {
        let mut r = record("billing", Direction::Inbound, "demo-scenario-1", "p");
        r.caller = Some(REPORTING_JOB.into());
        r.auth = AuthMethod::Jwt;
        r.policies = vec!["reporting-job-read-invoices".into()];
        r
    }

    #[test]
    fn a_token_caller_is_checked_in_the_record_by_caller_and_auth() {
        let result = token_probe().judge(&[token_record()]);
        assert!(result.passed, "{result:?}");
        assert_eq!(result.expected, "200 allowed for reporting-job, auth jwt");
        assert_eq!(
            result.observed,
            "200 allowed by reporting-job-read-invoices for reporting-job, auth jwt (billing \
             sidecar)"
        );

        let mut by_certificate = token_record();
        by_certificate.caller = Some(ORDERS.into());
        by_certificate.auth = AuthMethod::Mtls;
        let result = token_probe().judge(&[by_certificate]);
        assert!(!result.passed);
        assert!(
            result.observed.ends_with(&format!(
                "; but the billing sidecar recorded allow 200 (no code) for {ORDERS}, auth mtls"
            )),
            "{}",
            result.observed
        );

        let mut by_certificate_as_the_job = token_record();
        by_certificate_as_the_job.auth = AuthMethod::Mtls;
        assert!(!token_probe().judge(&[by_certificate_as_the_job]).passed);

        let mut probe = token_probe();
        probe.observation = reply(401, Some("palisade.token.certificate_required"), None);
        assert!(!probe.judge(&[token_record()]).passed);
    }

    #[test]
    fn a_scenario_without_its_token_fails_with_the_reason() {
        let probe = Probe {
            keys: Vec::new(),
            observation: Observation::Failed(
                "getting an access token for reporting-job (audience billing) from the control \
                 plane: 401 invalid_client: assertion has expired"
                    .into(),
            ),
            ..token_probe()
        };
        assert!(probe.is_recorded(&[]));
        let result = probe.judge(&[]);
        assert!(!result.passed);
        assert!(
            result
                .observed
                .starts_with("no response: getting an access token for reporting-job"),
            "{}",
            result.observed
        );
    }

    fn blocked_probe() -> Probe {
        Probe {
            name: "orders → billing: POST /payments with an unknown field".into(),
            expected: Expected::Blocked {
                status: 400,
                code: "palisade.schema.unknown_field",
                field: Some("/approved_by"),
            },
            observation: reply(
                400,
                Some("palisade.schema.unknown_field"),
                Some("/approved_by"),
            ),
            ..allowed_probe()
        }
    }

    #[test]
    fn a_guard_refusal_names_the_field_and_needs_the_finding_in_the_record() {
        let finding = "palisade.schema.unknown_field@/approved_by";
        let good = refused(
            "demo-scenario-1",
            400,
            "palisade.schema.unknown_field",
            Some(finding),
        );
        let result = blocked_probe().judge(std::slice::from_ref(&good));
        assert!(result.passed, "{result:?}");
        assert_eq!(
            result.expected,
            "400 palisade.schema.unknown_field at /approved_by"
        );
        assert_eq!(
            result.observed,
            "400 palisade.schema.unknown_field at /approved_by (billing sidecar)"
        );

        let mut elsewhere = good.clone();
        elsewhere.findings = vec!["palisade.schema.unknown_field@/memo".into()];
        let mut no_finding = good.clone();
        no_finding.findings.clear();
        for record in [elsewhere, no_finding] {
            assert!(!blocked_probe().judge(&[record]).passed);
        }

        let mut probe = blocked_probe();
        probe.observation = reply(400, Some("palisade.schema.unknown_field"), Some("/memo"));
        assert!(!probe.judge(&[good]).passed);
    }

    #[test]
    fn a_guard_refusal_without_a_field_accepts_any_location_of_its_code() {
        let probe = Probe {
            expected: Expected::Blocked {
                status: 404,
                code: "palisade.schema.unknown_route",
                field: None,
            },
            observation: reply(404, Some("palisade.schema.unknown_route"), None),
            ..allowed_probe()
        };
        let record = refused(
            "demo-scenario-1",
            404,
            "palisade.schema.unknown_route",
            Some("palisade.schema.unknown_route@request"),
        );
        let result = probe.judge(&[record]);
        assert!(result.passed, "{result:?}");
        assert_eq!(
            result.observed,
            "404 palisade.schema.unknown_route (billing sidecar)"
        );
        assert!(!is_finding(
            &["palisade.injection.sql@path".into()],
            "palisade.schema.unknown_route",
            None
        ));
        assert!(!is_finding(
            &["palisade.schema.unknown_routes@request".into()],
            "palisade.schema.unknown_route",
            None
        ));
    }

    /// A retry loop of `calls` calls, the last refused with 429, against a budget of 5.
    fn loop_probe(calls: usize) -> Probe {
        Probe {
            name: "orders retry loop → billing".into(),
            expected: Expected::Throttled { budget: 5 },
            decider: Decider::inbound("billing"),
            keys: (1..=calls)
                .map(|i| Key::RequestId(format!("demo-scenario-13.{i}")))
                .collect(),
            admitted: calls - 1,
            rotation: None,
            observation: Observation::Reply {
                status: 429,
                code: Some(RATE_LIMITED.into()),
                field: None,
                retry_after: Some("12".into()),
            },
        }
    }

    /// Billing's records of the loop's `calls` calls by orders, `earlier` invoice reads
    /// by orders before it, and an unrelated call by another caller on the same route.
    fn loop_records(earlier: usize, calls: usize) -> Vec<AuditRecord> {
        let start = OffsetDateTime::now_utc();
        let at = |r: &mut AuditRecord, i: usize| {
            r.ts = start + Duration::milliseconds(i64::try_from(i).unwrap());
            r.caller.get_or_insert_with(|| ORDERS.into());
        };
        let mut records = Vec::new();
        for i in 0..earlier {
            let mut r = record("billing", Direction::Inbound, &format!("e{i}"), "p");
            at(&mut r, i);
            records.push(r);
        }
        let mut other = record("billing", Direction::Inbound, "other", "p");
        other.caller = Some("spiffe://palisade.demo/ns/demo/sa/customers".into());
        at(&mut other, earlier);
        records.push(other);
        for i in 1..=calls {
            let id = format!("demo-scenario-13.{i}");
            let mut r = if i == calls {
                refused(
                    &id,
                    429,
                    RATE_LIMITED,
                    Some("palisade.ratelimit.exceeded@request"),
                )
            } else {
                record("billing", Direction::Inbound, &id, "p")
            };
            at(&mut r, earlier + 1 + i);
            records.push(r.clone());
            // The orders sidecar's outbound record of the same call does not count.
            r.direction = Direction::Outbound;
            records.push(r);
        }
        records
    }

    #[test]
    fn a_retry_loop_passes_when_refused_once_the_budget_is_spent() {
        let result = loop_probe(6).judge(&loop_records(0, 6));
        assert!(result.passed, "{result:?}");
        assert_eq!(
            result.expected,
            "429 palisade.ratelimit.exceeded after 5 admitted"
        );
        assert_eq!(
            result.observed,
            "429 palisade.ratelimit.exceeded after 5 admitted, Retry-After 12 s (billing sidecar)"
        );
    }

    #[test]
    fn a_retry_loop_counts_earlier_calls_on_the_same_budget() {
        let probe = loop_probe(4);
        let records = loop_records(2, 4);
        assert!(probe.is_recorded(&records));
        let result = probe.judge(&records);
        assert!(result.passed, "{result:?}");
        assert_eq!(
            result.observed,
            "429 palisade.ratelimit.exceeded after 5 admitted (2 by earlier scenarios, 3 in the \
             loop), Retry-After 12 s (billing sidecar)"
        );
    }

    #[test]
    fn a_retry_loop_fails_when_refused_too_early_or_too_late() {
        for (earlier, calls) in [(0, 5), (2, 5), (0, 7)] {
            let result = loop_probe(calls).judge(&loop_records(earlier, calls));
            assert!(!result.passed, "{earlier} + {calls}: {result:?}");
            assert!(
                result.observed.contains("but the budget is 5"),
                "{}",
                result.observed
            );
        }
    }

    #[test]
    fn a_retry_loop_fails_without_a_refusal_or_a_record_per_call() {
        let mut never = loop_probe(RETRY_LOOP_MAX_CALLS);
        never.observation = reply(200, None, None);
        let mut records = loop_records(0, RETRY_LOOP_MAX_CALLS);
        for r in &mut records {
            *r = record(&r.service, r.direction, &r.request_id, "p");
        }
        let result = never.judge(&records);
        assert!(!result.passed);
        assert!(
            result
                .observed
                .contains(&format!("no refusal after {RETRY_LOOP_MAX_CALLS} calls")),
            "{}",
            result.observed
        );

        let mut records = loop_records(0, 6);
        records.retain(|r| r.request_id != "demo-scenario-13.3");
        let probe = loop_probe(6);
        assert!(!probe.is_recorded(&records));
        let result = probe.judge(&records);
        assert!(!result.passed);
        assert!(
            result
                .observed
                .contains("5 audit records on the billing sidecar for 6 calls"),
            "{}",
            result.observed
        );
    }

    #[test]
    fn a_retry_loop_needs_retry_after_and_the_finding() {
        let mut probe = loop_probe(6);
        probe.observation = reply(429, Some(RATE_LIMITED), None);
        assert!(!probe.judge(&loop_records(0, 6)).passed);

        let mut records = loop_records(0, 6);
        for r in &mut records {
            r.findings.clear();
        }
        let result = loop_probe(6).judge(&records);
        assert!(!result.passed);
        assert!(
            result
                .observed
                .contains("recorded deny 429 palisade.ratelimit.exceeded"),
            "{}",
            result.observed
        );
    }

    /// A rotation scenario of `calls` calls, all answered 200, whose serial changed or not.
    fn rotation_probe(calls: usize, rotated: bool) -> Probe {
        Probe {
            name: "billing's SVID rotates".into(),
            expected: Expected::Rotated,
            decider: Decider::inbound("billing"),
            keys: (1..=calls)
                .map(|i| Key::RequestId(format!("demo-scenario-14.{i}")))
                .collect(),
            admitted: calls,
            rotation: Some(Rotation {
                before: "3a525cba0011".into(),
                after: rotated.then(|| "7f01aa22bb33".into()),
                calls,
            }),
            observation: reply(200, None, None),
        }
    }

    fn rotation_records(calls: usize) -> Vec<AuditRecord> {
        (1..=calls)
            .map(|i| {
                record(
                    "billing",
                    Direction::Inbound,
                    &format!("demo-scenario-14.{i}"),
                    "p",
                )
            })
            .collect()
    }

    #[test]
    fn a_rotation_passes_when_the_serial_changes_and_every_call_is_allowed() {
        let probe = rotation_probe(3, true);
        let records = rotation_records(3);
        assert!(probe.is_recorded(&records));
        let result = probe.judge(&records);
        assert!(result.passed, "{result:?}");
        assert_eq!(result.expected, "new SVID serial, every call 200 allowed");
        assert_eq!(
            result.observed,
            "serial 3a525cba…→7f01aa22… after 3 calls, 0 failed (billing sidecar)"
        );
    }

    #[test]
    fn a_rotation_fails_without_a_new_serial_a_record_per_call_or_with_a_failed_call() {
        let result = rotation_probe(3, false).judge(&rotation_records(3));
        assert!(!result.passed);
        assert!(result.observed.contains("unchanged"), "{}", result.observed);

        let result = rotation_probe(3, true).judge(&rotation_records(2));
        assert!(!result.passed);
        assert!(
            result
                .observed
                .contains("2 audit records on the billing sidecar (2 allowed) for 3 calls"),
            "{}",
            result.observed
        );

        let mut probe = rotation_probe(3, true);
        probe.admitted = 2;
        let result = probe.judge(&rotation_records(3));
        assert!(!result.passed);
        assert!(result.observed.contains("1 failed"), "{}", result.observed);
    }

    #[test]
    fn a_handshake_refusal_is_found_by_peer_and_reported_as_recorded() {
        let probe = Probe {
            name: "no certificate".into(),
            expected: Expected::HandshakeRefused {
                code: "palisade.identity.missing",
            },
            decider: Decider::inbound("customers"),
            keys: vec![Key::Peer("127.0.0.1:4000".into())],
            admitted: 0,
            rotation: None,
            observation: Observation::Failed("received fatal alert: CertificateRequired".into()),
        };
        let mut refused = record("customers", Direction::Inbound, "r", "127.0.0.1:4000");
        refused.decision = Decision::Deny;
        refused.code = Some("palisade.identity.missing".into());
        refused.status = None;
        refused.method = None;
        refused.path = None;
        refused.policies = vec![];
        assert!(!probe.is_recorded(&[]));
        assert!(probe.is_recorded(std::slice::from_ref(&refused)));
        let result = probe.judge(&[refused]);
        assert!(result.passed, "{result:?}");
        assert_eq!(
            result.expected,
            "handshake refused: palisade.identity.missing"
        );
        assert_eq!(
            result.observed,
            "handshake refused: palisade.identity.missing (customers sidecar)"
        );
    }

    #[test]
    fn a_call_that_never_connected_fails_without_waiting_for_a_record() {
        let probe = Probe {
            keys: Vec::new(),
            observation: Observation::Failed("connection refused".into()),
            ..allowed_probe()
        };
        assert!(probe.is_recorded(&[]));
        let result = probe.judge(&[]);
        assert!(!result.passed);
        assert!(result
            .observed
            .starts_with("no response: connection refused"));
    }

    #[test]
    fn the_plan_ends_with_the_retry_loop_the_rotation_and_the_revocation() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(&tmp.path().join("demo"));
        crate::workspace::create(&layout).unwrap();
        crate::workspace::write_config(&layout, "127.0.0.1:7000".parse().unwrap()).unwrap();
        let config = Config::load(&layout.config).unwrap();
        let plan = plan(&config, &layout).unwrap();
        assert_eq!(plan.len(), 19);
        let budget = limited_rate(&config).unwrap().burst;
        assert_eq!(budget, 5);
        let [rest @ .., retry_loop, rotation, revocation] = plan.as_slice() else {
            panic!("{} scenarios", plan.len())
        };
        assert_eq!(retry_loop.expected, Expected::Throttled { budget });
        assert!(
            retry_loop.name.contains("retry loop"),
            "{}",
            retry_loop.name
        );
        assert!(rest
            .iter()
            .all(|s| !matches!(s.expected, Expected::Throttled { .. })
                && matches!(s.step, Step::Call | Step::Token { .. })));
        // The rotation keeps calling, so it stays off orders' small budget for invoice reads.
        assert_eq!(rotation.step, Step::Rotation { service: "billing" });
        assert_eq!(rotation.expected, Expected::Rotated);
        assert_eq!(rotation.call.path, "/invoices?q=42");
        // The revocation cuts orders off: last.
        assert_eq!(
            revocation.step,
            Step::Revocation {
                revoked: "orders",
                enforcer: "billing"
            }
        );
        assert_eq!(
            revocation.expected,
            Expected::HandshakeRefused { code: REVOKED }
        );
        let guarded = plan
            .iter()
            .filter(|s| matches!(s.expected, Expected::Blocked { .. }))
            .count();
        assert_eq!(guarded, 4);
        // The token scenarios are about identity, so they come with the identity scenarios,
        // before the guard stages' (and so before the revocation, after which orders gets
        // no token); each goes straight to billing's inbound listener without a client
        // certificate.
        let first_guarded = plan
            .iter()
            .position(|s| matches!(s.expected, Expected::Blocked { .. }))
            .unwrap();
        let tokens: Vec<(usize, &Scenario)> = plan
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.step, Step::Token { .. }))
            .collect();
        assert_eq!(tokens.len(), 3);
        let billing = config.service(TOKEN_SERVICE).unwrap();
        for (i, scenario) in &tokens {
            assert!(*i < first_guarded, "{}", scenario.name);
            assert_eq!(scenario.to, billing.inbound);
            assert!(scenario.tls.is_some() && scenario.call.authorization.is_none());
            assert_eq!(scenario.decider, Decider::inbound(TOKEN_SERVICE));
        }
        let steps: Vec<(Step, Expected)> =
            tokens.iter().map(|(_, s)| (s.step, s.expected)).collect();
        assert_eq!(
            steps,
            [
                (
                    Step::Token {
                        client: REPORTING_JOB,
                        audience: "billing",
                        scope: "invoices:read"
                    },
                    Expected::AllowedAs {
                        caller: REPORTING_JOB,
                        auth: AuthMethod::Jwt
                    },
                ),
                (
                    Step::Token {
                        client: "orders",
                        audience: "billing",
                        scope: "invoices:read"
                    },
                    Expected::Refused {
                        status: 401,
                        code: "palisade.token.certificate_required"
                    },
                ),
                (
                    Step::Token {
                        client: REPORTING_JOB,
                        audience: "customers",
                        scope: "customers:read"
                    },
                    Expected::Refused {
                        status: 401,
                        code: "palisade.token.wrong_audience"
                    },
                ),
            ]
        );
        // Every traced call has its own request id, so its records can be told apart.
        let mut ids: Vec<&str> = plan
            .iter()
            .filter_map(|s| s.call.request_id.as_deref())
            .collect();
        let traced = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), traced);
    }
}
