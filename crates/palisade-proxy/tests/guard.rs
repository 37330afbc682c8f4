//! The request guard stages through a real sidecar: limit (per identity, local and Redis),
//! validate (OpenAPI) and inspect (injection), each enforced or only reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use palisade_audit::Decision;
use palisade_testkit::{client_config, tls_request, tls_request_with};
use support::{Mesh, OPEN_POLICIES};

fn orders(mesh: &Mesh) -> rustls::ClientConfig {
    client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    )
}

fn customers(mesh: &Mesh) -> rustls::ClientConfig {
    client_config(
        Some(&mesh.svid("customers")),
        &mesh.bundle(),
        &mesh.id("billing"),
    )
}

const LIMIT_3_PER_MINUTE: &str = r#"
[service.limits]
default = { requests = 3, per = "1m", burst = 3 }
"#;

#[tokio::test]
async fn throttles_a_retry_looping_caller_by_identity_not_by_connection() {
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], LIMIT_3_PER_MINUTE).await;
    // Each request is a new connection (a new source port): the budget follows the identity.
    for _ in 0..3 {
        let ok = tls_request(mesh.billing_inbound(), orders(&mesh), "GET", "/invoices/1")
            .await
            .unwrap();
        assert_eq!(ok.status, 200);
        assert!(
            ok.headers.contains_key("ratelimit-policy"),
            "{:?}",
            ok.headers
        );
    }
    let limited = tls_request(mesh.billing_inbound(), orders(&mesh), "GET", "/invoices/1")
        .await
        .unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["code"], "palisade.ratelimit.exceeded");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "retry-after {retry_after}");
    assert!(
        limited.headers["ratelimit"]
            .to_str()
            .unwrap()
            .contains("r=0"),
        "{:?}",
        limited.headers
    );
    // Another identity has its own budget.
    let other = tls_request(
        mesh.billing_inbound(),
        customers(&mesh),
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap();
    assert_eq!(other.status, 200);

    let records = mesh.finish().await;
    assert_eq!(records.len(), 5);
    let limited: Vec<_> = records
        .iter()
        .filter(|r| r.code.as_deref() == Some("palisade.ratelimit.exceeded"))
        .collect();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].status, Some(429));
    assert_eq!(limited[0].findings.len(), 1);
    assert!(!limited[0].ratelimit_degraded);
}

#[tokio::test]
async fn report_mode_lets_an_over_limit_call_through_and_records_the_finding() {
    let extra = r#"
[service.limits]
mode = "report"
default = { requests = 1, per = "1m", burst = 1 }
"#;
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    for _ in 0..2 {
        let ok = tls_request(mesh.billing_inbound(), orders(&mesh), "GET", "/invoices/1")
            .await
            .unwrap();
        assert_eq!(ok.status, 200);
    }
    let records = mesh.finish().await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.decision == Decision::Allow));
    assert!(records[0].findings.is_empty());
    assert!(
        records[1].findings[0].starts_with("palisade.ratelimit.exceeded@"),
        "{:?}",
        records[1].findings
    );
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn replicas_sharing_redis_admit_no_more_than_the_shared_budget() {
    // A key prefix unique to this run keeps earlier runs' budgets out.
    let burst = 4;
    let prefix = format!("palisade-test:{}:{}", std::process::id(), uuid_like());
    let extra = format!(
        "\n[service.limits]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_key_prefix = \"{prefix}\"\ndefault = {{ requests = {burst}, per = \"1h\", burst = {burst} }}\n",
        redis_url(),
    );
    let mut mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], &extra).await;
    let replica = mesh.start_billing_replica().await;
    let mut admitted = 0;
    for i in 0..12 {
        let addr = if i % 2 == 0 {
            mesh.billing_inbound()
        } else {
            replica
        };
        let response = tls_request(addr, orders(&mesh), "GET", "/invoices/7")
            .await
            .unwrap();
        match response.status {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}: {:?}", response.body),
        }
    }
    let records = mesh.finish().await;
    assert!(
        admitted >= burst && admitted <= burst + 1,
        "admitted {admitted} across two replicas"
    );
    assert!(
        records.iter().all(|r| !r.ratelimit_degraded),
        "Redis was reachable"
    );
}

#[tokio::test]
async fn falls_back_to_local_limits_and_flags_the_record_when_redis_is_down() {
    let closed = palisade_testkit::free_addr();
    let extra = format!(
        "\n[service.limits]\nbackend = \"redis\"\nredis_url = \"redis://{closed}\"\ndefault = {{ requests = 10, per = \"1m\" }}\n"
    );
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], &extra).await;
    let ok = tls_request(mesh.billing_inbound(), orders(&mesh), "GET", "/invoices/1")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let records = mesh.finish().await;
    assert!(records[0].ratelimit_degraded);
}

#[tokio::test]
async fn fails_closed_when_redis_is_down_and_configured_to_deny() {
    let closed = palisade_testkit::free_addr();
    let extra = format!(
        "\n[service.limits]\nbackend = \"redis\"\nredis_url = \"redis://{closed}\"\non_redis_unavailable = \"deny\"\ndefault = {{ requests = 10, per = \"1m\" }}\n"
    );
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], &extra).await;
    let refused = tls_request(mesh.billing_inbound(), orders(&mesh), "GET", "/invoices/1")
        .await
        .unwrap();
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["code"], "palisade.ratelimit.unavailable");
    mesh.finish().await;
}

#[tokio::test]
async fn refuses_a_route_the_spec_does_not_document() {
    let mesh = Mesh::start(Some(OPEN_POLICIES), &["billing"]).await;
    let response = tls_request(
        mesh.billing_inbound(),
        orders(&mesh),
        "GET",
        "/admin/export",
    )
    .await
    .unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["code"], "palisade.schema.unknown_route");
    let records = mesh.finish().await;
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.schema.unknown_route")
    );
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn forwards_a_valid_body_whole_and_refuses_an_unknown_field_by_pointer() {
    let mesh = Mesh::start(Some(OPEN_POLICIES), &["billing"]).await;
    let body = r#"{"invoice":"inv-42","amount_cents":1999,"memo":"March order"}"#;
    let ok = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/payments",
        &[JSON],
        body,
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.json()["body_len"], body.len());

    let sneaky = r#"{"invoice":"inv-42","amount_cents":1999,"approved_by":"admin"}"#;
    let refused = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/payments",
        &[JSON],
        sneaky,
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 400);
    let problem = refused.json();
    assert_eq!(problem["code"], "palisade.schema.unknown_field");
    assert_eq!(problem["field"], "/approved_by");
    assert!(
        !problem.to_string().contains("admin"),
        "the value is never echoed: {problem}"
    );

    let records = mesh.finish().await;
    assert_eq!(records[0].bytes_in, body.len() as u64);
    assert_eq!(
        records[1].findings,
        vec!["palisade.schema.unknown_field@/approved_by"]
    );
}

#[tokio::test]
async fn refuses_invalid_parameters_and_oversized_bodies() {
    let extra = "\n[service.validation]\nmax_body_bytes = 64\n";
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    let bad = tls_request(
        mesh.billing_inbound(),
        orders(&mesh),
        "GET",
        "/invoices?limit=1000",
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["field"], "query/limit");
    let big = format!(r#"{{"invoice":"{}","amount_cents":1}}"#, "x".repeat(100));
    let too_large = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/payments",
        &[JSON],
        big,
    )
    .await
    .unwrap();
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["code"], "palisade.schema.body_too_large");
    mesh.finish().await;
}

#[tokio::test]
async fn blocks_sql_injection_and_path_traversal_naming_only_the_location() {
    let mesh = Mesh::start(Some(OPEN_POLICIES), &["billing"]).await;
    let sqli = tls_request(
        mesh.billing_inbound(),
        orders(&mesh),
        "GET",
        "/invoices?q=1%27%20OR%20%271%27%3D%271",
    )
    .await
    .unwrap();
    assert_eq!(sqli.status, 400);
    let problem = sqli.json();
    assert_eq!(problem["code"], "palisade.injection.sql");
    assert_eq!(problem["field"], "query/q");
    assert!(
        !problem.to_string().contains("OR"),
        "payload echoed: {problem}"
    );

    let traversal = tls_request(
        mesh.billing_inbound(),
        orders(&mesh),
        "GET",
        "/invoices/..%2F..%2Fetc%2Fpasswd",
    )
    .await
    .unwrap();
    assert_eq!(traversal.status, 400);
    assert_eq!(
        traversal.json()["code"],
        "palisade.injection.path_traversal"
    );

    let body = r#"{"invoice":"inv-1","amount_cents":5,"memo":"x'; DROP TABLE payments;--"}"#;
    let in_body = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/payments",
        &[JSON],
        body,
    )
    .await
    .unwrap();
    assert_eq!(in_body.status, 400);
    assert_eq!(in_body.json()["field"], "body/memo");

    let records = mesh.finish().await;
    let codes: Vec<_> = records.iter().map(|r| r.code.as_deref().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "palisade.injection.sql",
            "palisade.injection.path_traversal",
            "palisade.injection.sql"
        ]
    );
}

#[tokio::test]
async fn inspects_bodies_of_services_without_a_spec() {
    // Validation is off; inspection still reads (and then forwards) the body.
    let extra = "\n[service.validation]\nmode = \"off\"\n";
    let mesh = Mesh::start_with(Some(OPEN_POLICIES), &["billing"], extra).await;
    let body = r#"{"user":{"$ne":null},"password":{"$ne":null}}"#;
    let refused = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/login",
        &[JSON],
        body,
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["code"], "palisade.injection.nosql");
    let java = "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==";
    let refused = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/import",
        &[("content-type", "text/plain")],
        java,
    )
    .await
    .unwrap();
    assert_eq!(refused.json()["code"], "palisade.injection.deserialization");
    let fine = tls_request_with(
        mesh.billing_inbound(),
        orders(&mesh),
        "POST",
        "/import",
        &[("content-type", "text/plain")],
        "hello",
    )
    .await
    .unwrap();
    assert_eq!(fine.status, 200);
    assert_eq!(fine.json()["body_len"], 5);
    mesh.finish().await;
}
