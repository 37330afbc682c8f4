//! The scenarios: what each one does, what it should lead to, and the verdict, which needs
//! both the caller's view and the audit record left by the sidecar that decided.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Method;
use palisade_audit::{AuditRecord, Decision, Direction};
use palisade_config::Config;
use palisade_identity::{load_roots, SvidMaterial};
use rustls::ClientConfig;
use serde_json::json;

use crate::client::{self, Call, Exchange};
use crate::mesh::service;
use crate::workspace::{Layout, IMPERSONATED, IMPOSTOR_SVID_OF, ROGUE_CLAIMS};
use crate::{DemoError, ScenarioResult};

/// The outcome a scenario should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// 200, allowed by a policy.
    Allowed,
    /// An HTTP refusal with a problem body.
    Refused {
        /// The status.
        status: u16,
        /// The problem's `code`.
        code: &'static str,
    },
    /// The TLS handshake is refused: no HTTP exchange happens.
    HandshakeRefused {
        /// The code the sidecar records.
        code: &'static str,
    },
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Allowed => f.write_str("200 allowed"),
            Expected::Refused { status, code } => write!(f, "{status} {code}"),
            Expected::HandshakeRefused { code } => write!(f, "handshake refused: {code}"),
        }
    }
}

impl Expected {
    fn matches_observation(self, observation: &Observation) -> bool {
        match (self, observation) {
            (Expected::Allowed, Observation::Reply { status, code }) => {
                *status == 200 && code.is_none()
            }
            (Expected::Refused { status, code }, Observation::Reply { status: s, code: c }) => {
                *s == status && c.as_deref() == Some(code)
            }
            (Expected::HandshakeRefused { .. }, Observation::Failed(_)) => true,
            _ => false,
        }
    }

    fn matches_record(self, record: &AuditRecord) -> bool {
        match self {
            Expected::Allowed => {
                record.decision == Decision::Allow
                    && record.code.is_none()
                    && record.status == Some(200)
            }
            Expected::Refused { status, code } => {
                record.decision == Decision::Deny
                    && record.code.as_deref() == Some(code)
                    && record.status == Some(status)
            }
            Expected::HandshakeRefused { code } => {
                record.decision == Decision::Deny
                    && record.code.as_deref() == Some(code)
                    && record.status.is_none()
            }
        }
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

/// One scenario, ready to run.
pub(crate) struct Scenario {
    /// What it shows.
    pub name: String,
    /// What should happen.
    pub expected: Expected,
    /// Who decides.
    pub decider: Decider,
    call: Call,
    to: SocketAddr,
    /// TLS client configuration, for calls straight to an inbound listener.
    tls: Option<Arc<ClientConfig>>,
}

impl Scenario {
    /// Makes the call and records what the caller saw.
    pub(crate) async fn run(self) -> Probe {
        let exchange: Exchange = match &self.tls {
            Some(config) => client::tls(self.to, config.clone(), &self.call).await,
            None => client::plain(self.to, &self.call).await,
        };
        let key = match (&self.call.request_id, exchange.local) {
            (Some(id), _) => Some(Key::RequestId(id.clone())),
            (None, Some(local)) => Some(Key::Peer(local.to_string())),
            (None, None) => None,
        };
        let observation = match exchange.result {
            Ok(reply) => Observation::Reply {
                status: reply.status.as_u16(),
                code: reply.problem_code(),
            },
            Err(error) => {
                tracing::debug!(scenario = %self.name, %error, "the call failed");
                Observation::Failed(error)
            }
        };
        Probe {
            name: self.name,
            expected: self.expected,
            decider: self.decider,
            key,
            observation,
        }
    }
}

/// How to find a scenario's audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// The `x-request-id` the call carried, which sidecars keep.
    RequestId(String),
    /// The caller's socket address, for calls refused before HTTP.
    Peer(String),
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
    },
    /// No response: the connection or handshake failed.
    Failed(String),
}

/// A scenario that has run, waiting for its audit record to be judged.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// What it shows.
    pub name: String,
    /// What should have happened.
    pub expected: Expected,
    /// Who decides.
    pub decider: Decider,
    /// How to find its audit record; `None` when the call never connected.
    pub key: Option<Key>,
    /// What the caller saw.
    pub observation: Observation,
}

impl Probe {
    /// Whether `record` is this scenario's record on the deciding sidecar.
    fn decided(&self, record: &AuditRecord) -> bool {
        record.service == self.decider.service
            && record.direction == self.decider.direction
            && match &self.key {
                Some(Key::RequestId(id)) => record.request_id == *id,
                Some(Key::Peer(peer)) => record.peer.as_deref() == Some(peer.as_str()),
                None => false,
            }
    }

    /// Whether the deciding sidecar has recorded the call (or never could have).
    pub(crate) fn is_recorded(&self, records: &[AuditRecord]) -> bool {
        self.key.is_none() || records.iter().any(|r| self.decided(r))
    }

    /// The verdict: the caller saw the expected outcome, and the deciding sidecar left
    /// exactly one audit record, which agrees.
    pub(crate) fn judge(&self, records: &[AuditRecord]) -> ScenarioResult {
        let found: Vec<&AuditRecord> = records.iter().filter(|r| self.decided(r)).collect();
        let record = match found.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        let record_ok = record.is_some_and(|r| self.expected.matches_record(r));
        let sidecar = self.decider.sidecar;
        let mut observed = match (&self.observation, record) {
            (
                Observation::Reply {
                    status,
                    code: Some(code),
                },
                _,
            ) => format!("{status} {code}"),
            (Observation::Reply { status, code: None }, Some(r))
                if *status < 400 && !r.policies.is_empty() =>
            {
                format!("{status} allowed by {}", r.policies.join(", "))
            }
            (Observation::Reply { status, code: None }, _) if *status < 400 => {
                format!("{status} allowed")
            }
            (Observation::Reply { status, code: None }, _) => {
                format!("{status} without a problem code")
            }
            (Observation::Failed(_), Some(r)) if r.status.is_none() => format!(
                "handshake refused: {}",
                r.code.as_deref().unwrap_or("(no code)")
            ),
            (Observation::Failed(error), _) => format!("no response: {error}"),
        };
        match record {
            Some(_) if record_ok => observed.push_str(&format!(" ({sidecar} sidecar)")),
            Some(r) => observed.push_str(&format!(
                "; but the {sidecar} sidecar recorded {} {} {}",
                r.decision,
                r.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                r.code.as_deref().unwrap_or("(no code)"),
            )),
            None => observed.push_str(&format!(
                "; {} audit records on the {sidecar} sidecar, expected 1",
                found.len()
            )),
        }
        ScenarioResult {
            name: self.name.clone(),
            expected: self.expected.to_string(),
            observed,
            passed: record_ok && self.expected.matches_observation(&self.observation),
        }
    }
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
    let roots = load_roots(&layout.bundle())?;
    let rogue = SvidMaterial::load_dir(&layout.rogue_svid_dir())?;
    let anonymous = client::client_config(roots.clone(), customers.spiffe_id.clone(), None)?;
    let impersonating = client::client_config(roots, customers.spiffe_id.clone(), Some(&rogue))?;

    let mut n = 0;
    let mut call = |method: Method, host: &str, path: &str, traced: bool| {
        n += 1;
        Call {
            method,
            path: path.to_owned(),
            host: host.to_owned(),
            request_id: traced.then(|| format!("demo-scenario-{n}")),
            json: None,
        }
    };
    let app =
        |from: &str, to: &str, call: &Call| format!("{from} → {to}: {} {}", call.method, call.path);

    let get_invoice = call(Method::GET, "billing", "/invoices/42", true);
    let mut pay = call(Method::POST, "billing", "/payments", true);
    pay.json = Some(json!({ "invoice": "42", "amount_cents": 1999 }));
    let get_customer = call(Method::GET, "customers", "/customers/7", true);
    let delete_customer = call(Method::DELETE, "customers", "/customers/7", true);
    let no_cert = call(Method::GET, "customers", "/customers/7", false);
    let rogue_cert = call(Method::GET, "customers", "/customers/7", false);
    let plaintext = call(Method::GET, "billing", "/invoices/42", false);
    let impostor = call(Method::GET, IMPERSONATED, "/stock/1", true);

    Ok(vec![
        Scenario {
            name: app("orders", "billing", &get_invoice),
            expected: Expected::Allowed,
            decider: Decider::inbound("billing"),
            call: get_invoice,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: app("orders", "billing", &pay),
            expected: Expected::Allowed,
            decider: Decider::inbound("billing"),
            call: pay,
            to: orders_out,
            tls: None,
        },
        Scenario {
            name: app("billing", "customers", &get_customer),
            expected: Expected::Allowed,
            decider: Decider::inbound("customers"),
            call: get_customer,
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
            call: impostor,
            to: orders_out,
            tls: None,
        },
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use palisade_audit::AuthMethod;
    use time::OffsetDateTime;

    use super::*;

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
            policies: vec!["orders-read-invoices".into()],
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
        }
    }

    fn allowed_probe() -> Probe {
        Probe {
            name: "orders → billing".into(),
            expected: Expected::Allowed,
            decider: Decider::inbound("billing"),
            key: Some(Key::RequestId("demo-scenario-1".into())),
            observation: Observation::Reply {
                status: 200,
                code: None,
            },
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
            "200 allowed by orders-read-invoices (billing sidecar)"
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
    fn fails_when_the_caller_sees_another_outcome() {
        let mut probe = allowed_probe();
        probe.observation = Observation::Reply {
            status: 403,
            code: Some("palisade.authz.denied".into()),
        };
        let result = probe.judge(&[record(
            "billing",
            Direction::Inbound,
            "demo-scenario-1",
            "p",
        )]);
        assert!(!result.passed);
        assert!(result.observed.starts_with("403 palisade.authz.denied"));
    }

    #[test]
    fn a_handshake_refusal_is_found_by_peer_and_reported_as_recorded() {
        let probe = Probe {
            name: "no certificate".into(),
            expected: Expected::HandshakeRefused {
                code: "palisade.identity.missing",
            },
            decider: Decider::inbound("customers"),
            key: Some(Key::Peer("127.0.0.1:4000".into())),
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
            key: None,
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
}
