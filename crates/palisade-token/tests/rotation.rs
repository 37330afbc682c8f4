//! Signing-key rotation: old tokens keep verifying while their key is published, and a
//! retired key leaves the JWKS once every token it signed has expired.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use palisade_token::{TokenIssuer, TokenRejection, DEFAULT_TOKEN_TTL};
use support::*;
use time::OffsetDateTime;

fn kids(world: &World) -> Vec<String> {
    world.issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    decode_parts(token).0["kid"].as_str().unwrap().to_owned()
}

#[test]
fn jwks_publishes_es256_signing_keys() {
    let world = World::new();
    let jwks = world.issuer.jwks();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["x"].as_str().unwrap().len(), 43);
    assert_eq!(key["y"].as_str().unwrap().len(), 43);
    assert!(key.get("d").is_none(), "never publish the private key");
}

#[test]
fn rotation_is_not_due_before_the_rotation_period() {
    let world = World::new();
    let before = kids(&world);
    let now = OffsetDateTime::now_utc();
    assert!(!world
        .issuer
        .rotate_if_due(now + ROTATION - Duration::from_secs(60))
        .unwrap());
    assert_eq!(kids(&world), before);
}

#[test]
fn token_signed_by_the_old_key_verifies_after_rotation_until_the_old_key_leaves_the_jwks() {
    let world = World::new();
    let created = OffsetDateTime::now_utc();
    let cert = world.svid_der(ORDERS);
    let ttl = DEFAULT_TOKEN_TTL;

    // A token issued just before rotation, by the first key.
    let issued = created + ROTATION - Duration::from_secs(60);
    let old_token =
        access_token(&world.tls_request(&[("audience", BILLING_SVC)], Some(&cert), issued));
    let old_kid = kid_of(&old_token);

    let rotated_at = created + ROTATION + Duration::from_secs(1);
    assert!(world.issuer.rotate_if_due(rotated_at).unwrap());
    let after = kids(&world);
    assert_eq!(after.len(), 2);
    assert_ne!(after[0], old_kid, "the new active key is listed first");
    assert_eq!(after[1], old_kid);

    // New tokens come from the new key; the old token still verifies with the new JWKS.
    let new_token =
        access_token(&world.tls_request(&[("audience", BILLING_SVC)], Some(&cert), rotated_at));
    assert_eq!(kid_of(&new_token), after[0]);
    let verifier = world.verifier(BILLING_SVC);
    assert!(verifier.verify(&old_token, Some(&cert), rotated_at).is_ok());
    assert!(verifier.verify(&new_token, Some(&cert), rotated_at).is_ok());

    // Until retired_at + ttl the old key stays; no second rotation either.
    assert!(!world
        .issuer
        .rotate_if_due(rotated_at + ttl - Duration::from_secs(1))
        .unwrap());
    assert_eq!(kids(&world).len(), 2);

    // Then it is gone from the JWKS, and from disk.
    let gone_at = rotated_at + ttl;
    assert!(!world.issuer.rotate_if_due(gone_at).unwrap());
    assert_eq!(kids(&world), vec![after[0].clone()]);
    let key_files = std::fs::read_dir(world.dir.path().join("tokens").join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&old_kid))
        .count();
    assert_eq!(key_files, 0);

    // A verifier refreshed from the new JWKS no longer knows the old key; the new
    // token still verifies.
    let refreshed = world.verifier(BILLING_SVC);
    assert_eq!(
        refreshed.verify(&old_token, Some(&cert), gone_at),
        Err(TokenRejection::UnknownKey { kid: old_kid })
    );
    assert!(refreshed.verify(&new_token, Some(&cert), gone_at).is_ok());
}

#[test]
fn keys_survive_a_restart_of_the_issuer() {
    let world = World::new();
    let now = OffsetDateTime::now_utc();
    let cert = world.svid_der(ORDERS);
    let token = access_token(&world.tls_request(&[("audience", BILLING_SVC)], Some(&cert), now));
    assert!(world
        .issuer
        .rotate_if_due(now + ROTATION + Duration::from_secs(1))
        .unwrap());
    let before = kids(&world);

    let reopened = TokenIssuer::open(
        &world.dir.path().join("tokens"),
        ISSUER,
        DEFAULT_TOKEN_TTL,
        ROTATION,
    )
    .unwrap();
    let reopened_kids: Vec<String> = reopened.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reopened_kids, before);
    let verifier =
        palisade_token::TokenVerifier::new(ISSUER, BILLING_SVC, palisade_token::DEFAULT_LEEWAY);
    verifier.set_jwks(&reopened.jwks()).unwrap();
    assert!(verifier.verify(&token, Some(&cert), now).is_ok());
    // The reopened issuer signs with the rotated key.
    let response = reopened.token_endpoint(
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ORDERS),
            ("audience", BILLING_SVC),
        ]),
        Some(&cert),
        &world.clients,
        now,
    );
    assert_eq!(kid_of(&access_token(&response)), before[0]);
}
