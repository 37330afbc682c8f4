//! The API inventory from what real sidecars recorded: shadow, zombie, unused, orphan and
//! drift, each detected from traffic through a sidecar (real TLS, real SQLite).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use palisade_inventory::{
    Flag, Inventory, InventoryInputs, InventoryOptions, RetiredRoute, ServiceInputs, SpecInput,
};
use palisade_openapi::ApiSpec;
use std::time::Duration;

use palisade_testkit::{client_config, tls_request_with, wait_until};
use support::{Mesh, OPEN_POLICIES};

/// Billing's spec validation only reports (so undocumented calls reach the app) and its
/// owner retired `DELETE /invoices/{id}`.
const BILLING_EXTRA: &str = r#"
[service.validation]
mode = "report"

[service.inventory]
retired = ["DELETE /invoices/{id}"]
"#;

/// Orders may be called by anyone in the mesh too (its app is not running: 502s).
const ORDERS_OPEN: &str = r#"
@id("anyone-in-the-mesh-on-orders")
permit(
  principal,
  action,
  resource in Palisade::Service::"spiffe://palisade.test/ns/test/sa/orders"
);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_zombie_unused_orphan_and_drift_are_found_in_real_traffic() {
    let policies = format!("{OPEN_POLICIES}\n{ORDERS_OPEN}");
    let mesh = Mesh::start_with(Some(&policies), &["billing", "orders"], BILLING_EXTRA).await;
    let orders = mesh.svid("orders");
    let to_billing = || client_config(Some(&orders), &mesh.bundle(), &mesh.id("billing"));
    let calls = [
        ("GET", "/internal/debug"), // shadow: served by the app, not in the spec
        ("DELETE", "/invoices/7"),  // zombie: retired in the configuration
        ("GET", "/invoices?q=x&debug=1"), // drift: `debug` is not a declared parameter
        ("GET", "/invoices/7"),
    ];
    for (method, path) in calls {
        let response =
            tls_request_with(mesh.billing_inbound(), to_billing(), method, path, &[], "")
                .await
                .unwrap();
        assert_eq!(response.status, 200, "{method} {path}: {:?}", response.body);
    }
    // Orders has no owner in the configuration: whatever it serves is an orphan.
    let orders_inbound = mesh.config.service("orders").unwrap().inbound;
    let billing = mesh.svid("billing");
    let to_orders = client_config(Some(&billing), &mesh.bundle(), &mesh.id("orders"));
    let orphan = tls_request_with(orders_inbound, to_orders, "GET", "/status", &[], "")
        .await
        .unwrap();
    assert_eq!(orphan.status, 502, "orders' app is not running");

    // The log is read while the sidecars run (WAL lets readers in), as the control
    // plane's refresh does.
    wait_until("five records", Duration::from_secs(10), || {
        mesh.records_now().len() == 5
    })
    .await;
    let config = mesh.config.clone();
    let mut inputs = InventoryInputs::default();
    for service in &config.services {
        let spec = service.openapi.as_ref().map(|path| SpecInput {
            source: path.display().to_string(),
            spec: ApiSpec::load(path).unwrap(),
        });
        let retired = service
            .inventory
            .retired
            .iter()
            .map(|r| RetiredRoute {
                method: r.method.clone(),
                route: r.route.clone(),
            })
            .collect();
        inputs.services.insert(
            service.name.clone(),
            ServiceInputs {
                owner: service.owner.clone(),
                spec,
                retired,
            },
        );
    }
    let mut inventory = Inventory::new(inputs, InventoryOptions::default());
    assert_eq!(inventory.read_sqlite(&mesh.audit_db).unwrap(), 5);
    let snapshot = inventory.snapshot(time::OffsetDateTime::now_utc());
    let flags = |service: &str, method: &str, template: &str| -> Vec<Flag> {
        snapshot
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| {
                s.endpoints
                    .iter()
                    .find(|e| e.method == method && e.template == template)
            })
            .unwrap_or_else(|| panic!("no {service} {method} {template} in {snapshot:#?}"))
            .flags
            .clone()
    };
    assert_eq!(flags("billing", "GET", "/internal/debug"), [Flag::Shadow]);
    // Retired, and answered 200 where the spec declares 204: drift as well.
    assert_eq!(
        flags("billing", "DELETE", "/invoices/{id}"),
        [Flag::Zombie, Flag::Drift]
    );
    assert_eq!(flags("billing", "GET", "/invoices"), [Flag::Drift]);
    assert_eq!(
        flags("billing", "GET", "/invoices/{id}"),
        Vec::<Flag>::new()
    );
    assert_eq!(flags("billing", "POST", "/payments"), [Flag::Unused]);
    assert!(flags("orders", "GET", "/status").contains(&Flag::Orphan));
    mesh.finish().await;
}
