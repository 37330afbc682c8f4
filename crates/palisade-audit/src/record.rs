//! The audit record and its enums.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

use crate::error::ParseEnumError;

/// One request seen by a sidecar, allowed or denied.
///
/// Every request produces exactly one record, including connections refused
/// during the TLS handshake (then `method`, `path` and `status` are `None`).
/// Field order and names are the JSON lines format and must stay stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the request arrived. Serialised as RFC 3339 UTC with exactly six
    /// fractional digits; stored with microsecond precision.
    #[serde(with = "ts_micros")]
    pub ts: OffsetDateTime,
    /// The request id, propagated across hops so records can be joined.
    pub request_id: String,
    /// The caller's SPIFFE ID, when it authenticated.
    pub caller: Option<String>,
    /// How the caller authenticated.
    pub auth: AuthMethod,
    /// The service whose sidecar saw the call.
    pub service: String,
    /// The HTTP method; `None` when refused in the TLS handshake.
    pub method: Option<String>,
    /// The request path; `None` when refused in the TLS handshake.
    pub path: Option<String>,
    /// The matched route template, when a route matched.
    pub route: Option<String>,
    /// Whether the request was let through.
    pub decision: Decision,
    /// The stable error code (e.g. `palisade.authz.denied`); `None` on allow.
    pub code: Option<String>,
    /// Ids of the Cedar policies that decided.
    pub policies: Vec<String>,
    /// The HTTP status returned; `None` when no HTTP exchange happened.
    pub status: Option<u16>,
    /// Time spent handling the request, in microseconds.
    pub latency_us: u64,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Data classes seen in the exchange (e.g. `email`).
    pub data_classes: Vec<String>,
    /// The remote socket address, e.g. `127.0.0.1:5555`.
    pub peer: Option<String>,
    /// Whether the sidecar received the call or made it for its service.
    pub direction: Direction,
    /// Human-readable reason for a deny; never a secret or payload.
    pub detail: Option<String>,
    /// What the request guard found, as `"<code>@<location>"` (e.g.
    /// `"palisade.injection.sql@query/q"`): the finding that refused the
    /// request, or findings of stages in `report` mode that let it through.
    #[serde(default)]
    pub findings: Vec<String>,
    /// The rate limit was decided by the local fallback because the shared
    /// backend (Redis) was unavailable.
    #[serde(default)]
    pub ratelimit_degraded: bool,
    /// What the exchange looked like, for the API inventory: query parameter
    /// names and JSON field paths with their types and data classes, never
    /// values. `None` when the exchange was not sampled, was outbound, or was
    /// refused before the caller was identified.
    #[serde(default)]
    pub shape: Option<ExchangeShape>,
}

/// The shape of one request and its response: names, types and data classes,
/// never values. What the inventory learns endpoints' parameters, fields and
/// sensitive data from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeShape {
    /// Query parameters, by name, in first-seen order.
    #[serde(default)]
    pub query: Vec<FieldShape>,
    /// Fields of the JSON request body, by path (`/user/email`; array items
    /// as `*`, e.g. `/items/*/sku`).
    #[serde(default)]
    pub request: Vec<FieldShape>,
    /// Fields of the JSON response body, by path.
    #[serde(default)]
    pub response: Vec<FieldShape>,
    /// A body (request or response) was larger than the inspection limit, so
    /// its fields are missing here.
    #[serde(default)]
    pub truncated: bool,
}

/// One query parameter or JSON field of an exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldShape {
    /// The query parameter's name, or the field's path.
    pub name: String,
    /// JSON types seen: `null`, `boolean`, `integer`, `number`, `string`,
    /// `array`, `object` (query parameters are `string`).
    #[serde(default)]
    pub types: Vec<String>,
    /// Data classes of its values (e.g. `email`, `payment_card`).
    #[serde(default)]
    pub classes: Vec<String>,
}

/// Implements `as_str`, `Display` and `FromStr` for a unit enum whose
/// spellings are fixed by the wire format and the database.
macro_rules! spelled_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $spelling:literal),+ $(,)? }) => {
        impl $ty {
            /// The spelling used in JSON, in the database and on the CLI.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $spelling,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Accepts the spellings of `as_str`, ignoring ASCII case.
        impl FromStr for $ty {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(
                    if s.eq_ignore_ascii_case($spelling) {
                        return Ok(Self::$variant);
                    }
                )+
                Err(ParseEnumError {
                    kind: $kind,
                    value: s.to_owned(),
                    expected: &[$($spelling),+],
                })
            }
        }
    };
}

/// The outcome of the authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The request was forwarded.
    Allow,
    /// The request was refused.
    Deny,
}

spelled_enum!(Decision, "decision", { Allow => "allow", Deny => "deny" });

/// How the caller proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A client certificate (X.509-SVID) in the mTLS handshake.
    Mtls,
    /// A JWT-SVID bearer token.
    Jwt,
    /// No credential was presented or accepted.
    None,
}

spelled_enum!(AuthMethod, "auth method", { Mtls => "mtls", Jwt => "jwt", None => "none" });

/// Which side of the sidecar the request crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A caller reached this service through its sidecar.
    Inbound,
    /// This service called another one through its sidecar.
    Outbound,
}

spelled_enum!(Direction, "direction", { Inbound => "inbound", Outbound => "outbound" });

/// Formats `ts` as RFC 3339 in UTC with exactly six fractional digits, e.g.
/// `2026-11-30T08:24:36.123456Z`. Sub-microsecond digits are truncated, as in
/// the database, so the JSON and SQLite forms of a record agree.
pub(crate) fn format_ts(ts: OffsetDateTime) -> String {
    let utc = ts.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.microsecond(),
    )
}

/// Microseconds since the Unix epoch, rounded towards the past; the SQLite
/// representation of `ts`, which sorts and compares as an integer.
pub(crate) fn unix_micros(ts: OffsetDateTime) -> i64 {
    // OffsetDateTime spans years -9999..=9999, about 3.2e17 microseconds
    // either side of the epoch, well inside i64.
    ts.unix_timestamp_nanos().div_euclid(1_000) as i64
}

/// The inverse of [`unix_micros`]; `None` when the value is outside the
/// range `OffsetDateTime` can represent.
pub(crate) fn from_unix_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// Serde adapter for `AuditRecord::ts`: writes [`format_ts`], reads any
/// RFC 3339 timestamp and normalises it to UTC.
mod ts_micros {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    pub(super) fn serialize<S: Serializer>(
        ts: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_ts(*ts))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map(|ts| ts.to_offset(UtcOffset::UTC))
            .map_err(|err| D::Error::custom(format!("invalid RFC 3339 timestamp {text:?}: {err}")))
    }
}
