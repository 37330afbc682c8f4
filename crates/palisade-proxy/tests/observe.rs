//! Observation for the API inventory through a real sidecar: real TLS, the echo app, the
//! audit log in a real SQLite file. The record carries the exchange's shape (names, paths,
//! types, data classes) and never a value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use palisade_audit::{AuditRecord, Decision, ExchangeShape, FieldShape};
use palisade_testkit::{client_config, tls_request, tls_request_with, wait_until};
use support::{Mesh, OPEN_POLICIES, POLICIES};

/// Planted sensitive values: none may reach the audit database.
const QUERY_EMAIL: &str = "query.planted@example.net";
const BODY_EMAIL: &str = "body.planted@example.org";
/// A Luhn-valid Visa test number.
const CARD: &str = "4012 8888 8888 1881";
const SSN: &str = "536-22-8145";
const NAME: &str = "Augusta Planted";

fn orders(mesh: &Mesh) -> rustls::ClientConfig {
    client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    )
}

fn planted_body() -> String {
    serde_json::json!({
        "full_name": NAME,
        "email": BODY_EMAIL,
        "card_number": CARD,
        "ssn": SSN,
        "note": "call after 5pm",
    })
    .to_string()
}

fn planted_target() -> String {
    format!("/customers?email={}&q=x", QUERY_EMAIL.replace('@', "%40"))
}

/// Sends the planted request; the echo app answers with it as JSON.
async fn send_planted(mesh: &Mesh) -> palisade_testkit::TestResponse {
    tls_request_with(
        mesh.billing_inbound(),
        orders(mesh),
        "POST",
        &planted_target(),
        &[
            ("content-type", "application/json"),
            ("x-echo-body", "json"),
        ],
        planted_body(),
    )
    .await
    .unwrap()
}

fn field<'a>(fields: &'a [FieldShape], name: &str) -> &'a FieldShape {
    fields.iter().find(|f| f.name == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:?}",
            fields.iter().map(|f| &f.name).collect::<Vec<_>>()
        )
    })
}

fn shape(record: &AuditRecord) -> &ExchangeShape {
    record
        .shape
        .as_ref()
        .unwrap_or_else(|| panic!("no shape in {record:#?}"))
}

/// Every form a planted value could be written in.
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    forms.push(value.replace(['-', ' '], ""));
    forms.push(value.replace('@', "%40"));
    forms.push(value.to_ascii_lowercase());
    forms.push(value.to_ascii_uppercase());
    forms.sort();
    forms.dedup();
    forms
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn assert_no_planted_value(files: &[(String, Vec<u8>)]) {
    assert!(
        files.iter().any(|(name, _)| name == "audit.db"),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // The scan reads real record text: the field paths are there...
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, "/body/card_number")),
        "the audit files hold no shape at all"
    );
    // ...and none of the values.
    for value in [QUERY_EMAIL, BODY_EMAIL, CARD, SSN, NAME] {
        for form in forms(value) {
            for (name, bytes) in files {
                assert!(!contains(bytes, &form), "{form:?} found in {name}");
            }
        }
    }
}

#[tokio::test]
async fn classifies_a_planted_email_card_and_ssn_and_stores_none_of_them() {
    let mesh = Mesh::start(Some(OPEN_POLICIES), &["billing"]).await;
    let response = send_planted(&mesh).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.json()["body"]["ssn"], SSN, "the app got the body");

    // While the writer runs, the WAL holds the freshest pages: scan it too.
    wait_until("the record is written", Duration::from_secs(10), || {
        !mesh.records_now().is_empty()
    })
    .await;
    let running = mesh.audit_files();
    assert!(running.iter().any(|(name, _)| name == "audit.db-wal"));
    assert_no_planted_value(&running);

    let (records, files) = mesh.finish_with_files().await;
    assert_no_planted_value(&files);
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.decision, Decision::Allow);
    assert_eq!(
        record.data_classes,
        ["email", "us_ssn", "payment_card", "person_name"]
    );
    let shape = shape(record);
    assert!(!shape.truncated);

    let query: Vec<_> = shape.query.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(query, ["email", "q"]);
    assert_eq!(field(&shape.query, "email").classes, ["email"]);
    assert_eq!(field(&shape.query, "email").types, ["string"]);
    assert!(field(&shape.query, "q").classes.is_empty());

    // Validation parsed the request body; its JSON was reused.
    for (path, class) in [
        ("/email", "email"),
        ("/card_number", "payment_card"),
        ("/ssn", "us_ssn"),
        ("/full_name", "person_name"),
    ] {
        let f = field(&shape.request, path);
        assert_eq!(f.classes, [class], "{path}");
        assert_eq!(f.types, ["string"], "{path}");
    }
    assert!(field(&shape.request, "/note").classes.is_empty());
    assert_eq!(field(&shape.request, "").types, ["object"]);

    // The echo app's JSON response, teed on its way back.
    for (path, class) in [
        ("/body/email", "email"),
        ("/body/card_number", "payment_card"),
        ("/body/ssn", "us_ssn"),
    ] {
        assert_eq!(field(&shape.response, path).classes, [class], "{path}");
    }
    assert_eq!(field(&shape.response, "/body_len").types, ["integer"]);
    assert_eq!(field(&shape.response, "/scopes").types, ["null"]);
}

#[tokio::test]
async fn a_streamed_body_no_stage_reads_is_teed_and_classified() {
    let extra = "\n[service.validation]\nmode = \"off\"\n\n[service.inspection]\nmode = \"off\"\n";
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    let response = send_planted(&mesh).await;
    assert_eq!(response.status, 200, "{:?}", response.body);

    let (records, files) = mesh.finish_with_files().await;
    assert_no_planted_value(&files);
    let shape = shape(&records[0]);
    assert!(!shape.truncated);
    assert_eq!(
        field(&shape.request, "/card_number").classes,
        ["payment_card"]
    );
    assert_eq!(field(&shape.request, "/ssn").classes, ["us_ssn"]);
    assert_eq!(field(&shape.response, "/body/email").classes, ["email"]);
    assert_eq!(
        records[0].data_classes,
        ["email", "us_ssn", "payment_card", "person_name"]
    );
    assert_eq!(records[0].bytes_in, planted_body().len() as u64);
}

#[tokio::test]
async fn sampling_at_zero_stores_no_shape() {
    let extra = "\n[service.inventory]\nsample_rate = 0.0\n";
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    for _ in 0..3 {
        assert_eq!(send_planted(&mesh).await.status, 200);
    }
    let records = mesh.finish().await;
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.shape, None);
        assert!(record.data_classes.is_empty());
    }
}

#[tokio::test]
async fn sampling_at_one_half_observes_every_other_request() {
    let extra = "\n[service.inventory]\nsample_rate = 0.5\n";
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    for _ in 0..4 {
        assert_eq!(send_planted(&mesh).await.status, 200);
    }
    let records = mesh.finish().await;
    assert_eq!(records.len(), 4);
    assert_eq!(records.iter().filter(|r| r.shape.is_some()).count(), 2);
}

#[tokio::test]
async fn a_body_over_the_inventory_limit_is_marked_truncated_and_still_served() {
    let extra = "\n[service.inventory]\nmax_body_bytes = 64\n";
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    let body = planted_body();
    assert!(body.len() > 64);
    let response = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/customers?q=x",
        &[
            ("content-type", "application/json"),
            ("x-echo-body", "json"),
        ],
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.json()["body_len"], body.len());

    let records = mesh.finish().await;
    let record = &records[0];
    assert_eq!(record.decision, Decision::Allow);
    let shape = shape(record);
    assert!(shape.truncated);
    assert!(shape.request.is_empty() && shape.response.is_empty());
    assert_eq!(shape.query[0].name, "q");
    assert!(record.data_classes.is_empty());
}

#[tokio::test]
async fn a_refused_request_keeps_its_query_names() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let customers = client_config(
        Some(&mesh.svid("customers")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let target = format!("/invoices/42?email={}", QUERY_EMAIL.replace('@', "%40"));
    let response = tls_request(mesh.billing_inbound(), customers, "GET", &target)
        .await
        .unwrap();
    assert_eq!(response.status, 403);

    let (records, files) = mesh.finish_with_files().await;
    let record = &records[0];
    assert_eq!(record.code.as_deref(), Some("palisade.authz.denied"));
    let shape = shape(record);
    assert_eq!(field(&shape.query, "email").classes, ["email"]);
    assert!(
        shape.response.is_empty(),
        "the sidecar's own problem is not the app's response"
    );
    assert_eq!(record.data_classes, ["email"]);
    for form in forms(QUERY_EMAIL) {
        assert!(files.iter().all(|(_, bytes)| !contains(bytes, &form)));
    }
}
