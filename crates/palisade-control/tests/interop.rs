//! Interop with real third-party clients against the control plane on 127.0.0.1 with real
//! TLS: authlib (`private_key_jwt`), curl (`tls_client_auth` with an SVID) and the SPIFFE
//! Python library (parsing an SVID issued by the join flow).
//!
//! The Python modules and curl are required in CI (`CI` set); locally a missing one is
//! reported as SKIPPED and the test returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use palisade_control::OAuthSettings;
use palisade_identity::{SVID_CERT_FILE, SVID_KEY_FILE};
use palisade_token::{certificate_thumbprint, ClientAuth, RegisteredClient, TokenVerifier};
use support::{cert_der, Harness};
use time::OffsetDateTime;

/// Whether `program args` runs successfully; in CI a failure is a test failure, locally it
/// prints SKIPPED for `what` and the caller returns.
fn available(program: &str, args: &[&str], what: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "{what} is required in CI"
    );
    if !ok {
        eprintln!("SKIPPED: {what} is not installed");
    }
    ok
}

/// A script under `tests/interop/`.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Runs a command; panics with its output unless it succeeds; returns its stdout.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?}\n{stdout}{stderr}");
    stdout
}

/// The served JWKS, fetched without a client certificate.
async fn jwks(h: &Harness) -> serde_json::Value {
    let response = h
        .raw(None, "GET", "/.well-known/jwks.json", &[], "")
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    response.json()
}

fn billing_scopes() -> HashMap<String, Vec<String>> {
    HashMap::from([("billing".to_owned(), vec!["invoices:read".to_owned()])])
}

#[tokio::test]
async fn python_authlib_gets_a_token_with_private_key_jwt() {
    if !available(
        "python3",
        &["-c", "import authlib, requests, joserfc, cryptography"],
        "python3 with authlib and requests",
    ) {
        return;
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let client_id = "reporting-batch";
    let public_key_pem = key.public_key_pem();
    let h = Harness::start_with(move |_, config| {
        config.oauth = Some(OAuthSettings::new(vec![RegisteredClient {
            client_id: client_id.to_owned(),
            auth: ClientAuth::PrivateKeyJwt { public_key_pem },
            scopes: billing_scopes(),
        }]));
    })
    .await;
    let key_path = h.pki.dir.path().join("client-key.pem");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let issuer = format!("https://{}", h.addr());
    let token_url = format!("{issuer}/oauth2/token");

    let bundle = h.bundle_path();
    let stdout = tokio::task::spawn_blocking(move || {
        run(Command::new("python3")
            .arg(script("authlib_private_key_jwt.py"))
            .arg(&token_url)
            .arg(client_id)
            .arg(&key_path)
            .arg(&bundle)
            .arg("billing"))
    })
    .await
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert_eq!(answer["scope"], "invoices:read");
    let token = answer["access_token"].as_str().unwrap();

    let verifier = TokenVerifier::new(&issuer, "billing", palisade_token::DEFAULT_LEEWAY);
    verifier.set_jwks(&jwks(&h).await).unwrap();
    let verified = verifier
        .verify(token, None, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(verified.client_id, client_id);
    assert_eq!(verified.scopes, vec!["invoices:read"]);
    assert!(!verified.cert_bound);
    h.finish().await;
}

#[tokio::test]
async fn curl_gets_a_token_over_mtls_with_its_svid() {
    if !available("curl", &["--version"], "curl") {
        return;
    }
    let h = Harness::start_with(|pki, config| {
        config.oauth = Some(OAuthSettings::new(vec![RegisteredClient {
            client_id: pki.id("orders").to_string(),
            auth: ClientAuth::TlsClientAuth,
            scopes: billing_scopes(),
        }]));
    })
    .await;
    let orders = h.id("orders");
    let svid = h.pki.ca.issue(&orders, Duration::from_secs(600)).unwrap();
    let (dir, _) = h.install("orders", &svid);
    let der = cert_der(&svid.cert_pem);
    let issuer = format!("https://{}", h.addr());
    let token_url = format!("{issuer}/oauth2/token");
    let client_id = format!("client_id={orders}");

    // `-k`: the certificate has only a URI SAN, which curl cannot match to 127.0.0.1.
    let stdout = tokio::task::spawn_blocking(move || {
        run(Command::new("curl")
            .args(["-sS", "-k", "--fail-with-body", "--max-time", "10"])
            .arg("--cert")
            .arg(dir.join(SVID_CERT_FILE))
            .arg("--key")
            .arg(dir.join(SVID_KEY_FILE))
            .args(["-d", "grant_type=client_credentials"])
            .arg("--data-urlencode")
            .arg(&client_id)
            .args(["-d", "audience=billing"])
            .arg(&token_url))
    })
    .await
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    let token = answer["access_token"].as_str().unwrap();

    let verifier = TokenVerifier::new(&issuer, "billing", palisade_token::DEFAULT_LEEWAY);
    verifier.set_jwks(&jwks(&h).await).unwrap();
    let verified = verifier
        .verify(token, Some(&der), OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(verified.client_id, orders.as_str());
    assert!(verified.cert_bound);
    // The cnf x5t#S256 is curl's certificate: another one does not verify.
    let other = h
        .pki
        .ca
        .issue(&h.id("customers"), Duration::from_secs(600))
        .unwrap();
    assert!(verifier
        .verify(
            token,
            Some(&cert_der(&other.cert_pem)),
            OffsetDateTime::now_utc()
        )
        .is_err());
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], certificate_thumbprint(&der));
    h.finish().await;
}

#[tokio::test]
async fn python_spiffe_parses_an_issued_svid() {
    if !available(
        "python3",
        &["-c", "import spiffe, cryptography"],
        "python3 with the spiffe library",
    ) {
        return;
    }
    let h = Harness::start().await;
    let billing = h.id("billing");
    let token = h.token(&billing);
    let svid = h.client.join(&token, &billing).await.unwrap();
    let (dir, _) = h.install("billing", &svid);

    let stdout = tokio::task::spawn_blocking(move || {
        run(Command::new("python3")
            .arg(script("spiffe_load_svid.py"))
            .arg(dir.join(SVID_CERT_FILE))
            .arg(dir.join(SVID_KEY_FILE)))
    })
    .await
    .unwrap();
    assert_eq!(stdout.trim(), billing.as_str());
    h.finish().await;
}
