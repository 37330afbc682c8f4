//! The record's wire format: field names and order, timestamps, enum spellings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use palisade_audit::{AuditRecord, AuthMethod, Decision, Direction};
use time::macros::{datetime, offset};

fn record() -> AuditRecord {
    AuditRecord {
        ts: datetime!(2026-11-30 08:24:36.123456 UTC),
        request_id: "01JDQ7Z8".to_owned(),
        caller: Some("spiffe://palisade.test/ns/shop/sa/checkout".to_owned()),
        auth: AuthMethod::Mtls,
        service: "payments".to_owned(),
        method: Some("POST".to_owned()),
        path: Some("/charges/42".to_owned()),
        route: Some("/charges/{id}".to_owned()),
        decision: Decision::Deny,
        code: Some("palisade.authz.denied".to_owned()),
        policies: vec!["deny-refunds".to_owned()],
        status: Some(403),
        latency_us: 812,
        bytes_in: 64,
        bytes_out: 128,
        data_classes: vec!["email".to_owned()],
        peer: Some("127.0.0.1:5555".to_owned()),
        direction: Direction::Inbound,
        detail: Some("no policy permits refunds from checkout".to_owned()),
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
    }
}

fn ts_json(ts: time::OffsetDateTime) -> String {
    let value = serde_json::to_value(AuditRecord { ts, ..record() }).unwrap();
    value["ts"].as_str().unwrap().to_owned()
}

#[test]
fn ts_serialises_as_utc_with_exactly_six_fractional_digits() {
    assert_eq!(
        ts_json(datetime!(2026-11-30 08:24:36.123456 UTC)),
        "2026-11-30T08:24:36.123456Z"
    );
    // Whole seconds still carry six zeros.
    assert_eq!(
        ts_json(datetime!(2026-11-30 08:24:36 UTC)),
        "2026-11-30T08:24:36.000000Z"
    );
    // Nanoseconds are truncated, not rounded, matching the database.
    assert_eq!(
        ts_json(datetime!(2026-11-30 08:24:36.999999999 UTC)),
        "2026-11-30T08:24:36.999999Z"
    );
    // Other offsets are converted to UTC.
    assert_eq!(
        ts_json(datetime!(2026-11-30 10:24:36.5 +02:00)),
        "2026-11-30T08:24:36.500000Z"
    );
}

#[test]
fn ts_deserialises_any_rfc3339_offset_as_utc() {
    let mut value = serde_json::to_value(record()).unwrap();
    value["ts"] = "2026-11-30T09:24:36.123456+01:00".into();
    let back: AuditRecord = serde_json::from_value(value).unwrap();
    assert_eq!(back.ts, datetime!(2026-11-30 08:24:36.123456 UTC));
    assert_eq!(back.ts.offset(), offset!(UTC));
}

#[test]
fn ts_rejects_a_non_rfc3339_string() {
    let mut value = serde_json::to_value(record()).unwrap();
    value["ts"] = "yesterday".into();
    let err = serde_json::from_value::<AuditRecord>(value).unwrap_err();
    assert!(err.to_string().contains("yesterday"), "{err}");
}

#[test]
fn json_has_exactly_the_documented_field_names_in_order() {
    let json = serde_json::to_string(&record()).unwrap();
    let names = [
        "ts",
        "request_id",
        "caller",
        "auth",
        "service",
        "method",
        "path",
        "route",
        "decision",
        "code",
        "policies",
        "status",
        "latency_us",
        "bytes_in",
        "bytes_out",
        "data_classes",
        "peer",
        "direction",
        "detail",
        "findings",
        "ratelimit_degraded",
        "shape",
    ];
    let positions: Vec<Option<usize>> = names
        .iter()
        .map(|name| json.find(&format!("\"{name}\":")))
        .collect();
    assert!(positions.iter().all(Option::is_some), "{json}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    let object = serde_json::from_str::<serde_json::Value>(&json).unwrap();
    assert_eq!(object.as_object().unwrap().len(), names.len());
}

#[test]
fn json_uses_lowercase_enum_spellings_and_null_for_missing_values() {
    let refused = AuditRecord {
        caller: None,
        auth: AuthMethod::None,
        method: None,
        path: None,
        route: None,
        code: None,
        policies: vec![],
        status: None,
        data_classes: vec![],
        peer: None,
        direction: Direction::Outbound,
        detail: None,
        findings: Vec::new(),
        ratelimit_degraded: false,
        decision: Decision::Allow,
        ..record()
    };
    let value = serde_json::to_value(&refused).unwrap();
    assert_eq!(value["auth"], "none");
    assert_eq!(value["decision"], "allow");
    assert_eq!(value["direction"], "outbound");
    for field in [
        "caller", "method", "path", "route", "code", "status", "peer", "detail",
    ] {
        assert!(value[field].is_null(), "{field} should be null: {value}");
    }
    assert_eq!(value["policies"], serde_json::json!([]));
    assert_eq!(value["data_classes"], serde_json::json!([]));
    let back: AuditRecord = serde_json::from_value(value).unwrap();
    assert_eq!(back, refused);
}

#[test]
fn json_round_trips_every_field() {
    let json = serde_json::to_string(&record()).unwrap();
    let back: AuditRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record());
}

#[test]
fn enum_as_str_matches_the_json_spelling() {
    for decision in [Decision::Allow, Decision::Deny] {
        assert_eq!(
            serde_json::to_value(decision).unwrap(),
            decision.as_str(),
            "{decision:?}"
        );
        assert_eq!(decision.to_string(), decision.as_str());
    }
    for auth in [AuthMethod::Mtls, AuthMethod::Jwt, AuthMethod::None] {
        assert_eq!(serde_json::to_value(auth).unwrap(), auth.as_str());
    }
    for direction in [Direction::Inbound, Direction::Outbound] {
        assert_eq!(serde_json::to_value(direction).unwrap(), direction.as_str());
    }
}

#[test]
fn decision_parses_allow_and_deny_ignoring_case() {
    assert_eq!("allow".parse::<Decision>().unwrap(), Decision::Allow);
    assert_eq!("deny".parse::<Decision>().unwrap(), Decision::Deny);
    assert_eq!("DENY".parse::<Decision>().unwrap(), Decision::Deny);
}

#[test]
fn decision_parse_error_names_the_bad_value() {
    let err = "maybe".parse::<Decision>().unwrap_err();
    assert_eq!(err.value(), "maybe");
    assert_eq!(
        err.to_string(),
        "invalid decision \"maybe\": expected one of allow, deny"
    );
}

#[test]
fn auth_method_and_direction_parse_their_spellings() {
    assert_eq!("mtls".parse::<AuthMethod>().unwrap(), AuthMethod::Mtls);
    assert_eq!("jwt".parse::<AuthMethod>().unwrap(), AuthMethod::Jwt);
    assert_eq!("none".parse::<AuthMethod>().unwrap(), AuthMethod::None);
    assert_eq!("inbound".parse::<Direction>().unwrap(), Direction::Inbound);
    assert_eq!(
        "outbound".parse::<Direction>().unwrap(),
        Direction::Outbound
    );
    let err = "sideways".parse::<Direction>().unwrap_err();
    assert!(err.to_string().contains("\"sideways\""), "{err}");
}
