//! Interop with another JOSE implementation: PyJWT validates a Palisade token using only
//! the published JWKS. Ignored by default (needs `python3` with `pyjwt` and
//! `cryptography`); run with `cargo test -p palisade-token --test interop -- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::json;
use support::*;
use time::OffsetDateTime;

#[test]
#[ignore = "needs python3 with pyjwt and cryptography"]
fn pyjwt_validates_palisade_tokens_with_the_jwks() {
    let world = World::new();
    let cert = world.svid_der(ORDERS);
    let now = OffsetDateTime::now_utc();
    let token = access_token(&world.tls_request(&[("audience", BILLING_SVC)], Some(&cert), now));
    let fixture = world.dir.path().join("interop.json");
    std::fs::write(
        &fixture,
        serde_json::to_vec(&json!({
            "token": token,
            "jwks": world.issuer.jwks(),
            "issuer": ISSUER,
            "audience": BILLING_SVC,
            "cert_der_b64url": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&cert),
        }))
        .unwrap(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_with_pyjwt.py");
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
