//! The sidecar's verifier against tokens from the real issuer, and against forgeries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_token::{TokenRejection, TokenVerifier, DEFAULT_LEEWAY};
use serde_json::json;
use support::*;
use time::OffsetDateTime;

/// A cert-bound token for ORDERS → billing, its certificate and the issuing time.
fn bound_token(world: &World) -> (String, Vec<u8>, OffsetDateTime) {
    let cert = world.svid_der(ORDERS);
    let now = OffsetDateTime::now_utc();
    let response = world.tls_request(&[("audience", BILLING_SVC)], Some(&cert), now);
    (access_token(&response), cert, now)
}

/// An unbound token for REPORTING → billing.
fn unbound_token(world: &World, now: OffsetDateTime) -> String {
    let assertion = world.sign_assertion(&world.assertion_claims(now));
    access_token(&world.jwt_request(&assertion, &[("audience", BILLING_SVC)], now))
}

#[test]
fn expired_token_is_refused_only_after_the_leeway() {
    let world = World::new();
    let (token, cert, issued) = bound_token(&world);
    let verifier = world.verifier(BILLING_SVC);
    let exp = issued + Duration::from_secs(300);
    assert!(verifier
        .verify(&token, Some(&cert), exp + Duration::from_secs(29))
        .is_ok());
    assert_eq!(
        verifier.verify(&token, Some(&cert), exp + DEFAULT_LEEWAY),
        Err(TokenRejection::Expired)
    );
    assert_eq!(TokenRejection::Expired.code(), "palisade.token.expired");
}

#[test]
fn token_issued_in_the_future_is_not_yet_valid() {
    let world = World::new();
    let (token, cert, issued) = bound_token(&world);
    let verifier = world.verifier(BILLING_SVC);
    assert_eq!(
        verifier.verify(&token, Some(&cert), issued - Duration::from_secs(31)),
        Err(TokenRejection::NotYetValid)
    );
    assert!(verifier
        .verify(&token, Some(&cert), issued - Duration::from_secs(30))
        .is_ok());
}

#[test]
fn token_for_another_service_is_wrong_audience() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    assert_eq!(
        world.verifier("customers").verify(&token, Some(&cert), now),
        Err(TokenRejection::WrongAudience)
    );
}

#[test]
fn token_from_another_issuer_is_wrong_issuer() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let verifier = TokenVerifier::new("https://evil.example.org", BILLING_SVC, DEFAULT_LEEWAY);
    verifier.set_jwks(&world.issuer.jwks()).unwrap();
    assert_eq!(
        verifier.verify(&token, Some(&cert), now),
        Err(TokenRejection::WrongIssuer)
    );
}

#[test]
fn token_signed_by_a_key_not_in_the_jwks_is_unknown_kid_and_asks_for_refresh() {
    let world = World::new();
    let other = World::new();
    let (token, cert, now) = bound_token(&world);
    let verifier = other.verifier(BILLING_SVC);
    let kid = decode_parts(&token).0["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        verifier.verify(&token, Some(&cert), now),
        Err(TokenRejection::UnknownKey { kid: kid.clone() })
    );
    // The first unknown kid asks for a fetch even right after a scheduled one (the key may
    // have rotated since); then none is due, however many unknown kids arrive.
    assert!(verifier.needs_refresh(&kid));
    assert!(!verifier.needs_refresh(&kid));
    assert!(!verifier.needs_refresh("another-forged-kid"));
    // A known kid never needs a refresh.
    let own = world.verifier(BILLING_SVC);
    assert!(!own.needs_refresh(&kid));
}

#[test]
fn tampered_signature_is_bad_signature() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes: Vec<char> = sig.chars().collect();
    bytes[5] = if bytes[5] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{head}.{}", bytes.into_iter().collect::<String>());
    assert_eq!(
        world
            .verifier(BILLING_SVC)
            .verify(&tampered, Some(&cert), now),
        Err(TokenRejection::BadSignature)
    );
}

#[test]
fn tampered_claims_are_bad_signature() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let (header, mut claims) = decode_parts(&token);
    claims["scope"] = json!("invoices:read payments:write admin");
    let signature = token.rsplit('.').next().unwrap();
    let forged = compact(&header, &claims, signature);
    assert_eq!(
        world
            .verifier(BILLING_SVC)
            .verify(&forged, Some(&cert), now),
        Err(TokenRejection::BadSignature)
    );
}

#[test]
fn alg_none_token_is_refused() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let (mut header, claims) = decode_parts(&token);
    header["alg"] = json!("none");
    for signature in ["", "AAAA"] {
        let forged = compact(&header, &claims, signature);
        let rejection = world
            .verifier(BILLING_SVC)
            .verify(&forged, Some(&cert), now)
            .unwrap_err();
        assert_eq!(
            rejection,
            TokenRejection::DisallowedAlgorithm { alg: "none".into() }
        );
        assert_eq!(rejection.code(), "palisade.token.disallowed_algorithm");
    }
}

#[test]
fn hs256_token_signed_with_the_public_key_is_refused() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let (header, claims) = decode_parts(&token);
    let jwk = &world.issuer.jwks()["keys"][0];
    // Algorithm confusion: an HMAC "secret" an attacker knows (the public key, in the
    // forms a confused verifier might use as HMAC key).
    let secrets = [jwk.to_string(), jwk["x"].as_str().unwrap().to_owned()];
    for secret in secrets {
        let mut hs = Header::new(Algorithm::HS256);
        hs.typ = Some("at+jwt".into());
        hs.kid = header["kid"].as_str().map(str::to_owned);
        let forged =
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(secret.as_bytes()))
                .unwrap();
        assert_eq!(
            world
                .verifier(BILLING_SVC)
                .verify(&forged, Some(&cert), now),
            Err(TokenRejection::DisallowedAlgorithm {
                alg: "HS256".into()
            })
        );
    }
}

#[test]
fn jwt_that_is_not_an_access_token_is_wrong_type() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let (mut header, claims) = decode_parts(&token);
    let signature = token.rsplit('.').next().unwrap();
    for typ in [json!("JWT"), serde_json::Value::Null] {
        header["typ"] = typ;
        let other = compact(&header, &claims, signature);
        assert_eq!(
            world.verifier(BILLING_SVC).verify(&other, Some(&cert), now),
            Err(TokenRejection::WrongType)
        );
    }
}

#[test]
fn token_bound_to_another_certificate_is_refused() {
    let world = World::new();
    let (token, _cert, now) = bound_token(&world);
    // Same identity, another certificate (and key): the thief has a cert, not the one.
    let other_cert = world.svid_der(ORDERS);
    let rejection = world
        .verifier(BILLING_SVC)
        .verify(&token, Some(&other_cert), now)
        .unwrap_err();
    assert_eq!(rejection, TokenRejection::CertificateMismatch);
    assert_eq!(rejection.code(), "palisade.token.certificate_mismatch");
}

#[test]
fn bound_token_presented_without_a_certificate_is_refused() {
    let world = World::new();
    let (token, _cert, now) = bound_token(&world);
    assert_eq!(
        world.verifier(BILLING_SVC).verify(&token, None, now),
        Err(TokenRejection::CertificateRequired)
    );
}

#[test]
fn unbound_token_presented_with_a_certificate_is_accepted() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let token = unbound_token(&world, now);
    let cert = world.svid_der(ORDERS);
    let verified = world
        .verifier(BILLING_SVC)
        .verify(&token, Some(&cert), now)
        .unwrap();
    assert!(!verified.cert_bound);
    assert_eq!(verified.scopes, vec!["invoices:read"]);
}

#[test]
fn verifier_requiring_binding_refuses_unbound_tokens() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let token = unbound_token(&world, now);
    let verifier =
        TokenVerifier::new(ISSUER, BILLING_SVC, DEFAULT_LEEWAY).with_required_binding(true);
    verifier.set_jwks(&world.issuer.jwks()).unwrap();
    assert_eq!(
        verifier.verify(&token, None, now),
        Err(TokenRejection::MissingCertificateBinding)
    );
    let (bound, cert, now) = bound_token(&world);
    assert!(
        verifier
            .verify(&bound, Some(&cert), now)
            .unwrap()
            .cert_bound
    );
}

#[test]
fn garbage_is_malformed_and_rejections_never_echo_the_token() {
    let world = World::new();
    let verifier = world.verifier(BILLING_SVC);
    let now = OffsetDateTime::now_utc();
    for garbage in ["", "abc", "a.b.c", "....", &"x".repeat(10_000)] {
        let rejection = verifier.verify(garbage, None, now).unwrap_err();
        assert!(
            matches!(rejection, TokenRejection::Malformed(_)),
            "{garbage:.20}: {rejection:?}"
        );
    }
    let (token, _cert, now) = bound_token(&world);
    for rejection in [
        verifier.verify(&token, None, now).unwrap_err(),
        world
            .verifier("customers")
            .verify(&token, None, now)
            .unwrap_err(),
    ] {
        let text = rejection.to_string();
        for part in token.split('.') {
            assert!(!text.contains(part), "{text}");
        }
    }
}

#[test]
fn jwks_without_usable_keys_is_refused_and_the_old_set_stays() {
    let world = World::new();
    let (token, cert, now) = bound_token(&world);
    let verifier = world.verifier(BILLING_SVC);
    assert!(verifier.set_jwks(&json!({"keys": []})).is_err());
    assert!(verifier
        .set_jwks(&json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}))
        .is_err());
    assert!(verifier.set_jwks(&json!({"nokeys": true})).is_err());
    assert!(verifier.verify(&token, Some(&cert), now).is_ok());
}
