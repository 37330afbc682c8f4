//! The inventory at one moment, as data: what `palisade inventory --format
//! json` prints, what `palisade inventory diff` reads, what the table and
//! the reconstructed OpenAPI documents are rendered from.
//!
//! The JSON form is versioned by its `format` field ([`SNAPSHOT_FORMAT`]);
//! a reader refuses other versions. Every list has a fixed order (services
//! by name, endpoints by template then method, callers and fields by name,
//! flags in declaration order), so equal inventories serialise to equal
//! bytes and snapshots diff cleanly as text too.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SnapshotError;

/// The version of the snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The whole inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub generated_at: String,
    /// Records at or after this instant were counted (`--since`); `None`:
    /// the whole log.
    pub since: Option<String>,
    /// What happened to the records read.
    pub records: RecordCounts,
    /// The services, by name.
    pub services: Vec<ServiceSnapshot>,
}

/// How many records were read and why some were not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Records given to the inventory.
    pub read: u64,
    /// Records counted toward an endpoint.
    pub counted: u64,
    /// Outbound records (the caller's side of a call; the callee's sidecar
    /// has the inbound one).
    pub outbound: u64,
    /// Inbound records without a method and path: refused in the TLS
    /// handshake or before HTTP, so they name no endpoint.
    pub before_routing: u64,
    /// Records older than `since`.
    pub outside_window: u64,
    /// Records whose path cannot be templated (not starting with `/`, too
    /// long, too many segments, a raw brace, an invalid method).
    pub unparseable: u64,
}

/// One service and its endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// The service name (audit `service`).
    pub name: String,
    /// The owning team from the configuration, if any.
    pub owner: Option<String>,
    /// The spec traffic was compared with (its path), if any.
    pub spec: Option<String>,
    /// Endpoints by template, then method.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// Where an endpoint's template comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointSource {
    /// An operation of the service's spec.
    Spec,
    /// Learned from traffic: a route the sidecar matched in a spec the
    /// inventory was not given, or a template folded from concrete paths.
    Traffic,
}

impl EndpointSource {
    /// The spelling in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointSource::Spec => "spec",
            EndpointSource::Traffic => "traffic",
        }
    }
}

/// One endpoint: a method on a route template of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSnapshot {
    /// The HTTP method, as recorded (upper case from sidecars).
    pub method: String,
    /// The route template (`/invoices/{id}`).
    pub template: String,
    /// Where the template comes from.
    pub source: EndpointSource,
    /// The spec's `operationId`, when the endpoint is in the spec.
    pub operation_id: Option<String>,
    /// The path parameters, in path order.
    pub params: Vec<PathParam>,
    /// The first and last counted call (RFC 3339); `None` when never called.
    pub first_seen: Option<String>,
    /// See `first_seen`.
    pub last_seen: Option<String>,
    /// Calls counted, allowed and denied.
    pub calls: u64,
    /// Calls the sidecar refused.
    pub denied: u64,
    /// Distinct callers with their calls, by caller.
    pub callers: Vec<CallerCount>,
    /// Calls by HTTP status (`"none"`: no response was sent).
    pub statuses: BTreeMap<String, u64>,
    /// Calls whose exchange shape was recorded (sampled).
    pub sampled: u64,
    /// Query parameters seen (`seen` out of `sampled`).
    pub query: Vec<FieldSnapshot>,
    /// The JSON request body's fields.
    pub request: BodySnapshot,
    /// The JSON response body's fields, per status.
    pub responses: Vec<ResponseSnapshot>,
    /// Data classes seen in the calls, by name.
    pub data_classes: Vec<String>,
    /// The service's owner (repeated here so an endpoint reads alone).
    pub owner: Option<String>,
    /// The flags raised, in [`Flag`] order.
    pub flags: Vec<Flag>,
    /// Why the endpoint is a zombie, when it is.
    pub zombie: Option<Zombie>,
    /// What traffic used that the spec does not declare.
    pub drift: Vec<Drift>,
    /// The risk score and its reasons.
    pub risk: Risk,
}

impl EndpointSnapshot {
    /// Whether `flag` is raised.
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }
}

/// A path parameter of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathParam {
    /// Its name in the template.
    pub name: String,
    /// What the values seen were (for templates learned from traffic):
    /// segment kinds (`integer`, `uuid`, `date`, `hex_hash`, `email`,
    /// `token`), `shape:A-9` for folded shapes, `free_form`. Empty when the
    /// template comes from a spec.
    pub kinds: Vec<String>,
}

/// One caller of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerCount {
    /// The caller's SPIFFE ID (or token subject); `None` for calls without
    /// an authenticated caller.
    pub caller: Option<String>,
    /// Its calls.
    pub calls: u64,
}

/// A query parameter or a JSON field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSnapshot {
    /// The parameter name or field path (`/items/*/sku`).
    pub name: String,
    /// JSON types seen.
    pub types: Vec<String>,
    /// Data classes of its values.
    pub classes: Vec<String>,
    /// Complete samples it appeared in; equal to the samples of its part
    /// when it was always present (a required field).
    pub seen: u64,
}

/// The fields of the JSON request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodySnapshot {
    /// Complete sampled requests that had a JSON body.
    pub samples: u64,
    /// The fields, by path.
    pub fields: Vec<FieldSnapshot>,
}

/// The fields of the JSON response bodies of one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseSnapshot {
    /// The HTTP status.
    pub status: u16,
    /// Complete sampled responses with this status and a JSON body.
    pub samples: u64,
    /// The fields, by path.
    pub fields: Vec<FieldSnapshot>,
}

/// A finding about an endpoint. Declaration order is the display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flag {
    /// Called, but not in the service's spec.
    Shadow,
    /// Deprecated in the spec or retired in the configuration, and still
    /// called.
    Zombie,
    /// In the spec, never called in the window.
    Unused,
    /// Its service has no owner.
    Orphan,
    /// Called with query parameters, body fields or status codes the spec
    /// does not declare.
    Drift,
}

impl Flag {
    /// The spelling in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Shadow => "shadow",
            Flag::Zombie => "zombie",
            Flag::Unused => "unused",
            Flag::Orphan => "orphan",
            Flag::Drift => "drift",
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint is a zombie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zombie {
    /// `deprecated` in the spec.
    pub deprecated: bool,
    /// Listed as retired in the configuration.
    pub retired: bool,
    /// Calls the application answered with 2xx: the endpoint still works.
    pub answered_2xx: u64,
}

/// Where undeclared traffic was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftLocation {
    /// A query parameter.
    Query,
    /// A field of the JSON request body (`""`: a body where none is declared).
    Request,
    /// A field of a JSON response body (`""`: a body where none is declared).
    Response,
    /// A status code the application answered.
    Status,
}

impl DriftLocation {
    /// The spelling in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftLocation::Query => "query",
            DriftLocation::Request => "request",
            DriftLocation::Response => "response",
            DriftLocation::Status => "status",
        }
    }
}

/// One undeclared parameter, field or status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Where.
    pub location: DriftLocation,
    /// The parameter name, field path or status code.
    pub name: String,
    /// For a response field: the status of the responses it was seen in.
    pub status: Option<u16>,
    /// Samples (or, for a status, calls) it was seen in.
    pub seen: u64,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(body)"
        } else {
            &self.name
        };
        match self.status {
            Some(status) => write!(f, "{} {status} {name}", self.location.as_str()),
            None => write!(f, "{} {name}", self.location.as_str()),
        }
    }
}

/// How worrying an endpoint is, with the reasons that add up to the score.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// 0 to 100: the sum of the reasons' points, capped.
    pub score: u32,
    /// The band the score falls in.
    pub level: RiskLevel,
    /// Each contribution, largest first.
    pub reasons: Vec<RiskReason>,
}

/// A band of risk scores.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// 0-24.
    #[default]
    Low,
    /// 25-49.
    Medium,
    /// 50-74.
    High,
    /// 75-100.
    Critical,
}

impl RiskLevel {
    /// The band of `score`.
    pub fn of(score: u32) -> RiskLevel {
        match score {
            0..=24 => RiskLevel::Low,
            25..=49 => RiskLevel::Medium,
            50..=74 => RiskLevel::High,
            _ => RiskLevel::Critical,
        }
    }

    /// The spelling in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
            RiskLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contribution to a risk score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskReason {
    /// Points added.
    pub points: u32,
    /// What, in words a reviewer can check against the endpoint's data.
    pub reason: String,
}

impl Snapshot {
    /// The snapshot as pretty-printed JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: string keys, no custom
        // serialisers, no non-finite floats.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a snapshot written by [`to_json`](Snapshot::to_json),
    /// refusing other format versions before anything else.
    pub fn from_json(text: &str) -> Result<Snapshot, SnapshotError> {
        #[derive(Deserialize)]
        struct Probe {
            format: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_str(text).map_err(SnapshotError::Parse)?;
        match probe.format {
            Some(serde_json::Value::Number(n))
                if n.as_u64() == Some(u64::from(SNAPSHOT_FORMAT)) => {}
            Some(other) => return Err(SnapshotError::UnsupportedFormat(other.to_string())),
            None => return Err(SnapshotError::MissingFormat),
        }
        serde_json::from_str(text).map_err(SnapshotError::Parse)
    }

    /// The endpoint `method template` of `service`, if listed.
    pub fn endpoint(
        &self,
        service: &str,
        method: &str,
        template: &str,
    ) -> Option<&EndpointSnapshot> {
        self.services
            .iter()
            .find(|s| s.name == service)?
            .endpoints
            .iter()
            .find(|e| e.method == method && e.template == template)
    }

    /// Every endpoint with its service name, in snapshot order.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, &EndpointSnapshot)> {
        self.services
            .iter()
            .flat_map(|s| s.endpoints.iter().map(move |e| (s.name.as_str(), e)))
    }
}
