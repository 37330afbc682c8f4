//! The token endpoint: client credentials with tls_client_auth and private_key_jwt, and
//! every refusal a client can provoke.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use palisade_token::{certificate_thumbprint, ClientAuth, ClientRegistry, RegisteredClient};
use serde_json::json;
use support::*;
use time::OffsetDateTime;

#[test]
fn tls_client_auth_issues_rfc9068_token_bound_to_the_client_svid() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let now = OffsetDateTime::now_utc();
    let response = world.tls_request(
        &[("audience", BILLING_SVC), ("scope", "invoices:read")],
        Some(&cert),
        now,
    );
    assert_eq!(response.outcome_code, None);
    assert_eq!(response.client_id.as_deref(), Some(ORDERS));
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 300);
    assert_eq!(response.body["scope"], "invoices:read");
    assert!(response.headers().contains(&("cache-control", "no-store")));

    let token = access_token(&response);
    let (header, claims) = decode_parts(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap();
    assert_eq!(world.issuer.jwks()["keys"][0]["kid"], kid);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], BILLING_SVC);
    assert_eq!(claims["sub"], ORDERS);
    assert_eq!(claims["client_id"], ORDERS);
    assert_eq!(claims["scope"], "invoices:read");
    assert_eq!(claims["iat"], now.unix_timestamp());
    assert_eq!(claims["exp"], now.unix_timestamp() + 300);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(claims["cnf"]["x5t#S256"], certificate_thumbprint(&cert));

    let verified = world
        .verifier(BILLING_SVC)
        .verify(&token, Some(&cert), now)
        .unwrap();
    assert_eq!(verified.subject, ORDERS);
    assert_eq!(verified.client_id, ORDERS);
    assert_eq!(verified.scopes, vec!["invoices:read"]);
    assert!(verified.cert_bound);
    assert_eq!(
        verified.expires_at.unix_timestamp(),
        now.unix_timestamp() + 300
    );
}

#[test]
fn no_scope_parameter_grants_every_scope_registered_for_the_audience() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let response = world.tls_request(
        &[("audience", BILLING_SVC)],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    assert_eq!(response.body["scope"], "invoices:read payments:write");
}

#[test]
fn resource_parameter_names_the_audience_like_audience_does() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let response = world.tls_request(
        &[("resource", "customers")],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    let (_, claims) = decode_parts(&access_token(&response));
    assert_eq!(claims["aud"], "customers");
    assert_eq!(claims["scope"], "customers:read");
}

#[test]
fn asking_for_more_scope_than_registered_is_invalid_scope() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let response = world.tls_request(
        &[("audience", BILLING_SVC), ("scope", "invoices:read admin")],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        400,
        "invalid_scope",
        "palisade.token.invalid_scope",
    );
    assert_eq!(response.client_id.as_deref(), Some(ORDERS));
}

#[test]
fn scope_registered_for_another_audience_is_invalid_scope() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let response = world.tls_request(
        &[("audience", BILLING_SVC), ("scope", "customers:read")],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        400,
        "invalid_scope",
        "palisade.token.invalid_scope",
    );
}

#[test]
fn audience_the_client_is_not_registered_for_is_invalid_target() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let now = OffsetDateTime::now_utc();
    let response = world.tls_request(&[("audience", "payroll")], Some(&cert), now);
    assert_refused(
        &response,
        400,
        "invalid_target",
        "palisade.token.invalid_target",
    );
    let response = world.tls_request(&[], Some(&cert), now);
    assert_refused(
        &response,
        400,
        "invalid_target",
        "palisade.token.invalid_target",
    );
    let response = world.tls_request(
        &[("audience", BILLING_SVC), ("resource", "customers")],
        Some(&cert),
        now,
    );
    assert_refused(
        &response,
        400,
        "invalid_target",
        "palisade.token.invalid_target",
    );
}

#[test]
fn unknown_client_is_invalid_client_401() {
    let world = World::new();
    let stranger = "spiffe://example.org/ns/prod/sa/stranger";
    let cert = world.svid_der(stranger);
    let response = world.issuer.token_endpoint(
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", stranger),
            ("audience", BILLING_SVC),
        ]),
        Some(&cert),
        &world.clients,
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.unknown_client",
    );
    assert!(response
        .headers()
        .iter()
        .any(|(name, _)| *name == "www-authenticate"));
}

#[test]
fn client_cert_whose_spiffe_id_is_not_the_client_id_is_invalid_client() {
    let world = World::new();
    let cert = world.svid_der("spiffe://example.org/ns/prod/sa/billing");
    let response = world.tls_request(
        &[("audience", BILLING_SVC)],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.client_cert_mismatch",
    );
}

#[test]
fn tls_client_auth_without_a_client_cert_is_invalid_client() {
    let world = World::new();
    let response = world.tls_request(
        &[("audience", BILLING_SVC)],
        None,
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.client_cert_missing",
    );
}

#[test]
fn garbage_client_cert_is_invalid_client() {
    let world = World::new();
    let response = world.tls_request(
        &[("audience", BILLING_SVC)],
        Some(b"not a certificate"),
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.client_cert_mismatch",
    );
}

#[test]
fn no_client_authentication_is_invalid_client() {
    let world = World::new();
    let response = world.issuer.token_endpoint(
        &form(&[
            ("grant_type", "client_credentials"),
            ("audience", BILLING_SVC),
        ]),
        None,
        &world.clients,
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.client_auth_missing",
    );
    assert_eq!(response.client_id, None);
}

#[test]
fn client_secret_is_refused_by_design() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let response = world.tls_request(
        &[("client_secret", "hunter2"), ("audience", BILLING_SVC)],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.client_secret_unsupported",
    );
    assert!(!response.body.to_string().contains("hunter2"));
}

#[test]
fn grant_types_other_than_client_credentials_are_unsupported() {
    let world = World::new();
    let response = world.issuer.token_endpoint(
        &form(&[("grant_type", "password"), ("client_id", ORDERS)]),
        None,
        &world.clients,
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        400,
        "unsupported_grant_type",
        "palisade.token.unsupported_grant_type",
    );
    let response = world.issuer.token_endpoint(
        &form(&[("client_id", ORDERS)]),
        None,
        &world.clients,
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        400,
        "invalid_request",
        "palisade.token.invalid_request",
    );
}

#[test]
fn repeated_parameters_are_invalid_request() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let response = world.tls_request(
        &[("audience", BILLING_SVC), ("audience", "customers")],
        Some(&cert),
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        400,
        "invalid_request",
        "palisade.token.invalid_request",
    );
}

#[test]
fn client_without_any_audience_is_unauthorized_client() {
    let world = World::new();
    let lonely = "spiffe://example.org/ns/prod/sa/lonely";
    let clients = ClientRegistry::new(vec![RegisteredClient {
        client_id: lonely.into(),
        auth: ClientAuth::TlsClientAuth,
        scopes: Default::default(),
    }]);
    let cert = world.svid_der(lonely);
    let response = world.issuer.token_endpoint(
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", lonely),
            ("audience", BILLING_SVC),
        ]),
        Some(&cert),
        &clients,
        OffsetDateTime::now_utc(),
    );
    assert_refused(
        &response,
        400,
        "unauthorized_client",
        "palisade.token.unauthorized_client",
    );
}

#[test]
fn private_key_jwt_issues_an_unbound_token() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let assertion = world.sign_assertion(&world.assertion_claims(now));
    let response = world.jwt_request(&assertion, &[("audience", BILLING_SVC)], now);
    let token = access_token(&response);
    assert_eq!(response.client_id.as_deref(), Some(REPORTING));
    let (_, claims) = decode_parts(&token);
    assert_eq!(claims["sub"], REPORTING);
    assert_eq!(claims["client_id"], REPORTING);
    assert_eq!(claims["scope"], "invoices:read");
    assert!(claims.get("cnf").is_none());
    let verified = world
        .verifier(BILLING_SVC)
        .verify(&token, None, now)
        .unwrap();
    assert!(!verified.cert_bound);
    assert_eq!(verified.client_id, REPORTING);
}

#[test]
fn private_key_jwt_with_matching_client_id_parameter_is_accepted() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let assertion = world.sign_assertion(&world.assertion_claims(now));
    let response = world.jwt_request(
        &assertion,
        &[("audience", BILLING_SVC), ("client_id", REPORTING)],
        now,
    );
    access_token(&response);
}

/// RFC 7523 §3.2: an invalid client JWT (and a replayed one is invalid) is reported as
/// `invalid_client`; `invalid_grant` is for JWTs used as authorization grants (§3.1).
#[test]
fn replayed_client_assertion_jti_is_invalid_client() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let assertion = world.sign_assertion(&world.assertion_claims(now));
    access_token(&world.jwt_request(&assertion, &[("audience", BILLING_SVC)], now));
    let replay = world.jwt_request(&assertion, &[("audience", BILLING_SVC)], now);
    assert_refused(
        &replay,
        401,
        "invalid_client",
        "palisade.token.assertion_replayed",
    );
    // A new assertion re-using the jti is refused too, not only the identical string.
    let mut claims = world.assertion_claims(now);
    claims["jti"] = decode_parts(&assertion).1["jti"].clone();
    claims["exp"] = json!(now.unix_timestamp() + 120);
    let reused = world.jwt_request(
        &world.sign_assertion(&claims),
        &[("audience", BILLING_SVC)],
        now,
    );
    assert_refused(
        &reused,
        401,
        "invalid_client",
        "palisade.token.assertion_replayed",
    );
}

#[test]
fn client_assertion_for_another_audience_is_refused() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    for aud in [
        json!("https://other.example.org/oauth2/token"),
        json!(ISSUER),
    ] {
        let mut claims = world.assertion_claims(now);
        claims["aud"] = aud;
        let response = world.jwt_request(
            &world.sign_assertion(&claims),
            &[("audience", BILLING_SVC)],
            now,
        );
        assert_refused(
            &response,
            401,
            "invalid_client",
            "palisade.token.assertion_invalid",
        );
    }
}

#[test]
fn client_assertion_lifetime_rules_are_enforced() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp();
    let cases = [
        ("expired", json!(t - 31), None),
        ("lives longer than 5 minutes", json!(t + 600), None),
        ("issued in the future", json!(t + 60), Some(json!(t + 120))),
    ];
    for (why, exp, iat) in cases {
        let mut claims = world.assertion_claims(now);
        claims["exp"] = exp;
        if let Some(iat) = iat {
            claims["iat"] = iat;
        }
        let response = world.jwt_request(
            &world.sign_assertion(&claims),
            &[("audience", BILLING_SVC)],
            now,
        );
        assert_eq!(response.status, 401, "{why}: {}", response.body);
        assert_eq!(
            response.outcome_code,
            Some("palisade.token.assertion_invalid"),
            "{why}"
        );
    }
}

#[test]
fn client_assertion_without_jti_or_with_wrong_sub_is_refused() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let mut no_jti = world.assertion_claims(now);
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut wrong_sub = world.assertion_claims(now);
    wrong_sub["sub"] = json!("someone-else");
    for claims in [no_jti, wrong_sub] {
        let response = world.jwt_request(
            &world.sign_assertion(&claims),
            &[("audience", BILLING_SVC)],
            now,
        );
        assert_refused(
            &response,
            401,
            "invalid_client",
            "palisade.token.assertion_invalid",
        );
    }
}

#[test]
fn client_assertion_signed_by_another_key_is_refused() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let other = rcgen::KeyPair::generate().unwrap();
    let assertion = es256(&other.serialize_pem(), &world.assertion_claims(now));
    let response = world.jwt_request(&assertion, &[("audience", BILLING_SVC)], now);
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.assertion_invalid",
    );
    assert!(!response.body.to_string().contains(&assertion));
}

#[test]
fn client_id_parameter_contradicting_the_assertion_is_refused() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let assertion = world.sign_assertion(&world.assertion_claims(now));
    let response = world.jwt_request(
        &assertion,
        &[("audience", BILLING_SVC), ("client_id", ORDERS)],
        now,
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.assertion_invalid",
    );
}

#[test]
fn wrong_assertion_type_is_invalid_request() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let assertion = world.sign_assertion(&world.assertion_claims(now));
    let response = world.issuer.token_endpoint(
        &form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &assertion),
            ("audience", BILLING_SVC),
        ]),
        None,
        &world.clients,
        now,
    );
    assert_refused(
        &response,
        400,
        "invalid_request",
        "palisade.token.assertion_type_unsupported",
    );
}

#[test]
fn client_using_the_other_auth_method_is_invalid_client() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    // The private_key_jwt client presenting a certificate instead of an assertion.
    let response = world.issuer.token_endpoint(
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", REPORTING),
            ("audience", BILLING_SVC),
        ]),
        Some(&world.svid_der(ORDERS)),
        &world.clients,
        now,
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.wrong_auth_method",
    );
    // The mesh workload sending an assertion signed with its SVID key.
    let id = ORDERS.parse().unwrap();
    let svid = world
        .ca
        .issue(&id, std::time::Duration::from_secs(600))
        .unwrap();
    let mut claims = world.assertion_claims(now);
    claims["iss"] = json!(ORDERS);
    claims["sub"] = json!(ORDERS);
    let response = world.jwt_request(
        &es256(&svid.key_pem, &claims),
        &[("audience", BILLING_SVC)],
        now,
    );
    assert_refused(
        &response,
        401,
        "invalid_client",
        "palisade.token.wrong_auth_method",
    );
}

#[test]
fn registry_refuses_unparseable_client_keys_and_duplicates() {
    let bad_key = RegisteredClient {
        client_id: "x".into(),
        auth: ClientAuth::PrivateKeyJwt {
            public_key_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        },
        scopes: Default::default(),
    };
    assert!(ClientRegistry::try_new(vec![bad_key]).is_err());
    let tls = RegisteredClient {
        client_id: ORDERS.into(),
        auth: ClientAuth::TlsClientAuth,
        scopes: Default::default(),
    };
    assert!(ClientRegistry::try_new(vec![tls.clone(), tls.clone()]).is_err());
    assert!(ClientRegistry::new(vec![tls.clone(), tls])
        .get(ORDERS)
        .is_some());
}

#[test]
fn private_key_jwt_accepts_rs256_assertions_from_an_rsa_client() {
    let world = World::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let public = std::fs::read_to_string(fixtures.join("rsa-client.pub.pem")).unwrap();
    let private = std::fs::read(fixtures.join("rsa-client.key")).unwrap();
    let clients = ClientRegistry::try_new(vec![RegisteredClient {
        client_id: "batch-exporter".into(),
        auth: ClientAuth::PrivateKeyJwt {
            public_key_pem: public,
        },
        scopes: [(BILLING_SVC.to_owned(), vec!["invoices:read".to_owned()])].into(),
    }])
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let mut claims = world.assertion_claims(now);
    claims["iss"] = json!("batch-exporter");
    claims["sub"] = json!("batch-exporter");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&private).unwrap();
    let sign = |alg| jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key).unwrap();
    let request = |assertion: &str| {
        world.issuer.token_endpoint(
            &form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    palisade_token::JWT_BEARER_ASSERTION_TYPE,
                ),
                ("client_assertion", assertion),
                ("audience", BILLING_SVC),
            ]),
            None,
            &clients,
            now,
        )
    };
    // The key's algorithm is fixed at registration: PS256 with the same key is refused.
    let ps256 = request(&sign(jsonwebtoken::Algorithm::PS256));
    assert_refused(
        &ps256,
        401,
        "invalid_client",
        "palisade.token.assertion_invalid",
    );
    let response = request(&sign(jsonwebtoken::Algorithm::RS256));
    assert_eq!(response.client_id.as_deref(), Some("batch-exporter"));
    access_token(&response);
}

#[test]
fn registry_refuses_rsa_client_keys_shorter_than_2048_bits() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let short = std::fs::read_to_string(fixtures.join("rsa-1024.pub.pem")).unwrap();
    let result = ClientRegistry::try_new(vec![RegisteredClient {
        client_id: "weak".into(),
        auth: ClientAuth::PrivateKeyJwt {
            public_key_pem: short,
        },
        scopes: Default::default(),
    }]);
    assert!(result.is_err());
}
