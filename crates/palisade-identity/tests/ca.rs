//! The CA and the SVIDs it issues, checked against the X.509-SVID spec with x509-parser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use palisade_identity::{
    read_certs, CertificateAuthority, IdentityError, SpiffeId, SvidMaterial, DEFAULT_SVID_TTL,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

fn id(text: &str) -> SpiffeId {
    text.parse().unwrap()
}

#[test]
fn issues_svids_that_follow_the_x509_svid_spec() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let svid = ca
        .issue(
            &id("spiffe://example.org/ns/prod/sa/billing"),
            DEFAULT_SVID_TTL,
        )
        .unwrap();
    let out = dir.path().join("billing");
    palisade_identity::write_svid_dir(&out, &svid, ca.bundle_pem()).unwrap();

    let der = read_certs(&out.join("svid.pem")).unwrap().remove(0);
    let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
    let mut uris = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(uri) => uris.push(uri.to_string()),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => assert!(!bc.ca),
            ParsedExtension::KeyUsage(ku) => {
                assert!(ku.digital_signature());
                assert!(!ku.key_cert_sign() && !ku.crl_sign());
            }
            ParsedExtension::ExtendedKeyUsage(eku) => assert!(eku.server_auth && eku.client_auth),
            _ => {}
        }
    }
    assert_eq!(uris, vec!["spiffe://example.org/ns/prod/sa/billing"]);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    // One hour, plus the minute of backdating for clock skew.
    assert_eq!(lifetime, 3600 + 60);

    let material = SvidMaterial::load_dir(&out).unwrap();
    assert_eq!(
        material.spiffe_id.as_str(),
        "spiffe://example.org/ns/prod/sa/billing"
    );
}

#[cfg(unix)]
#[test]
fn writes_private_keys_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let key_mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode(&dir.path().join("ca/ca.key")), 0o600);
    let svid = ca
        .issue(&id("spiffe://example.org/w"), Duration::from_secs(60))
        .unwrap();
    palisade_identity::write_svid_dir(&dir.path().join("w"), &svid, ca.bundle_pem()).unwrap();
    assert_eq!(key_mode(&dir.path().join("w/svid.key")), 0o600);
}

#[test]
fn refuses_to_overwrite_a_ca_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let err = CertificateAuthority::init(dir.path(), "example.org", false).unwrap_err();
    assert!(matches!(err, IdentityError::CaExists { .. }), "{err}");
    let replaced = CertificateAuthority::init(dir.path(), "example.org", true).unwrap();
    assert_ne!(first.bundle_pem(), replaced.bundle_pem());
}

#[test]
fn a_reloaded_ca_issues_svids_that_chain_to_its_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let created = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let loaded = CertificateAuthority::load(dir.path()).unwrap();
    assert_eq!(loaded.trust_domain(), "example.org");
    assert_eq!(loaded.bundle_pem(), created.bundle_pem());
    let svid = loaded
        .issue(&id("spiffe://example.org/w"), DEFAULT_SVID_TTL)
        .unwrap();
    // Verify the chain the way a peer would.
    let roots = {
        let mut store = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut created.bundle_pem().as_bytes()) {
            store.add(c.unwrap()).unwrap();
        }
        std::sync::Arc::new(store)
    };
    let leaf = rustls_pemfile::certs(&mut svid.cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots,
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_client_cert(&leaf, &[], rustls::pki_types::UnixTime::now())
        .unwrap();
}

#[test]
fn refuses_ids_outside_the_trust_domain_and_bare_trust_domain_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let err = ca
        .issue(&id("spiffe://other.org/w"), DEFAULT_SVID_TTL)
        .unwrap_err();
    assert!(
        err.to_string().contains("outside this CA's trust domain"),
        "{err}"
    );
    let err = ca
        .issue(&id("spiffe://example.org"), DEFAULT_SVID_TTL)
        .unwrap_err();
    assert!(matches!(err, IdentityError::NoWorkloadPath { .. }));
}

#[test]
fn refuses_an_invalid_trust_domain_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let err = CertificateAuthority::init(dir.path(), "Example.org", false).unwrap_err();
    assert!(err.to_string().contains("invalid character 'E'"), "{err}");
}

#[test]
fn signs_a_workload_public_key_without_seeing_its_private_key() {
    use rcgen::PublicKeyData;
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let workload_key = rcgen::KeyPair::generate().unwrap();
    let spki = workload_key.subject_public_key_info();
    let billing = id("spiffe://example.org/ns/prod/sa/billing");
    let signed = ca
        .sign_public_key(&billing, &spki, DEFAULT_SVID_TTL)
        .unwrap();
    assert!(signed.not_before < signed.not_after);

    let der = rustls_pemfile::certs(&mut signed.cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
    assert_eq!(cert.public_key().raw, spki.as_slice());
    assert_eq!(palisade_identity::svid_identity(&der).unwrap(), billing);

    let foreign = id("spiffe://other.org/ns/prod/sa/billing");
    assert!(matches!(
        ca.sign_public_key(&foreign, &spki, DEFAULT_SVID_TTL),
        Err(IdentityError::ForeignTrustDomain { .. })
    ));
    assert!(matches!(
        ca.sign_public_key(&billing, b"not a key", DEFAULT_SVID_TTL),
        Err(IdentityError::UnsupportedPublicKey(_))
    ));
}
