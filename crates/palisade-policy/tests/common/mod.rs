//! Shared fixtures: three configured services and helpers to write policy
//! files and build requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_policy::{AuthzDecision, AuthzRequest, PolicyEngine, ServiceInfo};

pub const ORDERS: &str = "spiffe://palisade.demo/ns/demo/sa/orders";
pub const BILLING: &str = "spiffe://palisade.demo/ns/demo/sa/billing";
pub const LEGACY: &str = "spiffe://palisade.demo/ns/demo/sa/legacy";
pub const STRANGER: &str = "spiffe://partner.example/ns/ext/sa/reporter";

/// orders (team-a, spec), billing (team-b, spec), legacy (no owner, no spec).
pub fn services() -> Vec<ServiceInfo> {
    vec![
        ServiceInfo {
            name: "orders".into(),
            spiffe_id: ORDERS.into(),
            owner: Some("team-a".into()),
            trust_domain: "palisade.demo".into(),
            routes: Some(vec!["/orders".into(), "/orders/{id}".into()]),
        },
        ServiceInfo {
            name: "billing".into(),
            spiffe_id: BILLING.into(),
            owner: Some("team-b".into()),
            trust_domain: "palisade.demo".into(),
            routes: Some(vec!["/invoices".into(), "/invoices/{id}".into()]),
        },
        ServiceInfo {
            name: "legacy".into(),
            spiffe_id: LEGACY.into(),
            owner: None,
            trust_domain: "palisade.demo".into(),
            routes: None,
        },
    ]
}

/// A temp policy directory holding `files` (name, contents).
pub fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    dir
}

pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// An engine over `dir` that has loaded it successfully.
pub fn loaded_engine(dir: &Path) -> Arc<PolicyEngine> {
    let engine = PolicyEngine::new(services(), PathBuf::from(dir)).unwrap();
    engine.reload().unwrap();
    Arc::new(engine)
}

/// `caller` calls `METHOD service:route` (route used as path) over mTLS.
pub fn request<'a>(
    caller: &'a str,
    method: &'a str,
    service: &'a str,
    route: &'a str,
) -> AuthzRequest<'a> {
    AuthzRequest {
        caller,
        caller_trust_domain: if caller == STRANGER {
            "partner.example"
        } else {
            "palisade.demo"
        },
        method,
        service,
        route,
        path: route,
        auth: "mtls",
        scopes: &[],
        time_unix: 1_700_000_000,
    }
}

pub fn decide(
    engine: &PolicyEngine,
    caller: &str,
    method: &str,
    service: &str,
    route: &str,
) -> AuthzDecision {
    engine.authorize(&request(caller, method, service, route))
}

/// Polls `engine.generation()` until it exceeds `after`, failing after 10 s.
pub async fn wait_for_generation(engine: &PolicyEngine, after: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let generation = engine.generation();
        if generation > after {
            return generation;
        }
        assert!(
            Instant::now() < deadline,
            "generation stayed at {generation} (waited for > {after})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
