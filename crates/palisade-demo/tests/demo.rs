//! `palisade demo` end to end: a real control plane and mesh on 127.0.0.1, real joins,
//! renewals and handshakes, a real audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use palisade_audit::{query, AuditQuery, AuditRecord, AuthMethod, Decision, Direction};
use palisade_demo::{run, DemoError, DemoOptions};
use palisade_identity::SvidMaterial;

/// The refused scenarios' codes; each must leave exactly one deny record.
const REFUSALS: [&str; 13] = [
    "palisade.authz.denied",
    "palisade.identity.missing",
    "palisade.identity.untrusted",
    "palisade.identity.plaintext",
    "palisade.identity.server_mismatch",
    "palisade.token.certificate_required",
    "palisade.token.wrong_audience",
    "palisade.schema.unknown_field",
    "palisade.schema.unknown_route",
    "palisade.injection.sql",
    "palisade.injection.path_traversal",
    "palisade.ratelimit.exceeded",
    "palisade.identity.revoked",
];

/// The guard stages' refusals of calls the policies permit: code, the deciding record's
/// findings, the policy that permitted the call, and what the results table shows.
const GUARDED: [(&str, &str, Option<&str>, &str); 5] = [
    (
        "palisade.schema.unknown_field",
        "palisade.schema.unknown_field@/approved_by",
        Some("orders-create-payments"),
        "400 palisade.schema.unknown_field at /approved_by (billing sidecar)",
    ),
    (
        "palisade.schema.unknown_route",
        "palisade.schema.unknown_route@request",
        Some("orders-read-billing"),
        "404 palisade.schema.unknown_route (billing sidecar)",
    ),
    (
        "palisade.injection.sql",
        "palisade.injection.sql@query/q",
        Some("orders-read-billing"),
        "400 palisade.injection.sql at query/q (billing sidecar)",
    ),
    (
        "palisade.injection.path_traversal",
        "palisade.injection.path_traversal@path",
        Some("orders-read-billing"),
        "400 palisade.injection.path_traversal at path (billing sidecar)",
    ),
    // The limiter runs before the policies: no policy decided the throttled call.
    (
        "palisade.ratelimit.exceeded",
        "palisade.ratelimit.exceeded@request",
        None,
        "429 palisade.ratelimit.exceeded after 5 admitted",
    ),
];

const ORDERS: &str = "spiffe://palisade.demo/ns/demo/sa/orders";
/// The OAuth client outside the mesh.
const REPORTING_JOB: &str = "reporting-job";

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
    assert_eq!(report.scenarios.len(), 19);
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
        "orders-read-billing",
        "orders-create-payments",
        "billing-read-customers",
    ]) {
        assert!(observed.contains(policy), "{observed}");
    }
    // customers' undocumented debug page, let through by report-mode validation with the
    // finding in the record (the inventory's shadow endpoint).
    assert_eq!(
        report.scenarios[3].expected,
        "200 allowed, palisade.schema.unknown_route reported"
    );
    // The reporting job's calls with access tokens, straight to billing without a
    // certificate: its own token is allowed by the policy on its scope, a token bound to
    // orders' certificate and one meant for customers are refused.
    let tokens: Vec<(&str, &str)> = report.scenarios[9..12]
        .iter()
        .map(|s| (s.expected.as_str(), s.observed.as_str()))
        .collect();
    assert_eq!(
        tokens,
        [
            (
                "200 allowed for reporting-job, auth jwt",
                "200 allowed by reporting-job-read-invoices for reporting-job, auth jwt \
                 (billing sidecar)"
            ),
            (
                "401 palisade.token.certificate_required",
                "401 palisade.token.certificate_required (billing sidecar)"
            ),
            (
                "401 palisade.token.wrong_audience",
                "401 palisade.token.wrong_audience (billing sidecar)"
            ),
        ]
    );
    assert!(report.scenarios[9..12]
        .iter()
        .all(|s| s.name.starts_with("reporting job")));
    // The guard scenarios, in the order they ran, as the results table shows them.
    let guarded: Vec<&str> = report.scenarios[12..17]
        .iter()
        .map(|s| s.observed.as_str())
        .collect();
    for (observed, (_, _, _, shown)) in guarded.iter().zip(GUARDED) {
        assert!(observed.starts_with(shown), "{observed}");
    }
    let [.., retry_loop, rotation, revocation] = report.scenarios.as_slice() else {
        panic!("{:#?}", report.scenarios)
    };
    assert!(
        retry_loop.name.contains("retry loop"),
        "{}",
        retry_loop.name
    );
    assert!(
        retry_loop.observed.contains("Retry-After")
            && retry_loop.observed.contains("billing sidecar"),
        "{}",
        retry_loop.observed
    );

    // Billing's SVID rotated under traffic, and every call was allowed.
    assert!(rotation.name.contains("rotates"), "{}", rotation.name);
    assert!(
        rotation.observed.contains("→") && rotation.observed.contains(", 0 failed"),
        "{}",
        rotation.observed
    );
    // Orders was revoked last, and billing refused its SVID in the handshake.
    assert!(revocation.name.contains("revoked"), "{}", revocation.name);
    assert_eq!(
        revocation.observed,
        "handshake refused: palisade.identity.revoked (billing sidecar)"
    );

    // Every service's svid.pem was written by its sidecar's join (none was pre-issued),
    // then renewed by the control plane: the control plane recorded one join each.
    for service in ["orders", "billing", "customers"] {
        let svid = SvidMaterial::load_dir(&dir.join("state/svids").join(service)).unwrap();
        assert_eq!(
            svid.spiffe_id.as_str(),
            format!("spiffe://palisade.demo/ns/demo/sa/{service}")
        );
    }

    let records = query(&report.audit_db, &AuditQuery::default()).unwrap();
    let joins = records
        .iter()
        .filter(|r| r.path.as_deref() == Some("/v1/join") && r.decision == Decision::Allow)
        .count();
    assert_eq!(joins, 3, "one join per sidecar");
    let renewals: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.path.as_deref() == Some("/v1/renew") && r.decision == Decision::Allow)
        .collect();
    assert!(
        renewals
            .iter()
            .any(|r| r.caller.as_deref() == Some("spiffe://palisade.demo/ns/demo/sa/billing")),
        "{renewals:#?}"
    );
    // Sidecar refusals only: the control plane's own records depend on timing (a renewal
    // orders attempts after its revocation is refused, correctly, with
    // palisade.control.revoked, if the run is slow enough to reach its half-life).
    let denies: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.decision == Decision::Deny && r.service != "palisade-control")
        .collect();
    let control_denies: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.service == "palisade-control" && r.decision == Decision::Deny)
        .collect();
    // Refused either at the endpoint (palisade.control.revoked, naming orders) or, once the
    // control plane's own verifier has the list, already in the handshake
    // (palisade.identity.revoked, before any caller is established).
    assert!(
        control_denies.iter().all(|r| match r.code.as_deref() {
            Some("palisade.control.revoked") => {
                r.caller.as_deref() == Some("spiffe://palisade.demo/ns/demo/sa/orders")
            }
            Some("palisade.identity.revoked") => r.caller.is_none(),
            _ => false,
        }),
        "{control_denies:#?}"
    );
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &denies {
        *by_code
            .entry(record.code.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = REFUSALS.iter().map(|code| (*code, 1)).collect();
    assert_eq!(by_code, expected, "{denies:#?}");

    // The control plane issued the three tokens (two by signed assertion, one over mTLS),
    // and billing recorded the reporting job by its client id, authenticated by a token; a
    // refused token identifies nobody.
    let issued = records
        .iter()
        .filter(|r| r.path.as_deref() == Some("/oauth2/token") && r.decision == Decision::Allow)
        .count();
    assert_eq!(issued, 3);
    let by_token: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.service == "billing" && r.auth == AuthMethod::Jwt)
        .collect();
    let [allowed] = by_token.as_slice() else {
        panic!("{by_token:#?}")
    };
    assert_eq!(allowed.caller.as_deref(), Some(REPORTING_JOB));
    assert_eq!(allowed.direction, Direction::Inbound);
    assert_eq!(allowed.policies, ["reporting-job-read-invoices"]);
    for code in [
        "palisade.token.certificate_required",
        "palisade.token.wrong_audience",
    ] {
        let record = denies
            .iter()
            .find(|r| r.code.as_deref() == Some(code))
            .unwrap();
        assert_eq!(
            (record.service.as_str(), record.direction, record.status),
            ("billing", Direction::Inbound, Some(401))
        );
        assert_eq!(
            (record.caller.as_deref(), record.auth),
            (None, AuthMethod::None)
        );
    }

    // The handshake refusals were recorded by the sidecar called, with no HTTP exchange:
    // customers for the attacks on identity, billing for the revoked orders SVID.
    for (code, service) in [
        ("palisade.identity.missing", "customers"),
        ("palisade.identity.untrusted", "customers"),
        ("palisade.identity.revoked", "billing"),
    ] {
        let record = denies
            .iter()
            .find(|r| r.code.as_deref() == Some(code))
            .unwrap();
        assert_eq!(
            (record.service.as_str(), record.direction),
            (service, Direction::Inbound)
        );
        assert_eq!(record.status, None);
        assert_eq!(record.method, None);
    }

    // Each guard refusal was decided by billing's sidecar, for orders, and says what was
    // found where; the calls the policies permitted name the policy.
    for (code, finding, policy, _) in GUARDED {
        let record = denies
            .iter()
            .find(|r| r.code.as_deref() == Some(code))
            .unwrap();
        assert_eq!(
            (record.service.as_str(), record.direction),
            ("billing", Direction::Inbound),
            "{record:#?}"
        );
        assert_eq!(record.caller.as_deref(), Some(ORDERS));
        assert_eq!(record.findings, [finding], "{record:#?}");
        assert_eq!(
            record.policies,
            policy.into_iter().collect::<Vec<_>>(),
            "{record:#?}"
        );
        assert!(!record.ratelimit_degraded);
    }
    // One other record carries a finding: customers' debug page, let through by its
    // report-mode validation.
    let reported: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| !r.findings.is_empty() && r.decision == Decision::Allow)
        .collect();
    assert_eq!(reported.len(), 1, "{reported:#?}");
    assert_eq!(reported[0].service, "customers");
    assert_eq!(reported[0].path.as_deref(), Some("/internal/debug"));
    assert_eq!(
        reported[0].findings,
        ["palisade.schema.unknown_route@request"]
    );
    let with_findings = records.iter().filter(|r| !r.findings.is_empty()).count();
    assert_eq!(with_findings, GUARDED.len() + 1);

    // The retry loop: every call before the 429 was allowed, and with the earlier reads of
    // /invoices/{id} by orders (each spends the budget, refused or not), exactly 5 calls
    // were admitted on orders' budget before the one refusal.
    let throttled = denies
        .iter()
        .find(|r| r.code.as_deref() == Some("palisade.ratelimit.exceeded"))
        .unwrap();
    assert_eq!(throttled.status, Some(429));
    assert_eq!(throttled.route.as_deref(), Some("/invoices/{id}"));
    let (base, last) = throttled.request_id.rsplit_once('.').unwrap();
    let calls: usize = last.parse().unwrap();
    let billing_in = |r: &&AuditRecord| r.service == "billing" && r.direction == Direction::Inbound;
    let in_loop: Vec<&AuditRecord> = records
        .iter()
        .filter(billing_in)
        .filter(|r| r.request_id.starts_with(&format!("{base}.")))
        .collect();
    assert_eq!(in_loop.len(), calls);
    assert!(
        in_loop
            .iter()
            .filter(|r| r.request_id != throttled.request_id)
            .all(|r| r.decision == Decision::Allow && r.status == Some(200)),
        "{in_loop:#?}"
    );
    let spent = records
        .iter()
        .filter(billing_in)
        .filter(|r| {
            r.caller.as_deref() == Some(ORDERS) && r.route.as_deref() == Some("/invoices/{id}")
        })
        .filter(|r| r.request_id != throttled.request_id)
        .count();
    assert_eq!(spent, 5);
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
    // A fresh audit log: only the second run's records (sidecar refusals; the control
    // plane's depend on timing, see above).
    let records = query(&second.audit_db, &AuditQuery::default()).unwrap();
    let deny = records
        .iter()
        .filter(|r| r.decision == Decision::Deny && r.service != "palisade-control")
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
