//! The inbound listener end to end: real TLS handshakes on 127.0.0.1, a real upstream app,
//! the audit log in a real SQLite file. Each test checks the single audit record it leaves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use palisade_audit::{AuthMethod, Decision, Direction};
use palisade_testkit::{client_config, plain_request, tls_request, TestPki};
use support::{Mesh, POLICIES};

#[tokio::test]
async fn allows_a_permitted_call_and_passes_the_verified_identity_upstream() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let config = client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let response = tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{:?}", response.body);
    let echo = response.json();
    assert_eq!(echo["path"], "/invoices/42");
    assert_eq!(
        echo["xfcc"],
        "By=spiffe://palisade.test/ns/test/sa/billing;URI=spiffe://palisade.test/ns/test/sa/orders"
    );
    let request_id = response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(echo["request_id"], request_id.as_str());

    let records = mesh.finish().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.decision, Decision::Allow);
    assert_eq!(
        r.caller.as_deref(),
        Some("spiffe://palisade.test/ns/test/sa/orders")
    );
    assert_eq!(r.auth, AuthMethod::Mtls);
    assert_eq!(r.service, "billing");
    assert_eq!(r.direction, Direction::Inbound);
    assert_eq!(r.route.as_deref(), Some("/invoices/{id}"));
    assert_eq!(r.policies, vec!["orders-read-invoices"]);
    assert_eq!(r.status, Some(200));
    assert_eq!(r.code, None);
    assert_eq!(r.request_id, request_id);
    assert_eq!(r.bytes_out, response.body.len() as u64);
}

#[tokio::test]
async fn denies_an_identity_no_policy_permits_with_403_problem() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let config = client_config(
        Some(&mesh.svid("customers")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let response = tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(response.headers["content-type"], "application/problem+json");
    let problem = response.json();
    assert_eq!(problem["code"], "palisade.authz.denied");
    assert_eq!(problem["status"], 403);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("default deny"), "{detail}");
    assert!(detail.contains("customers"), "{detail}");

    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].decision, Decision::Deny);
    assert_eq!(records[0].code.as_deref(), Some("palisade.authz.denied"));
    assert_eq!(records[0].status, Some(403));
    assert!(records[0].policies.is_empty());
}

#[tokio::test]
async fn a_forbid_names_the_deciding_policy_in_problem_and_record() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let config = client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let response = tls_request(mesh.billing_inbound(), config, "DELETE", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(response.json()["policies"][0], "no-deleting-invoices");
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].policies, vec!["no-deleting-invoices"]);
}

#[tokio::test]
async fn refuses_a_client_without_a_certificate() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let config = client_config(None, &mesh.bundle(), &mesh.id("billing"));
    let err = tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap_err();
    assert!(!err.is_empty());
    let records = mesh.finish().await;
    assert_refused(&records, "palisade.identity.missing");
}

#[tokio::test]
async fn rejects_client_cert_from_foreign_ca() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    // Same trust domain name, different root: only the bundle decides trust.
    let rogue = TestPki::new("palisade.test");
    let rogue_svid = rogue.svid_dir("orders", &rogue.id("orders"));
    let config = client_config(Some(&rogue_svid), &mesh.bundle(), &mesh.id("billing"));
    tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap_err();
    let records = mesh.finish().await;
    assert_refused(&records, "palisade.identity.untrusted");
}

#[tokio::test]
async fn rejects_an_expired_client_cert() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let expired = mesh
        .pki
        .expired_svid_dir("orders-expired", &mesh.id("orders"));
    let config = client_config(Some(&expired), &mesh.bundle(), &mesh.id("billing"));
    tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap_err();
    let records = mesh.finish().await;
    assert_refused(&records, "palisade.identity.expired");
}

#[tokio::test]
async fn rejects_a_cert_from_a_foreign_trust_domain() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let foreign_id = "spiffe://evil.test/ns/test/sa/orders".parse().unwrap();
    let foreign = mesh.pki.foreign_domain_svid_dir("foreign", &foreign_id);
    let config = client_config(Some(&foreign), &mesh.bundle(), &mesh.id("billing"));
    tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap_err();
    let records = mesh.finish().await;
    let record = assert_refused(&records, "palisade.identity.foreign_trust_domain");
    assert!(record.detail.as_deref().unwrap().contains("evil.test"));
}

#[tokio::test]
async fn answers_plaintext_http_with_a_problem_and_records_it() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let response = plain_request(mesh.billing_inbound(), "billing", "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["code"], "palisade.identity.plaintext");
    let records = mesh.finish().await;
    let record = assert_refused(&records, "palisade.identity.plaintext");
    assert_eq!(record.method.as_deref(), Some("GET"));
    assert_eq!(record.path.as_deref(), Some("/invoices/42"));
    assert_eq!(record.status, Some(400));
}

#[tokio::test]
async fn denies_everything_when_no_policy_set_was_ever_loaded() {
    // No policy directory: the load fails, the sidecar starts and fails closed.
    let mesh = Mesh::start(None, &["billing"]).await;
    let config = client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let response = tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.json()["code"], "palisade.policy.unavailable");
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.policy.unavailable")
    );
    assert_eq!(records[0].decision, Decision::Deny);
}

#[tokio::test]
async fn keeps_the_previous_policy_set_when_a_reload_is_invalid() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let generation = mesh.sidecars[0].policy.generation();
    std::fs::write(
        mesh.root().join("policies/broken.cedar"),
        "permit(principal,, action, resource);",
    )
    .unwrap();
    let err = mesh.sidecars[0].policy.reload().unwrap_err();
    assert!(err.to_string().contains("broken.cedar"), "{err}");
    assert_eq!(mesh.sidecars[0].policy.generation(), generation);
    let config = client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let response = tls_request(mesh.billing_inbound(), config, "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].policies, vec!["orders-read-invoices"]);
}

#[tokio::test]
async fn serves_http2_when_the_client_negotiates_it() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let mut config = client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    config.alpn_protocols = vec![b"h2".to_vec()];
    let response =
        palisade_testkit::tls_request_h2(mesh.billing_inbound(), config, "GET", "/invoices/7")
            .await
            .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["path"], "/invoices/7");
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].decision, Decision::Allow);
}

fn assert_refused<'a>(
    records: &'a [palisade_audit::AuditRecord],
    code: &str,
) -> &'a palisade_audit::AuditRecord {
    assert_eq!(
        records.len(),
        1,
        "expected exactly one record: {records:#?}"
    );
    let record = &records[0];
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.code.as_deref(), Some(code), "{record:#?}");
    assert_eq!(record.caller, None);
    assert_eq!(record.auth, AuthMethod::None);
    assert_eq!(record.service, "billing");
    assert!(record.peer.as_deref().unwrap().starts_with("127.0.0.1:"));
    record
}
