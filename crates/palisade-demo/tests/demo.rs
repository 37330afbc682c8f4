//! `palisade demo` end to end: a real mesh on 127.0.0.1, real handshakes, a real audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use palisade_audit::{query, AuditQuery, Decision};
use palisade_demo::{run, DemoError, DemoOptions};

/// The refused scenarios' codes; each must leave exactly one deny record.
const REFUSALS: [&str; 5] = [
    "palisade.authz.denied",
    "palisade.identity.missing",
    "palisade.identity.untrusted",
    "palisade.identity.plaintext",
    "palisade.identity.server_mismatch",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_and_each_refusal_is_audited_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let report = run(DemoOptions {
        dir: dir.clone(),
        keep_running: false,
    })
    .await
    .unwrap();

    assert!(report.all_passed(), "{:#?}", report.scenarios);
    assert_eq!(report.scenarios.len(), 8);
    assert_eq!(report.audit_db, dir.join("audit.db"));
    assert_eq!(report.config, dir.join("palisade.toml"));
    let allowed: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.expected == "200 allowed")
        .map(|s| s.observed.as_str())
        .collect();
    assert_eq!(allowed.len(), 3);
    for (observed, policy) in allowed.iter().zip([
        "orders-read-invoices",
        "orders-create-payments",
        "billing-read-customers",
    ]) {
        assert!(observed.contains(policy), "{observed}");
    }

    let denies = query(
        &report.audit_db,
        &AuditQuery {
            decision: Some(Decision::Deny),
            ..AuditQuery::default()
        },
    )
    .unwrap();
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &denies {
        *by_code
            .entry(record.code.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = REFUSALS.iter().map(|code| (*code, 1)).collect();
    assert_eq!(by_code, expected, "{denies:#?}");

    // The handshake refusals were recorded by the customers sidecar, with no HTTP exchange.
    for code in ["palisade.identity.missing", "palisade.identity.untrusted"] {
        let record = denies
            .iter()
            .find(|r| r.code.as_deref() == Some(code))
            .unwrap();
        assert_eq!(record.service, "customers");
        assert_eq!(record.status, None);
        assert_eq!(record.method, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_reuses_its_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let options = DemoOptions {
        dir: tmp.path().to_path_buf(),
        keep_running: false,
    };
    let first = run(options.clone()).await.unwrap();
    let leftover = tmp.path().join("state/leftover.txt");
    std::fs::write(&leftover, "from the first run").unwrap();
    let second = run(options).await.unwrap();
    assert!(first.all_passed() && second.all_passed());
    assert!(
        !leftover.exists(),
        "the previous run's directory was not recreated"
    );
    // A fresh audit log: only the second run's records.
    let records = query(&second.audit_db, &AuditQuery::default()).unwrap();
    let deny = records
        .iter()
        .filter(|r| r.decision == Decision::Deny)
        .count();
    assert_eq!(deny, REFUSALS.len());
}

#[tokio::test]
async fn refuses_a_directory_it_did_not_create_and_leaves_it_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    let config = tmp.path().join("palisade.toml");
    std::fs::write(&config, "trust_domain = \"example.org\"\n").unwrap();

    let err = run(DemoOptions {
        dir: tmp.path().to_path_buf(),
        keep_running: false,
    })
    .await
    .unwrap_err();

    assert!(matches!(err, DemoError::DirNotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("nothing was deleted"), "{err}");
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["notes.txt", "palisade.toml"]);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "trust_domain = \"example.org\"\n"
    );
}
