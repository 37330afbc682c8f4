//! CA rollover across a running mesh: two sidecars joined under root A follow the
//! control plane through prepare (A+B trusted), activate (B signs; a B sidecar and an A
//! sidecar keep calling each other both ways) and retire (B only; an SVID of A refused).
//! Real TLS on 127.0.0.1, real SQLite audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_audit::{AuditQuery, AuditWriter, SinkConfig};
use palisade_config::Config;
use palisade_control::{ControlError, ControlServer, ControlServerConfig, ControlState};
use palisade_identity::tls::SvidServerVerifier;
use palisade_identity::{write_svid_dir, CertificateAuthority, SpiffeId, TrustBundle, BUNDLE_FILE};
use palisade_proxy::{RunningSidecar, Sidecar};
use palisade_testkit::{
    client_config, free_addr, plain_request, spawn_echo_app, tls_request, wait_until, TestPki,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};

const OPEN: &str = "permit(principal, action, resource);";
const WAIT: Duration = Duration::from_secs(15);

/// Whether the SVID a sidecar serves now chains to the root in `root_pem`.
fn serves_svid_of(sidecar: &RunningSidecar, root_pem: &str, id: &SpiffeId) -> bool {
    let current = sidecar.identity.store.current();
    let verifier =
        SvidServerVerifier::with_bundle(TrustBundle::from_pem(root_pem).unwrap(), id.clone());
    verifier
        .verify_server_cert(
            &current.certified.cert[0],
            &[],
            &ServerName::try_from("palisade.invalid").unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
}

/// `from`'s app calls `to` through both sidecars (outbound listener → mTLS → inbound).
async fn call(from: &RunningSidecar, to: &str) -> u16 {
    let response = plain_request(from.outbound_addr.unwrap(), to, "GET", "/items/1")
        .await
        .unwrap();
    if response.status == 200 {
        assert_eq!(response.json()["service"], to);
    }
    response.status
}

/// A fresh mTLS handshake from `from_dir` (its SVID and bundle) to `to`'s inbound.
async fn handshake(from_dir: &Path, to: &RunningSidecar, to_id: &SpiffeId) -> Result<u16, String> {
    let config = client_config(Some(from_dir), &from_dir.join(BUNDLE_FILE), to_id);
    tls_request(to.inbound_addr, config, "GET", "/items/1")
        .await
        .map(|r| r.status)
}

fn root_pem(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sidecars_follow_a_ca_rollover_and_keep_calling_each_other() {
    let pki = TestPki::new("palisade.test");
    let state_dir = pki.state_dir();
    let root = pki.dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::write(root.join("policies/open.cedar"), OPEN).unwrap();
    let writer = AuditWriter::start(
        SinkConfig::Sqlite {
            path: root.join("audit.db"),
        },
        1024,
    )
    .unwrap();
    let control = ControlServer::start(ControlServerConfig::new(
        state_dir.clone(),
        "127.0.0.1:0".parse().unwrap(),
        "palisade.test",
        writer.handle(),
    ))
    .await
    .unwrap();
    let billing_app = spawn_echo_app("127.0.0.1:0".parse().unwrap(), "billing").await;
    let orders_app = spawn_echo_app("127.0.0.1:0".parse().unwrap(), "orders").await;
    let text = format!(
        r#"trust_domain = "palisade.test"

[[service]]
name = "billing"
spiffe_id = "spiffe://palisade.test/ns/test/sa/billing"
inbound = "{}"
upstream = "{billing_app}"
outbound = "{}"

[[service]]
name = "orders"
spiffe_id = "spiffe://palisade.test/ns/test/sa/orders"
inbound = "{}"
upstream = "{orders_app}"
outbound = "{}"

[control]
url = "https://{}"
revocation_poll = "100ms"
"#,
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
        control.addr,
    );
    std::fs::write(root.join("palisade.toml"), text).unwrap();
    let config = Config::load(&root.join("palisade.toml")).unwrap();
    let (billing_id, orders_id) = (pki.id("billing"), pki.id("orders"));
    let admin = || ControlState::open(&state_dir).unwrap();
    let mut sidecars = Vec::new();
    for (name, id) in [("billing", &billing_id), ("orders", &orders_id)] {
        let token = admin()
            .create_join_token(id, Duration::from_secs(60))
            .unwrap();
        sidecars.push(
            Sidecar::start_with(&config, name, writer.handle(), Some(&token))
                .await
                .unwrap(),
        );
    }
    let (orders, billing) = (sidecars.pop().unwrap(), sidecars.pop().unwrap());
    let svid_dir = |name: &str| -> PathBuf { config.service(name).unwrap().svid_dir.clone() };
    let settings = config.control.clone().unwrap();
    let client = palisade_proxy::control::client(&settings, "palisade.test").unwrap();
    let old_root = root_pem(&CertificateAuthority::dir(&state_dir).join("ca.pem"));
    assert!(serves_svid_of(&billing, &old_root, &billing_id));
    assert_eq!(call(&billing, "orders").await, 200);
    assert_eq!(call(&orders, "billing").await, 200);

    // 1. Prepare: both sidecars trust A and B within a revocation poll; nothing changes
    //    for calls.
    let new = admin().prepare_root().unwrap();
    let new_root = root_pem(&new.cert_path);
    for sidecar in [&billing, &orders] {
        let bundle = sidecar.identity.bundle();
        wait_until("the sidecar to trust the prepared root", WAIT, || {
            bundle.len() == 2
        })
        .await;
    }
    for name in ["billing", "orders"] {
        let on_disk = std::fs::read_to_string(svid_dir(name).join(BUNDLE_FILE)).unwrap();
        assert_eq!(on_disk.matches("BEGIN CERTIFICATE").count(), 2, "{name}");
    }

    // 2. Activate: billing renews and gets an SVID of B; orders still holds one of A.
    admin().activate_root().unwrap();
    palisade_proxy::control::renew_once(&client, &billing.identity, &svid_dir("billing"))
        .await
        .unwrap();
    assert!(serves_svid_of(&billing, &new_root, &billing_id));
    assert!(serves_svid_of(&orders, &old_root, &orders_id));
    // Calls work both ways: through the sidecars, and over fresh handshakes in which
    // each side checks the other's SVID from the other root.
    assert_eq!(call(&billing, "orders").await, 200);
    assert_eq!(call(&orders, "billing").await, 200);
    assert_eq!(
        handshake(&svid_dir("billing"), &orders, &orders_id).await,
        Ok(200)
    );
    assert_eq!(
        handshake(&svid_dir("orders"), &billing, &billing_id).await,
        Ok(200)
    );

    // Retiring A now would cut orders off: refused, naming it.
    match admin().retire_root(false) {
        Err(ControlError::RootInUse { spiffe_ids, .. }) => {
            assert!(spiffe_ids.contains(orders_id.as_str()), "{spiffe_ids}")
        }
        other => panic!("expected RootInUse, got {other:?}"),
    }

    // 3. Orders renews too, then A is retired: both sidecars trust B only.
    palisade_proxy::control::renew_once(&client, &orders.identity, &svid_dir("orders"))
        .await
        .unwrap();
    assert!(serves_svid_of(&orders, &new_root, &orders_id));
    admin().retire_root(false).unwrap();
    for sidecar in [&billing, &orders] {
        let bundle = sidecar.identity.bundle();
        wait_until("the sidecar to drop the retired root", WAIT, || {
            bundle.len() == 1
        })
        .await;
    }
    // The sidecars' own control-plane clients reach the control plane, whose certificate
    // now comes from B (B is all they trust): a revocation reaches both.
    admin()
        .revoke_spiffe_id(&pki.id("decommissioned"), "rollover test")
        .unwrap();
    for sidecar in [&billing, &orders] {
        let revocations = sidecar.identity.revocations.clone();
        wait_until("the sidecar to poll the control plane", WAIT, || {
            revocations.version() > 0
        })
        .await;
    }
    assert_eq!(call(&billing, "orders").await, 200);
    assert_eq!(call(&orders, "billing").await, 200);
    assert_eq!(
        handshake(&svid_dir("billing"), &orders, &orders_id).await,
        Ok(200)
    );
    assert_eq!(
        handshake(&svid_dir("orders"), &billing, &billing_id).await,
        Ok(200)
    );

    // A certificate of A is refused, as signed by a retired root.
    let leftover = pki.ca.issue(&orders_id, Duration::from_secs(600)).unwrap();
    let leftover_dir = root.join("leftover");
    write_svid_dir(&leftover_dir, &leftover, &new_root).unwrap();
    assert!(handshake(&leftover_dir, &billing, &billing_id)
        .await
        .is_err());

    billing.shutdown().await;
    orders.shutdown().await;
    control.shutdown().await;
    let db = root.join("audit.db");
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap()
        .unwrap();
    let records = palisade_audit::query(
        &db,
        &AuditQuery {
            service: Some("billing".into()),
            ..AuditQuery::default()
        },
    )
    .unwrap();
    let refused: Vec<_> = records.iter().filter_map(|r| r.code.as_deref()).collect();
    assert_eq!(refused, ["palisade.identity.retired_root"], "{records:?}");
}
