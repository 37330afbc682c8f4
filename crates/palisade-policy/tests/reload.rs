//! Reloading: rejected edits keep the previous set; the watcher picks up
//! file changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::sync::Arc;

use palisade_policy::{spawn_reloader, PolicyEngine, PolicyError, ProblemKind};

const ALLOW_ORDERS_GET: &str = r#"
@id("orders-get")
permit (
  principal == Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/orders",
  action == Palisade::Action::"GET",
  resource in Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/billing"
);
"#;

const ALLOW_ORDERS_POST: &str = r#"
@id("orders-post")
permit (
  principal == Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/orders",
  action == Palisade::Action::"POST",
  resource in Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/billing"
);
"#;

#[test]
fn unparsable_edit_is_rejected_and_previous_set_stays_in_force() {
    let dir = policy_dir(&[("billing.cedar", ALLOW_ORDERS_GET)]);
    let engine = loaded_engine(dir.path());
    let before = decide(&engine, ORDERS, "GET", "billing", "/invoices");
    assert!(before.allowed);

    write(
        dir.path(),
        "billing.cedar",
        "permit (\n  principal,\n  action\n  resource\n);\n",
    );
    let error = engine.reload().unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::Parse);
    assert!(error.problems[0].file.ends_with("billing.cedar"));
    assert_eq!(error.problems[0].line, Some(4), "{error}");

    assert_eq!(engine.generation(), 1);
    assert_eq!(
        decide(&engine, ORDERS, "GET", "billing", "/invoices"),
        before
    );
}

#[test]
fn edit_failing_validation_is_rejected_and_previous_set_stays_in_force() {
    let dir = policy_dir(&[("billing.cedar", ALLOW_ORDERS_GET)]);
    let engine = loaded_engine(dir.path());
    write(
        dir.path(),
        "extra.cedar",
        "permit (principal, action, resource) when { principal.bogus };\n",
    );
    let error = engine.reload().unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::Validation);
    assert_eq!(engine.generation(), 1);
    assert_eq!(
        engine.current().unwrap().policy_ids(),
        vec!["orders-get".to_owned()]
    );
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);
}

#[test]
fn removing_the_directory_fails_reload_and_keeps_previous_set() {
    let dir = policy_dir(&[("billing.cedar", ALLOW_ORDERS_GET)]);
    let engine = loaded_engine(dir.path());
    std::fs::remove_dir_all(dir.path()).unwrap();
    let error = engine.reload().unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::Io);
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);
}

#[test]
fn successful_reload_replaces_set_and_increments_generation() {
    let dir = policy_dir(&[("billing.cedar", ALLOW_ORDERS_GET)]);
    let engine = loaded_engine(dir.path());
    write(dir.path(), "billing.cedar", ALLOW_ORDERS_POST);
    let summary = engine.reload().unwrap();
    assert_eq!(summary.generation, 2);
    assert_eq!(summary.policies, 1);
    assert_eq!(summary.files, 1);
    assert_eq!(engine.generation(), 2);
    assert!(!decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);
    assert!(decide(&engine, ORDERS, "POST", "billing", "/invoices").allowed);
}

#[test]
fn reloader_outside_tokio_runtime_is_an_error() {
    let dir = policy_dir(&[]);
    let engine = loaded_engine(dir.path());
    assert!(matches!(
        spawn_reloader(engine),
        Err(PolicyError::NoRuntime)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reloads_when_a_policy_file_changes() {
    let dir = policy_dir(&[("billing.cedar", ALLOW_ORDERS_GET)]);
    let engine = loaded_engine(dir.path());
    let _watcher = spawn_reloader(engine.clone()).unwrap();
    let start = engine.generation();

    write(dir.path(), "billing.cedar", ALLOW_ORDERS_POST);
    wait_for_generation(&engine, start).await;
    assert!(decide(&engine, ORDERS, "POST", "billing", "/invoices").allowed);
    assert!(!decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);

    // A new file is picked up too.
    let before_new_file = engine.generation();
    write(dir.path(), "more.cedar", ALLOW_ORDERS_GET);
    wait_for_generation(&engine, before_new_file).await;
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_loads_a_fix_written_after_a_broken_edit() {
    let dir = policy_dir(&[("billing.cedar", ALLOW_ORDERS_GET)]);
    let engine = loaded_engine(dir.path());
    let _watcher = spawn_reloader(engine.clone()).unwrap();
    let start = engine.generation();

    // Whether the broken version is reloaded (and rejected) or coalesced
    // with the fix by the debounce, the fix must end up in force.
    write(
        dir.path(),
        "billing.cedar",
        "permit (principal action resource);",
    );
    write(dir.path(), "billing.cedar", ALLOW_ORDERS_POST);
    wait_for_generation(&engine, start).await;
    assert!(decide(&engine, ORDERS, "POST", "billing", "/invoices").allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_loads_a_policy_directory_created_after_start() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    let engine = Arc::new(PolicyEngine::new(services(), dir.clone()).unwrap());
    assert!(engine.reload().is_err());
    let _watcher = spawn_reloader(Arc::clone(&engine)).unwrap();
    std::fs::create_dir(&dir).unwrap();
    write(&dir, "billing.cedar", ALLOW_ORDERS_GET);
    let created = wait_for_generation(&engine, 0).await;
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);
    // Later edits inside the new directory are seen too.
    write(&dir, "billing.cedar", ALLOW_ORDERS_POST);
    wait_for_generation(&engine, created).await;
    assert!(decide(&engine, ORDERS, "POST", "billing", "/invoices").allowed);
}
