//! The sidecar's live identity: renewed SVIDs installed without dropping connections,
//! revoked peers refused, an expired own SVID failing closed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use palisade_identity::svid_facts;
use palisade_testkit::{client_config, plain_request, tls_request, wait_until};
use support::{Mesh, POLICIES};

/// Opens a keep-alive connection as orders; returns the server's serial and a sender.
async fn connect(mesh: &Mesh) -> (String, hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
    let config = client_config(
        Some(&mesh.svid("orders")),
        &mesh.bundle(),
        &mesh.id("billing"),
    );
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(mesh.billing_inbound())
        .await
        .unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("palisade.invalid").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let serial = svid_facts(&tls.get_ref().1.peer_certificates().unwrap()[0])
        .unwrap()
        .serial;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (serial, sender)
}

async fn get(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> u16 {
    let request = http::Request::get("/invoices/1")
        .header("host", "billing")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn installs_a_renewed_svid_for_new_connections_without_dropping_open_ones() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let (old_serial, mut open) = connect(&mesh).await;
    assert_eq!(get(&mut open).await, 200);

    // A renewal writes a new SVID into billing's SVID directory.
    mesh.pki.svid_dir("billing", &mesh.id("billing"));
    let identity = mesh.sidecars[0].identity.clone();
    wait_until(
        "the renewed SVID to be installed",
        Duration::from_secs(10),
        || identity.store.current().serial != old_serial,
    )
    .await;

    let (new_serial, mut fresh) = connect(&mesh).await;
    assert_ne!(
        new_serial, old_serial,
        "a new connection gets the renewed certificate"
    );
    assert_eq!(get(&mut fresh).await, 200);
    assert_eq!(
        get(&mut open).await,
        200,
        "the connection opened before the renewal still works"
    );
    let records = mesh.finish().await;
    assert_eq!(records.len(), 3);
}

#[tokio::test]
async fn refuses_a_revoked_caller_by_serial_and_by_spiffe_id() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let orders_cert = palisade_identity::read_certs(&mesh.svid("orders").join("svid.pem")).unwrap();
    let serial = svid_facts(&orders_cert[0]).unwrap().serial;
    let revocations = mesh.sidecars[0].identity.revocations.clone();
    let config = || {
        client_config(
            Some(&mesh.svid("orders")),
            &mesh.bundle(),
            &mesh.id("billing"),
        )
    };

    assert_eq!(
        tls_request(mesh.billing_inbound(), config(), "GET", "/invoices/1")
            .await
            .unwrap()
            .status,
        200
    );
    revocations.replace(1, [serial.to_uppercase()], []);
    tls_request(mesh.billing_inbound(), config(), "GET", "/invoices/1")
        .await
        .unwrap_err();
    revocations.replace(
        2,
        [],
        ["spiffe://palisade.test/ns/test/sa/orders".to_owned()],
    );
    tls_request(mesh.billing_inbound(), config(), "GET", "/invoices/1")
        .await
        .unwrap_err();
    revocations.replace(3, [], []);
    assert_eq!(
        tls_request(mesh.billing_inbound(), config(), "GET", "/invoices/1")
            .await
            .unwrap()
            .status,
        200
    );

    let records = mesh.finish().await;
    let codes: Vec<_> = records.iter().map(|r| r.code.as_deref()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some("palisade.identity.revoked"),
            Some("palisade.identity.revoked"),
            None
        ]
    );
}

#[tokio::test]
async fn an_expired_own_svid_fails_outbound_calls_closed() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    // Start orders with an SVID that has already expired.
    mesh.pki.expired_svid_dir("orders", &mesh.id("orders"));
    let writer_handle = mesh.audit_handle();
    let orders = palisade_proxy::Sidecar::start(&mesh.config, "orders", writer_handle)
        .await
        .unwrap();
    let response = plain_request(
        orders.outbound_addr.unwrap(),
        "billing",
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.json()["code"], "palisade.identity.expired");
    orders.shutdown().await;
    let records = mesh.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.identity.expired")
    );
}

#[tokio::test]
async fn a_revocation_reaches_connections_opened_before_it() {
    let mesh = Mesh::start(Some(POLICIES), &["billing"]).await;
    let (_, mut open) = connect(&mesh).await;
    assert_eq!(get(&mut open).await, 200);
    mesh.sidecars[0].identity.revocations.replace(
        1,
        [],
        ["spiffe://palisade.test/ns/test/sa/orders".to_owned()],
    );
    assert_eq!(
        get(&mut open).await,
        403,
        "the pooled connection loses its access"
    );
    let records = mesh.finish().await;
    assert_eq!(
        records[1].code.as_deref(),
        Some("palisade.identity.revoked")
    );
    assert_eq!(
        records[1].caller.as_deref(),
        Some("spiffe://palisade.test/ns/test/sa/orders")
    );
}
