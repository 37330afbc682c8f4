//! CA rollover against a running control plane (real TLS on 127.0.0.1): each step made
//! through another `ControlState`, as the CLI does, is followed without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use palisade_audit::Decision;
use palisade_control::{ControlClient, ControlError};
use palisade_identity::{
    fingerprint, write_svid_dir, CertificateAuthority, IssuedSvid, RootRole, SvidMaterial,
};
use palisade_testkit::{client_config, tls_request_with};
use support::{Harness, TRUST_DOMAIN};
use x509_parser::prelude::{FromDer, X509Certificate};

fn ders(pem: &str) -> Vec<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.unwrap().as_ref().to_vec())
        .collect()
}

fn fingerprints(pem: &str) -> Vec<String> {
    ders(pem).iter().map(|d| fingerprint(d)).collect()
}

/// The fingerprint of the root (of `bundle_pem`) whose key signed `cert_pem`'s first cert.
fn signer(cert_pem: &str, bundle_pem: &str) -> String {
    let leaf = ders(cert_pem).remove(0);
    let (_, leaf) = X509Certificate::from_der(&leaf).unwrap();
    ders(bundle_pem)
        .into_iter()
        .find(|der| {
            let (_, root) = X509Certificate::from_der(der).unwrap();
            leaf.verify_signature(Some(root.public_key())).is_ok()
        })
        .map(|der| fingerprint(&der))
        .expect("signed by no root of the bundle")
}

/// Writes an SVID directory whose bundle is `bundle_pem` and loads it back.
fn install(
    h: &Harness,
    label: &str,
    svid: &IssuedSvid,
    bundle_pem: &str,
) -> (PathBuf, SvidMaterial) {
    let dir = h.pki.dir.path().join("workloads").join(label);
    write_svid_dir(&dir, svid, bundle_pem).unwrap();
    (dir.clone(), SvidMaterial::load_dir(&dir).unwrap())
}

/// Waits until a client trusting only the root in `root_pem_file` reaches the control
/// plane: the server then presents a certificate of that root.
async fn wait_for_server_cert_from(h: &Harness, root_pem_file: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let config = client_config(None, root_pem_file, &h.control_id());
        let answer = tls_request_with(h.addr(), config, "GET", "/v1/bundle", &[], "").await;
        if answer.is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the control plane never presented a certificate of the new root"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_control_plane_follows_prepare_activate_and_retire_without_a_restart() {
    let h = Harness::start().await;
    let old = h.pki.ca.fingerprint().to_owned();
    let (billing, orders) = (h.id("billing"), h.id("orders"));
    let billing_svid = h.client.join(&h.token(&billing), &billing).await.unwrap();
    let orders_svid = h.client.join(&h.token(&orders), &orders).await.unwrap();
    let (billing_dir, _) = install(&h, "billing", &billing_svid, h.pki.ca.bundle_pem());
    let (_, orders_material) = install(&h, "orders", &orders_svid, h.pki.ca.bundle_pem());

    // Prepare: the next request already serves both roots; the old one still signs.
    let new = h.state().prepare_root().unwrap().fingerprint;
    let served = h.client.bundle().await.unwrap();
    assert_eq!(fingerprints(&served), [old.clone(), new.clone()]);
    let renewed = h
        .client
        .renew(&SvidMaterial::load_dir(&billing_dir).unwrap())
        .await
        .unwrap();
    assert_eq!(signer(&renewed.cert_pem, &served), old);
    // The renewal answer's bundle is the client's now.
    assert_eq!(h.client.trust_bundle().len(), 2);
    let (billing_dir, _) = install(&h, "billing", &renewed, &served);

    // A client that fetched the bundle during the overlap keeps trusting the control
    // plane after activation; one that never did loses it.
    let followed = ControlClient::new(
        &format!("https://{}", h.addr()),
        h.pki.ca.bundle_pem(),
        TRUST_DOMAIN,
    )
    .unwrap();
    let fetched = followed.bundle_since(None).await.unwrap().unwrap();
    assert!(fetched.etag.is_some());
    followed.install_bundle(&fetched.pem).unwrap();
    assert!(followed
        .bundle_since(fetched.etag.as_deref())
        .await
        .unwrap()
        .is_none());
    let stale = ControlClient::new(
        &format!("https://{}", h.addr()),
        h.pki.ca.bundle_pem(),
        TRUST_DOMAIN,
    )
    .unwrap();

    // Activate: renewals are signed by the new root, the old one stays in the bundle, and
    // the server re-issues its own certificate from the new root.
    let activation = h.state().activate_root().unwrap();
    assert_eq!(activation.active.fingerprint, new);
    let renewed = h
        .client
        .renew(&SvidMaterial::load_dir(&billing_dir).unwrap())
        .await
        .unwrap();
    let served = h.client.bundle().await.unwrap();
    assert_eq!(fingerprints(&served), [new.clone(), old.clone()]);
    assert_eq!(signer(&renewed.cert_pem, &served), new);
    let new_only = h.pki.dir.path().join("new-root.pem");
    std::fs::copy(&activation.active.cert_path, &new_only).unwrap();
    wait_for_server_cert_from(&h, &new_only).await;
    followed.revocations(None).await.unwrap();
    match stale.revocations(None).await {
        Err(ControlError::Handshake { code, .. }) => {
            assert_eq!(code, "palisade.identity.untrusted")
        }
        other => panic!("a client trusting only the old root should fail, got {other:?}"),
    }

    // Orders still holds an SVID of the old root: retiring is refused and says who.
    let status = h.state().ca_status().unwrap();
    let roles: Vec<_> = status.roots.iter().map(|r| r.role).collect();
    assert_eq!(roles, [RootRole::Previous, RootRole::Active]);
    let usage = status.previous_usage.unwrap();
    assert_eq!(usage.svids, 1);
    assert_eq!(usage.spiffe_ids, [orders.to_string()]);
    match h.state().retire_root(false) {
        Err(ControlError::RootInUse {
            svids, spiffe_ids, ..
        }) => {
            assert_eq!(svids, 1);
            assert!(spiffe_ids.contains(orders.as_str()));
        }
        other => panic!("expected RootInUse, got {other:?}"),
    }
    assert_eq!(fingerprints(&h.client.bundle().await.unwrap()).len(), 2);

    // Once orders renews, nothing depends on the old root: retire.
    h.client.renew(&orders_material).await.unwrap();
    let retired = h.state().retire_root(false).unwrap();
    assert_eq!(retired.root.fingerprint, old);
    assert_eq!(retired.usage.svids, 0);
    assert_eq!(fingerprints(&h.client.bundle().await.unwrap()), [new]);

    // An SVID of the retired root is refused in the handshake, as such (the bundle
    // request above returned only once the server's handshake trust followed).
    let leftover = h.pki.ca.issue(&orders, Duration::from_secs(600)).unwrap();
    let (leftover_dir, _) = install(&h, "leftover", &leftover, &served);
    h.raw(Some(&leftover_dir), "GET", "/v1/policies", &[], "")
        .await
        .unwrap_err();

    let records = h.finish().await;
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.decision == Decision::Deny && r.path.is_none())
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r.code.as_deref() == Some("palisade.identity.retired_root")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_retirement_cuts_off_the_workloads_still_on_the_old_root() {
    let h = Harness::start().await;
    let orders = h.id("orders");
    let svid = h.client.join(&h.token(&orders), &orders).await.unwrap();
    h.state().prepare_root().unwrap();
    let activation = h.state().activate_root().unwrap();
    let bundle = CertificateAuthority::load(&h.pki.state_dir())
        .unwrap()
        .bundle_pem()
        .to_owned();
    let (_, material) = install(&h, "orders", &svid, &bundle);
    h.client.install_bundle(&bundle).unwrap();

    let retired = h.state().retire_root(true).unwrap();
    assert_eq!(retired.root.fingerprint, activation.previous.fingerprint);
    assert_eq!(retired.usage.svids, 1);
    // Orders can no longer renew: its SVID chains to a retired root (the audit record
    // below says so; the client only sees the handshake fail).
    h.client.bundle().await.unwrap();
    h.client.renew(&material).await.unwrap_err();
    let records = h.finish().await;
    assert!(records
        .iter()
        .any(|r| r.code.as_deref() == Some("palisade.identity.retired_root")));
}
