//! The outbound listener: the local app calls other services by name through its sidecar,
//! which speaks mTLS to the target's sidecar and pins the target's SPIFFE ID.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use palisade_audit::{Decision, Direction};
use palisade_identity::tls::inbound_server_config;
use palisade_identity::SvidMaterial;
use palisade_testkit::plain_request;
use support::{Mesh, POLICIES};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn forwards_to_the_target_sidecar_over_mtls() {
    let mesh = Mesh::start(Some(POLICIES), &["billing", "orders"]).await;
    let outbound = mesh.sidecars[1].outbound_addr.unwrap();
    let response = plain_request(outbound, "billing", "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{:?}", response.body);
    let echo = response.json();
    // The billing app sees orders' identity as verified by the billing sidecar.
    assert!(echo["xfcc"]
        .as_str()
        .unwrap()
        .ends_with("URI=spiffe://palisade.test/ns/test/sa/orders"));
    let records = mesh.finish().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    let outbound_record = records
        .iter()
        .find(|r| r.direction == Direction::Outbound)
        .unwrap();
    let inbound_record = records
        .iter()
        .find(|r| r.direction == Direction::Inbound)
        .unwrap();
    assert_eq!(outbound_record.service, "billing");
    assert_eq!(outbound_record.decision, Decision::Allow);
    assert_eq!(inbound_record.policies, vec!["orders-read-invoices"]);
    // One request id follows the call across both hops.
    assert_eq!(outbound_record.request_id, inbound_record.request_id);
}

#[tokio::test]
async fn relays_the_target_sidecars_denial() {
    let mesh = Mesh::start(Some(POLICIES), &["billing", "orders"]).await;
    let outbound = mesh.sidecars[1].outbound_addr.unwrap();
    let response = plain_request(outbound, "billing:80", "POST", "/payments")
        .await
        .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(response.json()["code"], "palisade.authz.denied");
    let records = mesh.finish().await;
    let inbound_record = records
        .iter()
        .find(|r| r.direction == Direction::Inbound)
        .unwrap();
    assert_eq!(
        inbound_record.code.as_deref(),
        Some("palisade.authz.denied")
    );
}

#[tokio::test]
async fn refuses_a_server_presenting_another_identity() {
    // billing's sidecar is not running; an impostor holding a valid SVID for customers
    // (same CA) listens at billing's address.
    let mesh = Mesh::start(Some(POLICIES), &["orders"]).await;
    let customers = SvidMaterial::load_dir(&mesh.svid("customers")).unwrap();
    let tls = inbound_server_config(&customers, vec!["palisade.test".into()]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(mesh.billing_inbound())
        .await
        .unwrap();
    let impostor = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // The handshake must fail: the client refuses the impostor's certificate.
        let mut tls = acceptor.accept(stream).await?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await.map(|_| ())
    });
    let outbound = mesh.sidecars[0].outbound_addr.unwrap();
    let response = plain_request(outbound, "billing", "GET", "/invoices/42")
        .await
        .unwrap();
    assert_eq!(response.status, 502);
    let problem = response.json();
    assert_eq!(
        problem["code"], "palisade.identity.server_mismatch",
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("sa/customers") && detail.contains("sa/billing"),
        "{detail}"
    );
    assert!(
        impostor.await.unwrap().is_err(),
        "the impostor must never get a session"
    );
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].direction, Direction::Outbound);
    assert_eq!(records[0].decision, Decision::Deny);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.identity.server_mismatch")
    );
}

#[tokio::test]
async fn refuses_an_unknown_target_service() {
    let mesh = Mesh::start(Some(POLICIES), &["orders"]).await;
    let outbound = mesh.sidecars[0].outbound_addr.unwrap();
    let response = plain_request(outbound, "payroll", "GET", "/")
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["code"], "palisade.outbound.unknown_service");
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.outbound.unknown_service")
    );
}
