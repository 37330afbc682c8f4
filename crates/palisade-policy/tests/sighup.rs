//! SIGHUP triggers a reload. In its own test binary: the signal goes to the
//! whole process.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use palisade_policy::spawn_reloader;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy_directory() {
    let dir = policy_dir(&[("all.cedar", "permit (principal, action, resource);")]);
    let engine = loaded_engine(dir.path());
    // Changed before the watcher exists, so only the signal can load it.
    write(
        dir.path(),
        "all.cedar",
        "forbid (principal, action, resource);",
    );
    let _watcher = spawn_reloader(engine.clone()).unwrap();
    let start = engine.generation();
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);

    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    wait_for_generation(&engine, start).await;
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices");
    assert!(!decision.allowed);
    assert_eq!(decision.policies, vec!["all.0".to_owned()]);
}
