//! Sidecars with a control plane: join with a one-time token, renew the SVID at half its
//! lifetime under traffic without a failed request, and refuse a revoked caller.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use palisade_audit::{AuditQuery, AuditWriter, SinkConfig};
use palisade_config::Config;
use palisade_control::{ControlServer, ControlServerConfig, ControlState, RunningControl};
use palisade_proxy::{RunningSidecar, Sidecar};
use palisade_testkit::{
    client_config, free_addr, spawn_echo_app, tls_request, wait_until, TestPki,
};

const OPEN: &str = r#"permit(principal, action, resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/billing");"#;

struct Setup {
    pki: TestPki,
    control: Option<RunningControl>,
    billing: RunningSidecar,
    writer: AuditWriter,
}

/// A control plane for `pki` on `listen`, issuing `ttl` SVIDs and serving `policies`.
async fn control_plane(
    pki: &TestPki,
    listen: std::net::SocketAddr,
    ttl: Duration,
    policies: Option<std::path::PathBuf>,
    audit: palisade_audit::AuditHandle,
) -> RunningControl {
    let mut config = ControlServerConfig::new(pki.state_dir(), listen, "palisade.test", audit);
    config.svid_ttl = ttl;
    config.policy_dir = policies;
    ControlServer::start(config).await.unwrap()
}

/// A control plane issuing `ttl` SVIDs, and billing's sidecar joined with a token.
async fn setup(ttl: Duration) -> Setup {
    let pki = TestPki::new("palisade.test");
    pki.svid_dir("orders", &pki.id("orders"));
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
    let control = control_plane(
        &pki,
        "127.0.0.1:0".parse().unwrap(),
        ttl,
        None,
        writer.handle(),
    )
    .await;
    let app = spawn_echo_app("127.0.0.1:0".parse().unwrap(), "billing").await;
    let text = format!(
        "trust_domain = \"palisade.test\"\n\n[[service]]\nname = \"billing\"\nspiffe_id = \"spiffe://palisade.test/ns/test/sa/billing\"\ninbound = \"{}\"\nupstream = \"{app}\"\n\n[control]\nurl = \"https://{}\"\nrevocation_poll = \"100ms\"\n",
        free_addr(),
        control.addr,
    );
    std::fs::write(root.join("palisade.toml"), text).unwrap();
    let config = Config::load(&root.join("palisade.toml")).unwrap();
    let token = ControlState::open(&pki.state_dir())
        .unwrap()
        .create_join_token(&pki.id("billing"), Duration::from_secs(60))
        .unwrap();
    assert!(
        !config.services[0].svid_dir.join("svid.pem").exists(),
        "billing starts without an SVID"
    );
    let billing = Sidecar::start_with(&config, "billing", writer.handle(), Some(&token))
        .await
        .unwrap();
    Setup {
        pki,
        control: Some(control),
        billing,
        writer,
    }
}

impl Setup {
    fn orders_config(&self) -> rustls::ClientConfig {
        let svids = self.pki.state_dir().join("svids");
        client_config(
            Some(&svids.join("orders")),
            &svids.join("orders/bundle.pem"),
            &self.pki.id("billing"),
        )
    }

    async fn finish(self) -> Vec<palisade_audit::AuditRecord> {
        self.billing.shutdown().await;
        if let Some(control) = self.control {
            control.shutdown().await;
        }
        let db = self.pki.dir.path().join("audit.db");
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .unwrap()
            .unwrap();
        palisade_audit::query(
            &db,
            &AuditQuery {
                service: Some("billing".into()),
                ..AuditQuery::default()
            },
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_with_a_token_and_rotates_under_traffic_without_a_failed_request() {
    let setup = setup(Duration::from_secs(3)).await;
    let identity = setup.billing.identity.clone();
    let mut serials = HashSet::new();
    let mut requests = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Keep calling until billing's SVID has been renewed twice (three serials served).
    while serials.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "only {} SVIDs seen after {requests} requests",
            serials.len()
        );
        serials.insert(identity.store.current().serial.clone());
        let response = tls_request(
            setup.billing.inbound_addr,
            setup.orders_config(),
            "GET",
            "/invoices/1",
        )
        .await;
        assert_eq!(
            response.map(|r| r.status),
            Ok(200),
            "request {requests} failed during rotation"
        );
        requests += 1;
    }
    let records = setup.finish().await;
    assert_eq!(records.len(), requests);
    assert!(records.iter().all(|r| r.status == Some(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_caller_once_the_control_plane_revokes_it() {
    let setup = setup(Duration::from_secs(3600)).await;
    let ok = tls_request(
        setup.billing.inbound_addr,
        setup.orders_config(),
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    ControlState::open(&setup.pki.state_dir())
        .unwrap()
        .revoke_spiffe_id(&setup.pki.id("orders"), "key leaked")
        .unwrap();
    let revocations = setup.billing.identity.revocations.clone();
    wait_until(
        "billing to fetch the new revocation list",
        Duration::from_secs(10),
        || revocations.version() > 0,
    )
    .await;
    tls_request(
        setup.billing.inbound_addr,
        setup.orders_config(),
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap_err();
    let records = setup.finish().await;
    let codes: Vec<_> = records.iter().map(|r| r.code.as_deref()).collect();
    assert_eq!(codes, [None, Some("palisade.identity.revoked")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_closed_when_the_svid_expires_with_the_control_plane_down_and_recovers_by_itself() {
    let ttl = Duration::from_secs(3);
    let mut setup = setup(ttl).await;
    let ok = tls_request(
        setup.billing.inbound_addr,
        setup.orders_config(),
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);

    // The control plane goes away; billing keeps serving until its SVID runs out.
    let control = setup.control.take().unwrap();
    let addr = control.addr;
    control.shutdown().await;
    let identity = setup.billing.identity.clone();
    // Certificate validity has one-second resolution: wait a second past notAfter.
    wait_until("billing's SVID to expire", Duration::from_secs(15), || {
        let expired_at = identity.store.current().not_after;
        expired_at + time::Duration::seconds(1) < time::OffsetDateTime::now_utc()
    })
    .await;
    // Callers refuse an expired server certificate: no call gets through.
    tls_request(
        setup.billing.inbound_addr,
        setup.orders_config(),
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap_err();

    // Back on the same address: the sidecar renews with its expired SVID (within the
    // control plane's renewal grace) and serves again, without a restart.
    let restarted = control_plane(
        &setup.pki,
        addr,
        Duration::from_secs(3600),
        None,
        setup.writer.handle(),
    )
    .await;
    setup.control = Some(restarted);
    wait_until(
        "billing to renew after the outage",
        Duration::from_secs(30),
        || {
            identity
                .check_own_validity(time::OffsetDateTime::now_utc())
                .is_ok()
        },
    )
    .await;
    let ok = tls_request(
        setup.billing.inbound_addr,
        setup.orders_config(),
        "GET",
        "/invoices/1",
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforces_the_policy_set_the_control_plane_distributes() {
    let pki = TestPki::new("palisade.test");
    pki.svid_dir("orders", &pki.id("orders"));
    pki.svid_dir("billing", &pki.id("billing"));
    let root = pki.dir.path().to_path_buf();
    // The control plane's policies; billing has none of its own.
    let served = root.join("served-policies");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("open.cedar"), OPEN).unwrap();
    let writer = AuditWriter::start(
        SinkConfig::Sqlite {
            path: root.join("audit.db"),
        },
        1024,
    )
    .unwrap();
    let control = control_plane(
        &pki,
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(3600),
        Some(served.clone()),
        writer.handle(),
    )
    .await;
    let app = spawn_echo_app("127.0.0.1:0".parse().unwrap(), "billing").await;
    let text = format!(
        "trust_domain = \"palisade.test\"\npolicy_dir = \"nowhere\"\n\n[[service]]\nname = \"billing\"\nspiffe_id = \"spiffe://palisade.test/ns/test/sa/billing\"\ninbound = \"{}\"\nupstream = \"{app}\"\n\n[control]\nurl = \"https://{}\"\nrevocation_poll = \"100ms\"\ndistribute_policies = true\n",
        free_addr(),
        control.addr,
    );
    std::fs::write(root.join("palisade.toml"), text).unwrap();
    let config = Config::load(&root.join("palisade.toml")).unwrap();
    let billing = Sidecar::start(&config, "billing", writer.handle())
        .await
        .unwrap();
    let orders = || {
        client_config(
            Some(&pki.state_dir().join("svids/orders")),
            &pki.state_dir().join("svids/orders/bundle.pem"),
            &pki.id("billing"),
        )
    };

    let engine = billing.policy.clone();
    wait_until(
        "the distributed set to load",
        Duration::from_secs(10),
        || engine.current().is_some_and(|set| set.len() == 1),
    )
    .await;
    let ok = tls_request(billing.inbound_addr, orders(), "GET", "/invoices/1")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    assert!(
        pki.state_dir()
            .join("policy-cache/billing/open.cedar")
            .is_file(),
        "the set is cached on disk"
    );

    // The operator narrows the policies on the control plane: sidecars follow.
    std::fs::write(served.join("open.cedar"), "").unwrap();
    let before = engine.generation();
    wait_until("the narrowed set to load", Duration::from_secs(10), || {
        engine.generation() > before
    })
    .await;
    let denied = tls_request(billing.inbound_addr, orders(), "GET", "/invoices/1")
        .await
        .unwrap();
    assert_eq!(denied.status, 403);

    // A set that does not validate is refused; the last good one stays in force and on disk.
    std::fs::write(
        served.join("broken.cedar"),
        "permit(principal,, action, resource);",
    )
    .unwrap();
    let bundle = palisade_control::api::PolicyBundle::read_dir(&served).unwrap();
    let err = palisade_proxy::control::install_policies(&bundle, &engine).unwrap_err();
    assert!(err.contains("broken.cedar"), "{err}");
    assert!(!pki
        .state_dir()
        .join("policy-cache/billing/broken.cedar")
        .exists());
    assert_eq!(
        engine.current().unwrap().len(),
        0,
        "the narrowed (empty) set is still in force"
    );

    billing.shutdown().await;
    control.shutdown().await;
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .unwrap()
        .unwrap();
}
