//! The control plane end to end: real TLS on 127.0.0.1, real SQLite state, real audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_audit::{AuthMethod, Decision};
use palisade_control::{serial_hex, ControlClient, ControlError, JOIN_TOKEN_PREFIX};
use palisade_identity::{svid_identity, DEFAULT_SVID_TTL};
use rcgen::PublicKeyData;
use rustls::pki_types::CertificateDer;
use support::{cert_der, csr_for, refusal, Harness, TRUST_DOMAIN};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use x509_parser::prelude::{FromDer, X509Certificate};

#[tokio::test]
async fn join_with_a_valid_token_issues_an_svid_for_the_tokens_id_certifying_the_clients_key() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = h.token(&billing);
    assert!(token.starts_with(JOIN_TOKEN_PREFIX));

    let svid = h.client.join(&token, &billing).await.unwrap();

    let der = cert_der(&svid.cert_pem);
    assert_eq!(
        svid_identity(&CertificateDer::from(der.clone())).unwrap(),
        billing
    );
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    // The certified key is the one the client generated and kept.
    let key = rcgen::KeyPair::from_pem(&svid.key_pem).unwrap();
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    // Signed by the CA in the bundle.
    let ca_der = cert_der(h.pki.ca.bundle_pem());
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    // Default TTL: an hour.
    let remaining = svid.not_after - OffsetDateTime::now_utc();
    let ttl = time::Duration::try_from(DEFAULT_SVID_TTL).unwrap();
    assert!(remaining <= ttl && remaining > ttl - time::Duration::minutes(1));

    let serial = serial_hex(&der).unwrap();
    let records = h.finish().await;
    let join = records
        .iter()
        .find(|r| r.path.as_deref() == Some("/v1/join"))
        .unwrap();
    assert_eq!(join.decision, Decision::Allow);
    assert_eq!(join.service, "palisade-control");
    assert_eq!(join.method.as_deref(), Some("POST"));
    assert_eq!(join.caller.as_deref(), Some(billing.as_str()));
    assert_eq!(join.status, Some(200));
    assert!(join.detail.as_deref().unwrap().contains(&serial));
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains(&token), "the token must never be audited");
}

#[tokio::test]
async fn a_replayed_join_token_is_refused_as_token_used_and_audited() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = h.token(&billing);
    h.client.join(&token, &billing).await.unwrap();

    let replay = h.client.join(&token, &billing).await;
    assert_eq!(refusal(replay), (403, "palisade.control.token_used".into()));

    let records = h.finish().await;
    let denied: Vec<_> = records
        .iter()
        .filter(|r| r.decision == Decision::Deny)
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].code.as_deref(),
        Some("palisade.control.token_used")
    );
    assert_eq!(denied[0].caller.as_deref(), Some(billing.as_str()));
    assert_eq!(denied[0].status, Some(403));
    assert_eq!(denied[0].auth, AuthMethod::None);
    assert!(!serde_json::to_string(&records).unwrap().contains(&token));
}

#[tokio::test]
async fn an_expired_join_token_is_refused() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = h
        .state()
        .create_join_token(&billing, Duration::from_millis(1))
        .unwrap();
    let created = Instant::now();
    // Waiting for the clock itself: the token is valid for one millisecond.
    palisade_testkit::wait_until("the token to expire", Duration::from_secs(5), || {
        created.elapsed() > Duration::from_millis(5)
    })
    .await;

    let result = h.client.join(&token, &billing).await;
    assert_eq!(
        refusal(result),
        (403, "palisade.control.token_expired".into())
    );
}

#[tokio::test]
async fn an_unknown_join_token_is_refused() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    // A well-formed token this control plane never issued.
    let other = h
        .state()
        .create_join_token(&billing, Duration::from_secs(60))
        .unwrap();
    let forged = format!(
        "{}{}",
        JOIN_TOKEN_PREFIX,
        "A".repeat(other.len() - JOIN_TOKEN_PREFIX.len())
    );

    assert_eq!(
        refusal(h.client.join(&forged, &billing).await),
        (403, "palisade.control.unknown_token".into())
    );
    assert_eq!(
        refusal(h.client.join("", &billing).await),
        (403, "palisade.control.unknown_token".into())
    );
    let records = h.finish().await;
    let denied = records
        .iter()
        .filter(|r| r.decision == Decision::Deny)
        .count();
    assert_eq!(denied, 2);
    // An unknown token names nobody.
    assert!(records.iter().all(|r| r.caller.is_none()));
}

#[tokio::test]
async fn a_csr_for_another_identity_is_refused_as_identity_mismatch_without_using_the_token() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = h.token(&billing);

    let result = h.client.join(&token, &h.id("orders")).await;
    assert_eq!(
        refusal(result),
        (403, "palisade.control.identity_mismatch".into())
    );

    // Two URI SANs, one of them right, are refused too.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![
        rcgen::SanType::URI(billing.as_str().try_into().unwrap()),
        rcgen::SanType::URI("spiffe://example.org/ns/test/sa/orders".try_into().unwrap()),
    ];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let body = serde_json::json!({ "token": token, "csr": csr }).to_string();
    let response = h
        .raw(
            None,
            "POST",
            "/v1/join",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(
        response.json()["code"],
        "palisade.control.identity_mismatch"
    );
    assert_eq!(response.headers["content-type"], "application/problem+json");

    // The refused CSRs did not use the token up.
    let svid = h.client.join(&token, &billing).await.unwrap();
    assert_eq!(svid.spiffe_id, billing);
}

#[tokio::test]
async fn a_csr_whose_signature_does_not_verify_is_refused_as_invalid_csr() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = h.token(&billing);
    let csr = csr_for(billing.as_str());
    // Flip one base64 character inside the signature (the end of the DER).
    let mut lines: Vec<String> = csr.lines().map(str::to_owned).collect();
    let last_data = lines.len() - 2;
    let line = &mut lines[last_data];
    let pos = line.len().saturating_sub(4);
    let flipped = if &line[pos..=pos] == "A" { "B" } else { "A" };
    line.replace_range(pos..=pos, flipped);
    let tampered = lines.join("\n");
    let body = serde_json::json!({ "token": token, "csr": tampered }).to_string();
    let response = h
        .raw(
            None,
            "POST",
            "/v1/join",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["code"], "palisade.control.invalid_csr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_with_one_token_yield_exactly_one_svid() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = Arc::new(h.token(&billing));
    let client = Arc::new(h.client.clone());
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let (client, token, billing) = (client.clone(), token.clone(), billing.clone());
            tokio::spawn(async move { client.join(&token, &billing).await })
        })
        .collect();
    let mut successes = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(svid) => {
                assert_eq!(svid.spiffe_id, billing);
                successes += 1;
            }
            Err(ControlError::Refused { status, code, .. }) => {
                assert_eq!(
                    (status, code.as_str()),
                    (403, "palisade.control.token_used")
                );
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(successes, 1);
}

#[tokio::test]
async fn renew_over_mtls_issues_a_new_svid_for_the_same_id_with_a_later_not_after() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    // The current SVID: ten minutes, as `palisade ca issue --ttl 10m` might have made it.
    let current = h.pki.ca.issue(&billing, Duration::from_secs(600)).unwrap();
    let (_, material) = h.install("billing", &current);

    let renewed = h.client.renew(&material).await.unwrap();

    assert_eq!(renewed.spiffe_id, billing);
    assert!(renewed.not_after > current.not_after);
    assert_ne!(renewed.key_pem, current.key_pem);
    assert_ne!(
        serial_hex(&cert_der(&renewed.cert_pem)),
        serial_hex(&cert_der(&current.cert_pem))
    );

    // And the renewed SVID renews in turn.
    let (_, material) = h.install("billing-2", &renewed);
    let again = h.client.renew(&material).await.unwrap();
    assert_eq!(again.spiffe_id, billing);
    assert!(again.not_after >= renewed.not_after);

    let records = h.finish().await;
    let renewals: Vec<_> = records
        .iter()
        .filter(|r| r.path.as_deref() == Some("/v1/renew"))
        .collect();
    assert_eq!(renewals.len(), 2);
    for record in renewals {
        assert_eq!(record.decision, Decision::Allow);
        assert_eq!(record.auth, AuthMethod::Mtls);
        assert_eq!(record.caller.as_deref(), Some(billing.as_str()));
    }
}

#[tokio::test]
async fn renew_without_a_client_certificate_is_refused() {
    let h = Harness::start().await;
    let body = serde_json::json!({ "csr": csr_for("spiffe://example.org/ns/test/sa/billing") })
        .to_string();
    let response = h
        .raw(
            None,
            "POST",
            "/v1/renew",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(
        response.json()["code"],
        "palisade.control.client_cert_required"
    );
    let records = h.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.control.client_cert_required")
    );
    assert_eq!(records[0].caller, None);
}

#[tokio::test]
async fn renew_with_a_revoked_svid_is_refused() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let svid = h.client.join(&h.token(&billing), &billing).await.unwrap();
    let (_, material) = h.install("billing", &svid);
    let serial = serial_hex(&cert_der(&svid.cert_pem)).unwrap();
    let version = h.state().revoke_serial(&serial, "key leaked").unwrap();
    assert_eq!(version, 1);

    let result = h.client.renew(&material).await;
    assert_eq!(refusal(result), (403, "palisade.control.revoked".into()));

    let records = h.finish().await;
    let refused = records.last().unwrap();
    assert_eq!(refused.code.as_deref(), Some("palisade.control.revoked"));
    assert_eq!(refused.caller.as_deref(), Some(billing.as_str()));
}

#[tokio::test]
async fn renew_with_an_svid_whose_id_is_revoked_is_refused_and_that_id_cannot_join_again() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let svid = h.client.join(&h.token(&billing), &billing).await.unwrap();
    let (_, material) = h.install("billing", &svid);
    let pending = h.token(&billing);
    h.state()
        .revoke_spiffe_id(&billing, "decommissioned")
        .unwrap();

    assert_eq!(
        refusal(h.client.renew(&material).await),
        (403, "palisade.control.revoked".into())
    );
    assert_eq!(
        refusal(h.client.join(&pending, &billing).await),
        (403, "palisade.control.revoked".into())
    );
}

#[tokio::test]
async fn renew_with_a_csr_for_another_id_is_refused() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let current = h.pki.ca.issue(&billing, Duration::from_secs(600)).unwrap();
    let (dir, _) = h.install("billing", &current);
    let body =
        serde_json::json!({ "csr": csr_for("spiffe://example.org/ns/test/sa/orders") }).to_string();
    let response = h
        .raw(
            Some(&dir),
            "POST",
            "/v1/renew",
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(
        response.json()["code"],
        "palisade.control.identity_mismatch"
    );
    let records = h.finish().await;
    assert_eq!(records[0].caller.as_deref(), Some(billing.as_str()));
    assert_eq!(records[0].auth, AuthMethod::Mtls);
}

#[tokio::test]
async fn revocations_carry_a_version_etag_honour_if_none_match_and_increment() {
    let h = Harness::start().await;
    let empty = h.client.revocations(None).await.unwrap().unwrap();
    assert_eq!(empty.version, 0);
    assert!(empty.serials.is_empty() && empty.spiffe_ids.is_empty());
    assert_eq!(h.client.revocations(Some(0)).await.unwrap(), None);

    let billing = h.id("billing");
    let svid = h.client.join(&h.token(&billing), &billing).await.unwrap();
    let serial = serial_hex(&cert_der(&svid.cert_pem)).unwrap();
    assert_eq!(
        h.state().revoke_spiffe_id(&h.id("orders"), "gone").unwrap(),
        1
    );
    assert_eq!(h.state().revoke_serial(&serial, "key leaked").unwrap(), 2);

    let list = h.client.revocations(Some(0)).await.unwrap().unwrap();
    assert_eq!(list.version, 2);
    assert_eq!(list.serials, vec![serial]);
    assert_eq!(list.spiffe_ids, vec![h.id("orders").to_string()]);
    assert_eq!(h.client.revocations(Some(2)).await.unwrap(), None);

    let response = h
        .raw(None, "GET", "/v1/revocations", &[], bytes::Bytes::new())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["etag"], "\"2\"");
    let response = h
        .raw(
            None,
            "GET",
            "/v1/revocations",
            &[("if-none-match", "\"2\"")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 304);
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn is_revoked_holds_for_a_revoked_serial_and_for_every_svid_of_a_revoked_id() {
    let h = Harness::start().await;
    let (billing, orders) = (h.id("billing"), h.id("orders"));
    let billing_1 = h.client.join(&h.token(&billing), &billing).await.unwrap();
    let billing_2 = h.client.join(&h.token(&billing), &billing).await.unwrap();
    let orders_1 = h.client.join(&h.token(&orders), &orders).await.unwrap();
    let serial =
        |svid: &palisade_identity::IssuedSvid| serial_hex(&cert_der(&svid.cert_pem)).unwrap();

    h.state()
        .revoke_serial(&serial(&billing_1), "key leaked")
        .unwrap();
    h.state()
        .revoke_spiffe_id(&orders, "decommissioned")
        .unwrap();
    let list = h.client.revocations(None).await.unwrap().unwrap();

    assert!(list.is_revoked(&serial(&billing_1), billing.as_str()));
    assert!(!list.is_revoked(&serial(&billing_2), billing.as_str()));
    assert!(list.is_revoked(&serial(&orders_1), orders.as_str()));
    assert!(list.is_revoked("ff", orders.as_str()));
    // The serial in openssl's spelling (upper case, colon-separated octets) matches too.
    let plain = serial(&billing_1);
    assert_eq!(plain.len() % 2, 0, "serials are whole octets: {plain}");
    let octets: Vec<String> = format!("00{plain}")
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert!(list.is_revoked(&octets.join(":"), billing.as_str()));
}

#[tokio::test]
async fn bundle_is_served_with_an_etag() {
    let h = Harness::start().await;
    assert_eq!(h.client.bundle().await.unwrap(), h.pki.ca.bundle_pem());
    let response = h
        .raw(None, "GET", "/v1/bundle", &[], bytes::Bytes::new())
        .await
        .unwrap();
    let etag = response.headers["etag"].to_str().unwrap().to_owned();
    let response = h
        .raw(
            None,
            "GET",
            "/v1/bundle",
            &[("if-none-match", &etag)],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 304);
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_bad_bodies_are_problems() {
    let h = Harness::start().await;
    let none = bytes::Bytes::new();
    let response = h
        .raw(None, "GET", "/v1/nothing", &[], none.clone())
        .await
        .unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["code"], "palisade.control.not_found");

    let response = h
        .raw(None, "GET", "/v1/join", &[], none.clone())
        .await
        .unwrap();
    assert_eq!(response.status, 405);
    assert_eq!(response.headers["allow"], "POST");
    assert_eq!(
        response.json()["code"],
        "palisade.control.method_not_allowed"
    );

    let response = h.raw(None, "POST", "/v1/join", &[], "{}").await.unwrap();
    assert_eq!(response.status, 415);
    assert_eq!(
        response.json()["code"],
        "palisade.control.unsupported_media_type"
    );

    let json = [("content-type", "application/json")];
    let response = h
        .raw(None, "POST", "/v1/join", &json, "{\"token\": 1}")
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["code"], "palisade.control.bad_request");

    let huge = format!(
        "{{\"token\": \"{}\"}}",
        "a".repeat(palisade_control::MAX_BODY_BYTES)
    );
    let response = h.raw(None, "POST", "/v1/join", &json, huge).await.unwrap();
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["code"], "palisade.control.body_too_large");

    let records = h.finish().await;
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.decision == Decision::Deny));
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_is_refused_in_the_handshake_and_audited() {
    let h = Harness::start().await;
    let foreign = palisade_testkit::TestPki::new(TRUST_DOMAIN);
    let dir = foreign.svid_dir("billing", &foreign.id("billing"));
    let config = palisade_testkit::client_config(Some(&dir), &h.bundle_path(), &h.control_id());
    let result = palisade_testkit::tls_request(h.addr(), config, "GET", "/v1/bundle").await;
    assert!(result.is_err(), "{result:?}");
    let records = h.finish().await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.identity.untrusted")
    );
    assert_eq!(records[0].method, None);
}

#[tokio::test]
async fn the_client_refuses_a_server_presenting_an_svid_other_than_the_control_identity() {
    let h = Harness::start().await;
    // An impostor with a perfectly valid SVID from the same CA, for another identity.
    let impostor = h
        .pki
        .ca
        .issue(&h.id("impostor"), Duration::from_secs(600))
        .unwrap();
    let (_, material) = h.install("impostor", &impostor);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(material.chain.clone(), material.key.clone_key())
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = tokio::spawn(async move {
        let mut received = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let mut buf = Vec::new();
                let _ = tls.read_to_end(&mut buf).await;
                received.extend(buf);
            }
        }
        received
    });

    let client = ControlClient::new(
        &format!("https://{addr}"),
        h.pki.ca.bundle_pem(),
        TRUST_DOMAIN,
    )
    .unwrap();
    match client.bundle().await {
        Err(ControlError::Handshake { code, .. }) => {
            assert_eq!(code, "palisade.identity.server_mismatch");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    let billing = h.id("billing");
    let token = h.token(&billing);
    assert!(matches!(
        client.join(&token, &billing).await,
        Err(ControlError::Handshake {
            code: "palisade.identity.server_mismatch",
            ..
        })
    ));
    // Nothing, and so not the token, reached the impostor.
    let received = server.await.unwrap();
    assert!(received.is_empty());
}

#[tokio::test]
async fn an_svid_expired_within_the_grace_still_renews_but_one_expired_longer_does_not() {
    let h = Harness::start().await;
    let billing = h.id("billing");
    let now = time::OffsetDateTime::now_utc();
    let recent = h
        .pki
        .ca
        .issue_between(
            &billing,
            now - time::Duration::hours(2),
            now - time::Duration::hours(1),
        )
        .unwrap();
    let (_, material) = h.install("billing", &recent);
    let renewed = h.client.renew(&material).await.unwrap();
    assert!(renewed.not_after > now);

    let long_gone = h
        .pki
        .ca
        .issue_between(
            &billing,
            now - time::Duration::hours(30),
            now - time::Duration::hours(25),
        )
        .unwrap();
    let (_, material) = h.install("billing-old", &long_gone);
    assert!(
        h.client.renew(&material).await.is_err(),
        "beyond the grace the SVID is refused"
    );
    h.finish().await;
}
