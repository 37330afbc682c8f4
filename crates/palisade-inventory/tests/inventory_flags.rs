//! The inventory's flags, drift, risk reasons, snapshots and diffs, on
//! audit records built by hand and written to a real SQLite audit database
//! with `AuditWriter`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{fixture, json_fields, query_field, record, with_shape, write_db, CALLERS, START};
use palisade_audit::{AuditRecord, Decision, Direction, ExchangeShape};
use palisade_inventory::{
    diff, reconstruct, render_diff, render_table, Drift, DriftLocation, EndpointSource, Flag,
    Inventory, InventoryInputs, InventoryOptions, RetiredRoute, RiskLevel, ServiceInputs, Snapshot,
    SnapshotError, SpecInput, Zombie,
};
use palisade_openapi::ApiSpec;
use serde_json::json;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-05-05 00:00:00 UTC);

/// Billing with its spec and an owner.
fn billing() -> (String, ServiceInputs) {
    (
        "billing".to_owned(),
        ServiceInputs {
            owner: Some("team-billing".into()),
            spec: Some(SpecInput {
                source: "specs/billing.yaml".into(),
                spec: fixture("billing.yaml"),
            }),
            retired: Vec::new(),
        },
    )
}

fn inputs(services: impl IntoIterator<Item = (String, ServiceInputs)>) -> InventoryInputs {
    InventoryInputs {
        services: services.into_iter().collect(),
        since: None,
    }
}

/// Writes `records` to a fresh SQLite database and builds the inventory.
fn build(inputs: InventoryInputs, records: Vec<AuditRecord>) -> Snapshot {
    build_with(inputs, InventoryOptions::default(), records)
}

fn build_with(
    inputs: InventoryInputs,
    options: InventoryOptions,
    records: Vec<AuditRecord>,
) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_db(&db, records);
    let mut inventory = Inventory::new(inputs, options);
    inventory.read_sqlite(&db).unwrap();
    inventory.snapshot(NOW)
}

fn routed(n: u64, method: &str, path: &str, route: &str) -> AuditRecord {
    let mut r = record(n, "billing", method, path);
    r.route = Some(route.to_owned());
    r
}

fn denied(mut r: AuditRecord, status: u16) -> AuditRecord {
    r.decision = Decision::Deny;
    r.status = Some(status);
    r.code = Some("palisade.authz.denied".into());
    r
}

fn flags(snapshot: &Snapshot, service: &str, method: &str, template: &str) -> Vec<Flag> {
    snapshot
        .endpoint(service, method, template)
        .unwrap_or_else(|| panic!("no {service} {method} {template}"))
        .flags
        .clone()
}

#[test]
fn shadow_endpoints_are_called_routes_and_methods_outside_the_spec() {
    let snapshot = build(
        inputs([billing()]),
        vec![
            routed(0, "GET", "/invoices/7", "/invoices/{id}"),
            record(1, "billing", "GET", "/admin/export/3"),
            record(2, "billing", "GET", "/admin/export/4"),
            // The sidecar found no operation for DELETE on a documented path.
            denied(record(3, "billing", "DELETE", "/invoices/9"), 405),
            // Outside the spec, on a service the inventory has no spec for.
            record(4, "ledger", "GET", "/entries/1"),
        ],
    );
    assert_eq!(
        flags(&snapshot, "billing", "GET", "/admin/export/{exportId}"),
        [Flag::Shadow]
    );
    assert_eq!(
        flags(&snapshot, "billing", "DELETE", "/invoices/{id}"),
        [Flag::Shadow]
    );
    let get = snapshot
        .endpoint("billing", "GET", "/invoices/{id}")
        .unwrap();
    assert!(get.flags.is_empty(), "{:?}", get.flags);
    assert_eq!(get.source, EndpointSource::Spec);
    assert_eq!(get.operation_id.as_deref(), Some("getInvoice"));
    assert_eq!(
        flags(&snapshot, "ledger", "GET", "/entries/{entryId}"),
        [Flag::Orphan],
        "no spec, so nothing is shadow"
    );
    let export = snapshot
        .endpoint("billing", "GET", "/admin/export/{exportId}")
        .unwrap();
    assert_eq!(export.source, EndpointSource::Traffic);
    assert_eq!(export.calls, 2);
    assert!(export
        .risk
        .reasons
        .iter()
        .any(|r| r.reason == "shadow: called but not in the spec" && r.points == 20));
}

#[test]
fn deprecated_operations_still_called_are_zombies_worse_when_they_answer_2xx() {
    let snapshot = build(
        inputs([billing()]),
        vec![
            routed(0, "GET", "/v1/invoices/1", "/v1/invoices/{id}"),
            routed(1, "GET", "/v1/invoices/2", "/v1/invoices/{id}"),
            routed(2, "GET", "/v1/invoices/3", "/v1/invoices/{id}"),
            denied(
                routed(3, "GET", "/v1/legacy-export", "/v1/legacy-export"),
                403,
            ),
            denied(
                routed(4, "GET", "/v1/legacy-export", "/v1/legacy-export"),
                403,
            ),
        ],
    );
    let working = snapshot
        .endpoint("billing", "GET", "/v1/invoices/{id}")
        .unwrap();
    assert_eq!(working.flags, [Flag::Zombie]);
    assert_eq!(
        working.zombie,
        Some(Zombie {
            deprecated: true,
            retired: false,
            answered_2xx: 3
        })
    );
    let reasons: Vec<(u32, &str)> = working
        .risk
        .reasons
        .iter()
        .map(|r| (r.points, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (15, "zombie: deprecated in the spec but still called"),
            (10, "zombie still answers 2xx (3 calls)"),
            (5, "3 distinct callers"),
        ]
    );
    assert_eq!(working.risk.score, 30);

    let refused = snapshot
        .endpoint("billing", "GET", "/v1/legacy-export")
        .unwrap();
    assert_eq!(refused.flags, [Flag::Zombie]);
    assert_eq!(refused.zombie.as_ref().unwrap().answered_2xx, 0);
    assert!(!refused
        .risk
        .reasons
        .iter()
        .any(|r| r.reason.starts_with("zombie still answers")));
    assert!(refused
        .risk
        .reasons
        .iter()
        .any(|r| r.reason == "100% of calls denied (2 of 2)" && r.points == 20));
}

#[test]
fn routes_retired_in_the_configuration_and_still_called_are_zombies() {
    let legacy = ServiceInputs {
        owner: Some("team-legacy".into()),
        spec: None,
        retired: vec![
            RetiredRoute {
                method: "GET".into(),
                route: "/v1/users/{id}".into(),
            },
            RetiredRoute {
                method: "*".into(),
                route: "/v1/reports".into(),
            },
        ],
    };
    let snapshot = build(
        inputs([("legacy".to_owned(), legacy)]),
        vec![
            record(0, "legacy", "GET", "/v1/users/42"),
            record(1, "legacy", "GET", "/v1/users/43"),
            record(2, "legacy", "POST", "/v1/users/44"),
            record(3, "legacy", "PUT", "/v1/reports"),
        ],
    );
    let get = snapshot
        .endpoint("legacy", "GET", "/v1/users/{userId}")
        .unwrap();
    assert_eq!(get.flags, [Flag::Zombie]);
    assert_eq!(
        get.zombie,
        Some(Zombie {
            deprecated: false,
            retired: true,
            answered_2xx: 2
        })
    );
    assert!(get
        .risk
        .reasons
        .iter()
        .any(|r| r.reason == "zombie: retired in the configuration but still called"));
    assert!(flags(&snapshot, "legacy", "POST", "/v1/users/{userId}").is_empty());
    assert_eq!(
        flags(&snapshot, "legacy", "PUT", "/v1/reports"),
        [Flag::Zombie]
    );
}

#[test]
fn spec_operations_not_called_in_the_window_are_unused() {
    let mut inputs = inputs([billing()]);
    inputs.since = Some(START + time::Duration::seconds(1));
    let snapshot = build(
        inputs,
        vec![
            // Before the window: does not count.
            routed(0, "GET", "/refunds/5", "/refunds/{id}"),
            routed(2_000, "GET", "/invoices", "/invoices"),
        ],
    );
    // The database query skips older records; given one directly, the
    // inventory ignores it too.
    assert_eq!(snapshot.records.read, 1, "{:?}", snapshot.records);
    let mut direct = Inventory::new(
        InventoryInputs {
            since: Some(START + time::Duration::seconds(1)),
            ..InventoryInputs::default()
        },
        InventoryOptions::default(),
    );
    direct.observe(&routed(0, "GET", "/refunds/5", "/refunds/{id}"));
    assert_eq!(direct.counts().outside_window, 1);
    assert_eq!(direct.snapshot(NOW).endpoints().count(), 0);
    let refund = snapshot
        .endpoint("billing", "GET", "/refunds/{id}")
        .unwrap();
    assert_eq!(refund.flags, [Flag::Unused]);
    assert_eq!(refund.calls, 0);
    assert_eq!(refund.first_seen, None);
    assert!(flags(&snapshot, "billing", "GET", "/invoices").is_empty());
    // Every operation of the spec is listed, called or not.
    let listed = snapshot.services[0].endpoints.len();
    assert_eq!(listed, fixture("billing.yaml").operations().count());
    assert_eq!(
        snapshot.since.as_deref(),
        Some("2026-05-04T09:00:01.000000Z")
    );
}

#[test]
fn endpoints_of_services_without_an_owner_are_orphans() {
    let (_, mut billing_inputs) = billing();
    billing_inputs.spec = None;
    let snapshot = build(
        inputs([("billing".to_owned(), billing_inputs)]),
        vec![
            record(0, "billing", "GET", "/health"),
            record(1, "ledger", "GET", "/health"),
        ],
    );
    assert!(flags(&snapshot, "billing", "GET", "/health").is_empty());
    assert_eq!(flags(&snapshot, "ledger", "GET", "/health"), [Flag::Orphan]);
    assert_eq!(snapshot.services[0].owner.as_deref(), Some("team-billing"));
    assert_eq!(
        snapshot
            .endpoint("billing", "GET", "/health")
            .unwrap()
            .owner
            .as_deref(),
        Some("team-billing")
    );
}

#[test]
fn undeclared_query_parameters_body_fields_and_statuses_are_drift() {
    let list = with_shape(
        routed(0, "GET", "/invoices", "/invoices"),
        ExchangeShape {
            query: vec![query_field("status", "open"), query_field("debug", "1")],
            response: json_fields(&json!({"items": [{"id": 1, "amount": 5}]})),
            ..ExchangeShape::default()
        },
    );
    let mut create = with_shape(
        routed(1, "POST", "/invoices", "/invoices"),
        ExchangeShape {
            request: json_fields(&json!({
                "customer_email": "ada@example.com",
                "amount": 12,
                "internal_discount": 3,
            })),
            response: json_fields(&json!({"id": 9, "amount": 12})),
            ..ExchangeShape::default()
        },
    );
    create.status = Some(201);
    let get = with_shape(
        routed(2, "GET", "/invoices/9", "/invoices/{id}"),
        ExchangeShape {
            response: json_fields(&json!({"id": 9, "amount": 12, "internal_note": "vip"})),
            ..ExchangeShape::default()
        },
    );
    let mut missing = with_shape(
        routed(3, "GET", "/invoices/10", "/invoices/{id}"),
        ExchangeShape {
            response: json_fields(&json!({"error": "not found"})),
            ..ExchangeShape::default()
        },
    );
    missing.status = Some(404);
    let mut crashed = routed(4, "GET", "/invoices/11", "/invoices/{id}");
    crashed.status = Some(500);
    // A refusal's status is the sidecar's, not the application's: no drift.
    let refused = denied(routed(5, "GET", "/invoices/12", "/invoices/{id}"), 403);

    let snapshot = build(
        inputs([billing()]),
        vec![list, create, get, missing, crashed, refused],
    );
    let drift = |method, template| {
        snapshot
            .endpoint("billing", method, template)
            .unwrap()
            .drift
            .clone()
    };
    let item = |location, name: &str, status, seen| Drift {
        location,
        name: name.to_owned(),
        status,
        seen,
    };
    assert_eq!(
        drift("GET", "/invoices"),
        [item(DriftLocation::Query, "debug", None, 1)]
    );
    assert_eq!(
        drift("POST", "/invoices"),
        [item(DriftLocation::Request, "/internal_discount", None, 1)]
    );
    assert_eq!(
        drift("GET", "/invoices/{id}"),
        [
            item(DriftLocation::Status, "500", None, 1),
            item(DriftLocation::Response, "/internal_note", Some(200), 1),
            // 404 is declared without a body.
            item(DriftLocation::Response, "", Some(404), 1),
        ]
    );
    for (method, template) in [
        ("GET", "/invoices"),
        ("POST", "/invoices"),
        ("GET", "/invoices/{id}"),
    ] {
        assert_eq!(flags(&snapshot, "billing", method, template), [Flag::Drift]);
    }
    let table = render_table(&snapshot);
    assert!(
        table.contains("billing GET /invoices/{id}: status 500 (1×), response 200 /internal_note (1×), response 404 (body) (1×)"),
        "{table}"
    );
}

#[test]
fn risk_score_is_the_capped_sum_of_its_listed_reasons() {
    let payment = |n: u64| {
        let mut r = with_shape(
            routed(n, "POST", "/payments", "/payments"),
            ExchangeShape {
                request: json_fields(&json!({
                    "card_number": "4111 1111 1111 1111",
                    "receipt_email": "ada@example.com",
                    "amount": 12,
                })),
                ..ExchangeShape::default()
            },
        );
        r.status = Some(201);
        r.caller = Some(format!("spiffe://example.org/ns/shop/sa/caller-{n}"));
        r
    };
    // Six distinct callers, six of ten calls denied.
    let records: Vec<AuditRecord> = (0..10)
        .map(|n| {
            let r = payment(n % 6);
            if n < 6 {
                denied(r, 403)
            } else {
                r
            }
        })
        .collect();
    let snapshot = build(inputs([billing()]), records);
    let endpoint = snapshot.endpoint("billing", "POST", "/payments").unwrap();
    let reasons: Vec<(u32, &str)> = endpoint
        .risk
        .reasons
        .iter()
        .map(|r| (r.points, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (25, "carries payment card data (payment_card)"),
            (20, "60% of calls denied (6 of 10)"),
            (15, "carries personal data (email)"),
            (10, "changes state (POST)"),
            (10, "6 distinct callers"),
        ]
    );
    assert_eq!(endpoint.risk.score, 80);
    assert_eq!(endpoint.risk.level, RiskLevel::Critical);
    let table = render_table(&snapshot);
    assert!(table.contains("billing POST /payments: 80 critical = +25 carries payment card data (payment_card); +20 60% of calls denied (6 of 10)"), "{table}");
}

#[test]
fn sidecar_routes_and_folded_paths_share_one_template() {
    // No spec given to the inventory; the sidecar had one: it named the
    // route of GET, and found no operation for POST.
    let mut get = record(0, "users", "GET", "/users/42");
    get.route = Some("/users/{id}".into());
    let snapshot = build(
        InventoryInputs::default(),
        vec![
            get,
            record(1, "users", "POST", "/users/43"),
            record(2, "users", "POST", "/users/44"),
        ],
    );
    let endpoints: Vec<(&str, &str, u64)> = snapshot.services[0]
        .endpoints
        .iter()
        .map(|e| (e.method.as_str(), e.template.as_str(), e.calls))
        .collect();
    assert_eq!(
        endpoints,
        [("GET", "/users/{id}", 1), ("POST", "/users/{id}", 2)]
    );
}

#[test]
fn only_inbound_records_that_reached_routing_name_an_endpoint() {
    let mut outbound = record(0, "billing", "GET", "/invoices");
    outbound.direction = Direction::Outbound;
    let mut handshake = record(1, "billing", "GET", "/");
    handshake.method = None;
    handshake.path = None;
    handshake.status = None;
    handshake.decision = Decision::Deny;
    let asterisk = record(2, "billing", "OPTIONS", "*");
    let counted = record(3, "billing", "GET", "/health");
    let snapshot = build(
        InventoryInputs::default(),
        vec![outbound, handshake, asterisk, counted],
    );
    let r = &snapshot.records;
    assert_eq!(
        (
            r.read,
            r.counted,
            r.outbound,
            r.before_routing,
            r.unparseable
        ),
        (4, 1, 1, 1, 1)
    );
    let endpoints: Vec<&str> = snapshot
        .endpoints()
        .map(|(_, e)| e.template.as_str())
        .collect();
    assert_eq!(endpoints, ["/health"]);
}

#[test]
fn endpoint_facts_are_counted_per_caller_and_status() {
    let mut records = Vec::new();
    for n in 0..8 {
        let mut r = routed(n, "GET", &format!("/invoices/{n}"), "/invoices/{id}");
        r.status = Some(if n == 7 { 404 } else { 200 });
        records.push(r);
    }
    let mut anonymous = routed(8, "GET", "/invoices/8", "/invoices/{id}");
    anonymous.caller = None;
    records.push(denied(anonymous, 401));
    let snapshot = build(inputs([billing()]), records);
    let e = snapshot
        .endpoint("billing", "GET", "/invoices/{id}")
        .unwrap();
    assert_eq!((e.calls, e.denied), (9, 1));
    assert_eq!(e.first_seen.as_deref(), Some("2026-05-04T09:00:00.000000Z"));
    assert_eq!(e.last_seen.as_deref(), Some("2026-05-04T09:00:00.008000Z"));
    let callers: Vec<(Option<&str>, u64)> = e
        .callers
        .iter()
        .map(|c| (c.caller.as_deref(), c.calls))
        .collect();
    assert_eq!(
        callers,
        [
            (None, 1),
            (Some(CALLERS[2]), 2),
            (Some(CALLERS[1]), 2),
            (Some(CALLERS[3]), 2),
            (Some(CALLERS[0]), 2),
        ]
    );
    let statuses: Vec<(&str, u64)> = e.statuses.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(statuses, [("200", 7), ("401", 1), ("404", 1)]);
}

#[test]
fn snapshot_json_is_versioned_and_round_trips() {
    let snapshot = build(
        inputs([billing()]),
        vec![routed(0, "GET", "/invoices/7", "/invoices/{id}")],
    );
    let text = snapshot.to_json();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["format"], json!(1));
    assert_eq!(value["generated_at"], json!("2026-05-05T00:00:00.000000Z"));
    assert_eq!(Snapshot::from_json(&text).unwrap(), snapshot);
    assert_eq!(
        text,
        Snapshot::from_json(&text).unwrap().to_json(),
        "stable"
    );

    let newer = text.replacen("\"format\": 1", "\"format\": 2", 1);
    assert!(matches!(
        Snapshot::from_json(&newer),
        Err(SnapshotError::UnsupportedFormat(found)) if found == "2"
    ));
    assert!(matches!(
        Snapshot::from_json("{\"services\": []}"),
        Err(SnapshotError::MissingFormat)
    ));
    assert!(matches!(
        Snapshot::from_json("not json"),
        Err(SnapshotError::Parse(_))
    ));
}

#[test]
fn diff_shows_what_appeared_disappeared_and_changed() {
    let old = build(
        inputs([billing()]),
        vec![
            routed(0, "GET", "/invoices/7", "/invoices/{id}"),
            record(1, "billing", "GET", "/debug/vars"),
        ],
    );
    let mut new_caller = routed(2, "GET", "/invoices/8", "/invoices/{id}");
    new_caller.caller = Some("spiffe://example.org/ns/ops/sa/new-job".into());
    let new = build(
        inputs([billing()]),
        vec![
            routed(0, "GET", "/invoices/7", "/invoices/{id}"),
            new_caller,
            with_shape(
                routed(3, "GET", "/invoices", "/invoices"),
                ExchangeShape {
                    query: vec![query_field("debug", "1")],
                    ..ExchangeShape::default()
                },
            ),
            record(4, "billing", "POST", "/admin/reindex"),
        ],
    );
    let d = diff(&old, &new);
    let appeared: Vec<(&str, &str)> = d
        .appeared
        .iter()
        .map(|e| (e.method.as_str(), e.template.as_str()))
        .collect();
    assert_eq!(appeared, [("POST", "/admin/reindex")]);
    assert_eq!(d.appeared[0].flags, [Flag::Shadow]);
    let disappeared: Vec<(&str, &str)> = d
        .disappeared
        .iter()
        .map(|e| (e.method.as_str(), e.template.as_str()))
        .collect();
    assert_eq!(disappeared, [("GET", "/debug/vars")]);

    let changed = |template: &str| {
        d.changed
            .iter()
            .find(|c| c.template == template && c.method == "GET")
            .unwrap_or_else(|| panic!("{template} unchanged"))
    };
    let invoice = changed("/invoices/{id}");
    assert_eq!(invoice.changes.len(), 2, "{:?}", invoice.changes);
    assert_eq!(invoice.changes[0].what, "risk");
    assert_eq!(invoice.changes[1].what, "callers");
    assert_eq!(
        invoice.changes[1].added,
        ["spiffe://example.org/ns/ops/sa/new-job"]
    );
    let list = changed("/invoices");
    let what: Vec<&str> = list.changes.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(
        what,
        ["called", "flags", "callers", "query", "statuses", "drift"]
    );
    assert_eq!(list.changes[1].added, ["drift"]);
    assert_eq!(list.changes[1].removed, ["unused"]);

    let table = render_diff(&d);
    assert!(
        table.contains("1 appeared, 1 disappeared, 2 changed"),
        "{table}"
    );
    assert!(table.contains("flags: +drift -unused"), "{table}");
    assert!(diff(&new, &new).is_empty());
}

#[test]
fn compaction_does_not_change_the_snapshot() {
    let spec = fixture("code-hosting.yaml");
    let records = common::Traffic::new(&spec, "svc", 21).records(6_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_db(&db, records);
    let snapshot = |compact_after| {
        let mut options = InventoryOptions::default();
        options.compact_after = compact_after;
        let mut inventory = Inventory::new(InventoryInputs::default(), options);
        inventory.read_sqlite(&db).unwrap();
        inventory.snapshot(NOW)
    };
    let reference = snapshot(usize::MAX);
    for compact_after in [1, 7, 500] {
        assert_eq!(
            snapshot(compact_after),
            reference,
            "compact_after {compact_after}"
        );
    }
}

#[test]
fn reconstructed_documents_mix_spec_and_learned_templates_and_load() {
    let mut propfind = record(3, "billing", "PROPFIND", "/invoices/7");
    propfind.status = Some(207);
    let snapshot = build(
        inputs([billing()]),
        vec![
            routed(0, "GET", "/invoices/7", "/invoices/{id}"),
            denied(record(1, "billing", "DELETE", "/invoices/9"), 405),
            record(2, "billing", "GET", "/admin/export/3"),
            propfind,
        ],
    );
    let documents = reconstruct(&snapshot);
    assert_eq!(documents.len(), 1);
    let document = &documents[0].document;
    let item = &document["paths"]["/invoices/{id}"];
    assert!(item["get"].is_object() && item["delete"].is_object());
    assert!(item["x-palisade-method-PROPFIND"].is_object());
    assert_eq!(item["get"]["operationId"], json!("getInvoice"));
    assert_eq!(item["delete"]["x-palisade-flags"], json!(["shadow"]));
    assert_eq!(
        item["delete"]["responses"]["405"]["description"],
        json!("Observed once")
    );
    assert_eq!(document["x-palisade-owner"], json!("team-billing"));
    let parsed = ApiSpec::from_str(&documents[0].to_json(), Path::new("billing.json")).unwrap();
    let mut operations: Vec<(String, String)> = parsed
        .operations()
        .map(|op| (op.method.clone(), op.template.clone()))
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            ("DELETE".to_owned(), "/invoices/{id}".to_owned()),
            ("GET".to_owned(), "/admin/export/{exportId}".to_owned()),
            ("GET".to_owned(), "/invoices/{id}".to_owned()),
        ]
    );
}
