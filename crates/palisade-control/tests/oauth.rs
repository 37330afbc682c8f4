//! The OAuth 2.0 token endpoint and JWKS mounted in the control plane, end to end: real
//! TLS on 127.0.0.1, a mesh workload authenticating with its SVID (`tls_client_auth`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use palisade_audit::{AuthMethod, Decision};
use palisade_control::OAuthSettings;
use palisade_token::{certificate_thumbprint, ClientAuth, RegisteredClient, TokenVerifier};
use support::{cert_der, Harness};
use time::OffsetDateTime;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A control plane with OAuth: `orders` (tls_client_auth) may read invoices on `billing`.
async fn start_with_oauth() -> Harness {
    Harness::start_with(|pki, config| {
        config.oauth = Some(OAuthSettings::new(vec![RegisteredClient {
            client_id: pki.id("orders").to_string(),
            auth: ClientAuth::TlsClientAuth,
            scopes: HashMap::from([("billing".to_owned(), vec!["invoices:read".to_owned()])]),
        }]));
    })
    .await
}

/// Installs an SVID for `name` and returns its directory and certificate DER.
fn workload(h: &Harness, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let svid = h
        .pki
        .ca
        .issue(&h.id(name), Duration::from_secs(600))
        .unwrap();
    let (dir, _) = h.install(name, &svid);
    (dir, cert_der(&svid.cert_pem))
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn a_mesh_workload_gets_a_certificate_bound_token_that_verifies_with_the_served_jwks() {
    let h = start_with_oauth().await;
    let orders = h.id("orders");
    let (dir, der) = workload(&h, "orders");
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", orders.as_str()),
        ("audience", "billing"),
        ("scope", "invoices:read"),
    ]);
    let response = h
        .raw(Some(&dir), "POST", "/oauth2/token", &[FORM], body)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.headers["cache-control"], "no-store");
    assert_eq!(response.headers["pragma"], "no-cache");
    let answer = response.json();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 300);
    assert_eq!(answer["scope"], "invoices:read");
    let token = answer["access_token"].as_str().unwrap().to_owned();

    // The JWKS, fetched without a client certificate, as any sidecar could.
    let jwks = h
        .raw(None, "GET", "/.well-known/jwks.json", &[], "")
        .await
        .unwrap();
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.headers["cache-control"], "max-age=60");
    let jwks = jwks.json();

    let issuer = format!("https://{}", h.addr());
    let verifier = TokenVerifier::new(&issuer, "billing", palisade_token::DEFAULT_LEEWAY);
    verifier.set_jwks(&jwks).unwrap();
    let verified = verifier
        .verify(&token, Some(&der), OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(verified.client_id, orders.as_str());
    assert_eq!(verified.scopes, vec!["invoices:read"]);
    assert!(verified.cert_bound);
    // Bound to the workload's certificate: useless with another one.
    let (_, other) = workload(&h, "customers");
    assert!(verifier
        .verify(&token, Some(&other), OffsetDateTime::now_utc())
        .is_err());
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], certificate_thumbprint(&der));
    assert_eq!(claims["iss"], issuer);

    pyjwt_interop(&h, &token, &jwks, &issuer, &der);

    let records = h.finish().await;
    let issued = records
        .iter()
        .find(|r| r.path.as_deref() == Some("/oauth2/token"))
        .unwrap();
    assert_eq!(issued.decision, Decision::Allow);
    assert_eq!(issued.service, "palisade-control");
    assert_eq!(issued.route.as_deref(), Some("/oauth2/token"));
    assert_eq!(issued.caller.as_deref(), Some(orders.as_str()));
    assert_eq!(issued.auth, AuthMethod::Mtls);
    assert_eq!(issued.status, Some(200));
    assert_eq!(issued.code, None);
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains(&token), "the token must never be audited");
}

/// PyJWT validates the token with the served JWKS, when python3 has pyjwt and
/// cryptography (CI installs them); otherwise says so and skips.
fn pyjwt_interop(h: &Harness, token: &str, jwks: &serde_json::Value, issuer: &str, der: &[u8]) {
    let available = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    // In CI (scripts/test installs them) a missing module is a failure, never a skip.
    assert!(
        available || std::env::var_os("CI").is_none(),
        "python3 with pyjwt and cryptography is required in CI"
    );
    if !available {
        eprintln!(
            "SKIPPED the PyJWT interop check: python3 with pyjwt and cryptography is not installed \
             (pip install pyjwt cryptography)"
        );
        return;
    }
    let fixture = h.pki.dir.path().join("interop.json");
    std::fs::write(
        &fixture,
        serde_json::to_vec(&serde_json::json!({
            "token": token,
            "jwks": jwks,
            "issuer": issuer,
            "audience": "billing",
            "cert_der_b64url": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(der),
        }))
        .unwrap(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../palisade-token/tests/interop/verify_with_pyjwt.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&fixture)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("OK:"), "{stdout}");
}

#[tokio::test]
async fn an_unregistered_scope_is_refused_as_invalid_scope_and_audited() {
    let h = start_with_oauth().await;
    let orders = h.id("orders");
    let (dir, _) = workload(&h, "orders");
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", orders.as_str()),
        ("audience", "billing"),
        ("scope", "invoices:write"),
    ]);
    let response = h
        .raw(Some(&dir), "POST", "/oauth2/token", &[FORM], body)
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"], "invalid_scope");
    assert_eq!(response.headers["cache-control"], "no-store");

    let records = h.finish().await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.code.as_deref(), Some("palisade.token.invalid_scope"));
    assert_eq!(record.caller.as_deref(), Some(orders.as_str()));
    assert_eq!(record.status, Some(400));
}

#[tokio::test]
async fn tls_client_auth_without_a_client_certificate_is_refused_as_invalid_client() {
    let h = start_with_oauth().await;
    let orders = h.id("orders");
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", orders.as_str()),
        ("audience", "billing"),
    ]);
    let response = h
        .raw(None, "POST", "/oauth2/token", &[FORM], body)
        .await
        .unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"], "invalid_client");
    assert_eq!(
        response.headers["www-authenticate"],
        r#"Bearer error="invalid_client""#
    );

    let records = h.finish().await;
    assert_eq!(records[0].decision, Decision::Deny);
    assert_eq!(
        records[0].code.as_deref(),
        Some("palisade.token.client_cert_missing")
    );
    assert_eq!(records[0].auth, AuthMethod::None);
}

#[tokio::test]
async fn the_token_endpoint_takes_only_form_bodies() {
    let h = start_with_oauth().await;
    let (dir, _) = workload(&h, "orders");
    let response = h
        .raw(
            Some(&dir),
            "POST",
            "/oauth2/token",
            &[("content-type", "application/json")],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(response.status, 415);
    assert_eq!(
        response.json()["code"],
        "palisade.control.unsupported_media_type"
    );
    let response = h
        .raw(Some(&dir), "GET", "/oauth2/token", &[], "")
        .await
        .unwrap();
    assert_eq!(response.status, 405);
    assert_eq!(response.headers["allow"], "POST");
}

#[tokio::test]
async fn without_oauth_configured_the_token_endpoint_and_jwks_are_not_found() {
    let h = Harness::start().await;
    let (dir, _) = workload(&h, "orders");
    for (method, path) in [
        ("POST", "/oauth2/token"),
        ("GET", "/oauth2/token"),
        ("GET", "/.well-known/jwks.json"),
    ] {
        let response = h
            .raw(
                Some(&dir),
                method,
                path,
                &[FORM],
                "grant_type=client_credentials",
            )
            .await
            .unwrap();
        assert_eq!(response.status, 404, "{method} {path}");
        assert_eq!(response.json()["code"], "palisade.control.not_found");
    }
    let records = h.finish().await;
    assert!(records
        .iter()
        .all(|r| r.code.as_deref() == Some("palisade.control.not_found") && r.route.is_none()));
}

#[tokio::test]
async fn the_signing_keys_live_in_the_state_dir() {
    let h = start_with_oauth().await;
    let served = h
        .raw(None, "GET", "/.well-known/jwks.json", &[], "")
        .await
        .unwrap()
        .json();
    assert_eq!(served["keys"].as_array().unwrap().len(), 1);
    // Another process opening the same directory (a restart) sees the same key.
    let reopened = palisade_token::TokenIssuer::open(
        &h.pki.state_dir().join("oauth-keys"),
        "https://127.0.0.1:1",
        palisade_token::DEFAULT_TOKEN_TTL,
        palisade_token::DEFAULT_KEY_ROTATION,
    )
    .unwrap();
    assert_eq!(reopened.jwks()["keys"][0]["kid"], served["keys"][0]["kid"]);
    h.finish().await;
}
