//! CA rollover on disk: prepare adds a root to the bundle without signing, activate
//! switches the signer and keeps the old root trusted, retire drops it and keeps its files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use palisade_identity::{
    fingerprint, read_certs, CertificateAuthority, IdentityError, RootRole, SpiffeId, CA_CERT_FILE,
    CA_KEY_FILE, RETIRED_DIR, ROOTS_FILE,
};
use x509_parser::prelude::{FromDer, X509Certificate};

fn id() -> SpiffeId {
    "spiffe://example.org/ns/test/sa/billing".parse().unwrap()
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.unwrap().as_ref().to_vec())
        .collect()
}

/// The fingerprint of the root whose key signed the SVID `svid_pem`, among `roots`.
fn signer(svid_pem: &str, roots: &[Vec<u8>]) -> String {
    let leaf = ders(svid_pem).remove(0);
    let (_, leaf) = X509Certificate::from_der(&leaf).unwrap();
    let root = roots
        .iter()
        .find(|der| {
            let (_, root) = X509Certificate::from_der(der).unwrap();
            leaf.verify_signature(Some(root.public_key())).is_ok()
        })
        .expect("signed by no root of the bundle");
    fingerprint(root)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn prepare_adds_a_root_to_the_bundle_that_signs_nothing_yet() {
    let dir = tempfile::tempdir().unwrap();
    let old = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();

    let next = CertificateAuthority::prepare_root(dir.path()).unwrap();
    assert_eq!(next.role, RootRole::Next);
    assert_ne!(next.fingerprint, old.fingerprint());
    assert!(next
        .subject
        .starts_with("Palisade root CA for example.org ("));

    let ca = CertificateAuthority::load(dir.path()).unwrap();
    assert_eq!(
        ca.fingerprint(),
        old.fingerprint(),
        "the old root still signs"
    );
    let bundle = ders(ca.bundle_pem());
    assert_eq!(bundle.len(), 2);
    assert_eq!(fingerprint(&bundle[0]), old.fingerprint(), "active first");
    assert_eq!(fingerprint(&bundle[1]), next.fingerprint);
    let svid = ca.issue(&id(), Duration::from_secs(60)).unwrap();
    assert_eq!(signer(&svid.cert_pem, &bundle), old.fingerprint());

    // ca.pem is the bundle now; the key moved next to the new root's, never readable by others.
    let ca_dir = CertificateAuthority::dir(dir.path());
    assert_eq!(read_certs(&ca_dir.join(CA_CERT_FILE)).unwrap().len(), 2);
    assert!(!ca_dir.join(CA_KEY_FILE).exists());
    let roles: Vec<_> = CertificateAuthority::roots(dir.path())
        .unwrap()
        .into_iter()
        .map(|r| (r.role, r.fingerprint))
        .collect();
    assert_eq!(
        roles,
        [
            (RootRole::Active, old.fingerprint().to_owned()),
            (RootRole::Next, next.fingerprint.clone())
        ]
    );
    #[cfg(unix)]
    for fp in [old.fingerprint(), &next.fingerprint] {
        let key = ca_dir.join(format!("root-{}.key", &fp[..16]));
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
}

#[test]
fn activate_switches_the_signer_and_keeps_the_old_root_in_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let old = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    let next = CertificateAuthority::prepare_root(dir.path()).unwrap();

    let activation = CertificateAuthority::activate_root(dir.path()).unwrap();
    assert_eq!(activation.active.fingerprint, next.fingerprint);
    assert_eq!(activation.active.role, RootRole::Active);
    assert!(activation.active.activated.is_some());
    assert_eq!(activation.previous.fingerprint, old.fingerprint());
    assert_eq!(activation.previous.role, RootRole::Previous);

    let ca = CertificateAuthority::load(dir.path()).unwrap();
    assert_eq!(ca.fingerprint(), next.fingerprint);
    assert_eq!(ca.trust_domain(), "example.org");
    let bundle = ders(ca.bundle_pem());
    assert_eq!(
        bundle.iter().map(|d| fingerprint(d)).collect::<Vec<_>>(),
        [next.fingerprint.clone(), old.fingerprint().to_owned()]
    );
    let svid = ca.issue(&id(), Duration::from_secs(60)).unwrap();
    assert_eq!(signer(&svid.cert_pem, &bundle), next.fingerprint);
    assert_eq!(ders(ca.root_pem()).len(), 1);
}

#[test]
fn retire_drops_the_old_root_from_the_bundle_and_keeps_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let old = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    CertificateAuthority::prepare_root(dir.path()).unwrap();
    let activation = CertificateAuthority::activate_root(dir.path()).unwrap();

    let retired = CertificateAuthority::retire_root(dir.path()).unwrap();
    assert_eq!(retired.fingerprint, old.fingerprint());
    assert_eq!(retired.role, RootRole::Retired);
    assert!(retired.retired.is_some());

    let ca = CertificateAuthority::load(dir.path()).unwrap();
    let bundle = ders(ca.bundle_pem());
    assert_eq!(bundle.len(), 1);
    assert_eq!(fingerprint(&bundle[0]), activation.active.fingerprint);
    assert_eq!(fingerprint(&ders(ca.retired_pem())[0]), old.fingerprint());

    let archive = CertificateAuthority::dir(dir.path()).join(RETIRED_DIR);
    let stem = format!("root-{}", &old.fingerprint()[..16]);
    assert_eq!(retired.cert_path, archive.join(format!("{stem}.pem")));
    let kept = read_certs(&archive.join(format!("{stem}.pem"))).unwrap();
    assert_eq!(fingerprint(kept[0].as_ref()), old.fingerprint());
    assert!(archive.join(format!("{stem}.key")).is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&archive.join(format!("{stem}.key"))), 0o600);
        assert_eq!(mode(&archive), 0o700);
    }
    let roles: Vec<_> = CertificateAuthority::roots(dir.path())
        .unwrap()
        .into_iter()
        .map(|r| r.role)
        .collect();
    assert_eq!(roles, [RootRole::Retired, RootRole::Active]);
}

#[test]
fn steps_out_of_order_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    assert!(matches!(
        CertificateAuthority::activate_root(dir.path()),
        Err(IdentityError::NoNextRoot)
    ));
    assert!(matches!(
        CertificateAuthority::retire_root(dir.path()),
        Err(IdentityError::NoPreviousRoot)
    ));
    let next = CertificateAuthority::prepare_root(dir.path()).unwrap();
    match CertificateAuthority::prepare_root(dir.path()) {
        Err(IdentityError::NextRootExists { fingerprint }) => {
            assert_eq!(fingerprint, next.fingerprint)
        }
        other => panic!("expected NextRootExists, got {other:?}"),
    }
    assert!(matches!(
        CertificateAuthority::retire_root(dir.path()),
        Err(IdentityError::NoPreviousRoot)
    ));
    let activation = CertificateAuthority::activate_root(dir.path()).unwrap();
    match CertificateAuthority::prepare_root(dir.path()) {
        Err(IdentityError::PreviousRootInBundle { fingerprint }) => {
            assert_eq!(fingerprint, activation.previous.fingerprint)
        }
        other => panic!("expected PreviousRootInBundle, got {other:?}"),
    }
    assert_eq!(CertificateAuthority::roots(dir.path()).unwrap().len(), 2);
}

#[test]
fn a_second_rollover_works_and_init_force_archives_every_root() {
    let dir = tempfile::tempdir().unwrap();
    let first = CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    for _ in 0..2 {
        CertificateAuthority::prepare_root(dir.path()).unwrap();
        CertificateAuthority::activate_root(dir.path()).unwrap();
        CertificateAuthority::retire_root(dir.path()).unwrap();
    }
    let roots = CertificateAuthority::roots(dir.path()).unwrap();
    assert_eq!(roots.len(), 3);
    assert_eq!(roots[0].fingerprint, first.fingerprint());
    let active = roots[2].fingerprint.clone();
    assert_eq!(
        CertificateAuthority::load(dir.path())
            .unwrap()
            .fingerprint(),
        active
    );

    let err = CertificateAuthority::init(dir.path(), "example.org", false).unwrap_err();
    assert!(matches!(err, IdentityError::CaExists { .. }), "{err}");
    let replaced = CertificateAuthority::init(dir.path(), "example.org", true).unwrap();
    let ca_dir = CertificateAuthority::dir(dir.path());
    assert!(!ca_dir.join(ROOTS_FILE).exists());
    let archive = ca_dir.join(RETIRED_DIR);
    for fp in [first.fingerprint(), active.as_str()] {
        assert!(archive.join(format!("root-{}.key", &fp[..16])).is_file());
    }
    let loaded = CertificateAuthority::load(dir.path()).unwrap();
    assert_eq!(loaded.fingerprint(), replaced.fingerprint());
    assert_eq!(ders(loaded.bundle_pem()).len(), 1);
}

#[test]
fn a_broken_roots_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::init(dir.path(), "example.org", false).unwrap();
    CertificateAuthority::prepare_root(dir.path()).unwrap();
    let manifest = CertificateAuthority::dir(dir.path()).join(ROOTS_FILE);
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"next\"", "\"active\"")).unwrap();
    let err = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(matches!(err, IdentityError::BadRootsFile { .. }), "{err}");
    assert!(err.to_string().contains("roots.json"), "{err}");
}
