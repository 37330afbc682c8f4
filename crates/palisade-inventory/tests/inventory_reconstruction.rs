//! Hidden-spec reconstruction: traffic generated from a known OpenAPI spec
//! (three realistic fixtures with identifiers of every kind) is written to a
//! real SQLite audit database; the inventory is built from it without the
//! spec and must list exactly the documented endpoints, each as one
//! template, with no spurious extras. Parameter names are compared after
//! normalising `{name}` to `{}`: names are derived by the templater (see
//! the crate docs), not guessed from intent.
//!
//! The same traffic compared with the spec must raise no flag at all
//! (conforming traffic is not drift), and the reconstructed OpenAPI
//! documents must parse back with the same paths and methods.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{fixture, normalised, write_db, Traffic};
use palisade_inventory::{
    reconstruct, EndpointSource, Flag, Inventory, InventoryInputs, InventoryOptions, ServiceInputs,
    Snapshot, SpecInput,
};
use palisade_openapi::ApiSpec;
use serde_json::json;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-05-05 00:00:00 UTC);

/// (method, template with `{}` for parameters) of every operation.
fn documented(spec: &ApiSpec) -> BTreeSet<(String, String)> {
    spec.operations()
        .map(|op| (op.method.clone(), normalised(&op.template)))
        .collect()
}

fn observed(snapshot: &Snapshot) -> BTreeSet<(String, String)> {
    snapshot
        .endpoints()
        .map(|(_, e)| (e.method.clone(), normalised(&e.template)))
        .collect()
}

struct Run {
    hidden: Snapshot,
    shown: Snapshot,
    records: usize,
}

/// Generates `n` calls of `spec_file`, writes them to SQLite, and builds
/// the inventory twice: without the spec, and with it (and an owner).
fn run(spec_file: &str, seed: u64, n: usize) -> Run {
    let spec = fixture(spec_file);
    let records = Traffic::new(&spec, "svc", seed).records(n);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    write_db(&db, records);

    let mut hidden = Inventory::new(InventoryInputs::default(), InventoryOptions::default());
    assert_eq!(hidden.read_sqlite(&db).unwrap(), n as u64);

    let mut inputs = InventoryInputs::default();
    inputs.services.insert(
        "svc".into(),
        ServiceInputs {
            owner: Some("team-svc".into()),
            spec: Some(SpecInput {
                source: spec_file.into(),
                spec: spec.clone(),
            }),
            retired: Vec::new(),
        },
    );
    let mut shown = Inventory::new(inputs, InventoryOptions::default());
    shown.read_sqlite(&db).unwrap();
    Run {
        hidden: hidden.snapshot(NOW),
        shown: shown.snapshot(NOW),
        records: n,
    }
}

/// The checks every fixture must pass.
fn reconstructs(spec_file: &str, seed: u64, n: usize) -> Run {
    let spec = fixture(spec_file);
    let run = run(spec_file, seed, n);

    // Without the spec: exactly the documented endpoints, one template each.
    let want = documented(&spec);
    let got = observed(&run.hidden);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{spec_file}: missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(run.hidden.records.counted, run.records as u64);
    let calls: u64 = run.hidden.endpoints().map(|(_, e)| e.calls).sum();
    assert_eq!(calls, run.records as u64, "every call under one endpoint");
    for (_, e) in run.hidden.endpoints() {
        assert_eq!(e.source, EndpointSource::Traffic);
        assert!(e.calls > 0, "{} {}", e.method, e.template);
        // No spec, no owner: only the orphan flag can apply.
        assert_eq!(e.flags, [Flag::Orphan], "{} {}", e.method, e.template);
    }

    // With the spec: the spec's own templates, every one called, no flag.
    let spec_endpoints: BTreeSet<(String, String)> = spec
        .operations()
        .map(|op| (op.method.clone(), op.template.clone()))
        .collect();
    let shown: BTreeSet<(String, String)> = run
        .shown
        .endpoints()
        .map(|(_, e)| (e.method.clone(), e.template.clone()))
        .collect();
    assert_eq!(shown, spec_endpoints, "{spec_file}");
    for (_, e) in run.shown.endpoints() {
        assert_eq!(e.source, EndpointSource::Spec);
        assert!(
            e.flags.is_empty() && e.drift.is_empty(),
            "{spec_file}: {} {} flags {:?} drift {:?}",
            e.method,
            e.template,
            e.flags,
            e.drift
        );
    }

    // The reconstructed document parses and has the same operations.
    let documents = reconstruct(&run.hidden);
    assert_eq!(documents.len(), 1);
    let text = documents[0].to_json();
    let parsed = ApiSpec::from_str(&text, Path::new("svc.json"))
        .unwrap_or_else(|e| panic!("{spec_file}: reconstructed document does not load: {e}"));
    assert_eq!(parsed.openapi_version(), "3.1.0");
    assert_eq!(documented(&parsed), want, "{spec_file}");
    run
}

#[test]
fn reconstructs_a_shop_api_with_integer_uuid_date_hash_token_and_sku_ids() {
    let run = reconstructs("shop.yaml", 1, 4_000);

    // Data classes found in the bodies.
    let create = run.shown.endpoint("svc", "POST", "/users").unwrap();
    for class in ["date_of_birth", "email", "person_name", "phone"] {
        assert!(
            create.data_classes.iter().any(|c| c == class),
            "{class} in {:?}",
            create.data_classes
        );
    }

    // Required fields are those present in every sample.
    let document = &reconstruct(&run.hidden)[0].document;
    let post_users = &document["paths"]["/users"]["post"];
    let schema = &post_users["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(schema["required"], json!(["email", "name"]));
    assert_eq!(
        schema["properties"]["name"]["required"],
        json!(["first_name", "last_name"])
    );
    assert_eq!(schema["properties"]["email"]["type"], json!("string"));
    assert_eq!(
        schema["properties"]["email"]["x-palisade-data-classes"],
        json!(["email"])
    );
    assert_eq!(post_users["requestBody"]["required"], json!(true));
    assert!(post_users["responses"]["201"]["content"].is_object());

    // Path parameters learned from traffic carry their kind.
    let order = &document["paths"]["/users/{userId}/orders/{orderId}"]["get"];
    assert_eq!(
        order["parameters"],
        json!([
            {"name": "userId", "in": "path", "required": true, "schema": {"type": "integer"}, "x-palisade-kinds": ["integer"]},
            {"name": "orderId", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}, "x-palisade-kinds": ["uuid"]},
        ])
    );
    assert!(order["x-palisade-callers"].as_array().unwrap().len() > 1);
}

#[test]
fn reconstructs_a_payments_api_with_token_email_hex_and_invoice_ids() {
    let run = reconstructs("payments.yaml", 2, 4_000);
    let pay = run.shown.endpoint("svc", "POST", "/v1/payments").unwrap();
    assert!(pay.data_classes.iter().any(|c| c == "payment_card"));
    let reasons: Vec<&str> = pay.risk.reasons.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons.contains(&"carries payment card data (payment_card)"),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"changes state (POST)"), "{reasons:?}");
}

#[test]
fn reconstructs_a_github_like_api_with_free_form_owner_and_repo() {
    let run = reconstructs("code-hosting.yaml", 3, 12_000);
    let issue = run
        .hidden
        .endpoints()
        .map(|(_, e)| e)
        .find(|e| normalised(&e.template) == "/repos/{}/{}/issues/{}" && e.method == "GET")
        .unwrap();
    assert_eq!(issue.params[0].kinds.last().unwrap(), "free_form");
    assert_eq!(issue.params[1].kinds.last().unwrap(), "free_form");
    assert_eq!(issue.params[2].kinds, ["integer"]);
}
