//! `palisade inventory` end to end: audit records written to a real SQLite file with
//! `AuditWriter`, then the binary run on it (table, JSON, OpenAPI, diff, exit codes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use palisade_audit::{
    AuditRecord, AuditWriter, AuthMethod, Decision, Direction, ExchangeShape, FieldShape,
    SinkConfig,
};
use serde_json::Value;

const SPEC: &str = r#"
openapi: 3.0.3
info: {title: Billing API, version: "1"}
paths:
  /invoices/{id}:
    get:
      operationId: getInvoice
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200":
          description: An invoice
          content:
            application/json:
              schema: {type: object, properties: {id: {type: integer}, email: {type: string}}}
  /v1/invoices/{id}:
    get:
      deprecated: true
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        "200": {description: Old format}
  /refunds:
    get:
      responses:
        "200": {description: Refunds}
"#;

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn record(n: u64, service: &str, method: &str, path: &str, route: Option<&str>) -> AuditRecord {
    AuditRecord {
        // Recent, so the `--since` window of the tests holds them.
        ts: time::OffsetDateTime::now_utc() - time::Duration::minutes(10)
            + time::Duration::milliseconds(n as i64),
        request_id: format!("req-{n}"),
        caller: Some(format!("spiffe://example.org/ns/prod/sa/caller-{}", n % 2)),
        auth: AuthMethod::Mtls,
        service: service.to_owned(),
        method: Some(method.to_owned()),
        path: Some(path.to_owned()),
        route: route.map(str::to_owned),
        decision: Decision::Allow,
        code: None,
        policies: vec![],
        status: Some(200),
        latency_us: 500,
        bytes_in: 0,
        bytes_out: 64,
        data_classes: vec![],
        peer: None,
        direction: Direction::Inbound,
        detail: None,
        findings: vec![],
        ratelimit_degraded: false,
        shape: None,
    }
}

fn write_db(db: &Path, records: Vec<AuditRecord>) {
    let writer = AuditWriter::start(
        SinkConfig::Sqlite {
            path: db.to_path_buf(),
        },
        64,
    )
    .unwrap();
    let handle = writer.handle();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async move {
            for record in records {
                handle.record(record).await.unwrap();
            }
        });
    writer.shutdown().unwrap();
}

/// Billing traffic: a documented route with an undeclared response field carrying an
/// e-mail, a deprecated route still answering, a shadow route; ledger (no owner) traffic.
fn traffic() -> Vec<AuditRecord> {
    let mut invoice = record(0, "billing", "GET", "/invoices/7", Some("/invoices/{id}"));
    invoice.data_classes = vec!["email".into()];
    invoice.shape = Some(ExchangeShape {
        response: vec![
            FieldShape {
                name: "/id".into(),
                types: vec!["integer".into()],
                classes: vec![],
            },
            FieldShape {
                name: "/owner_email".into(),
                types: vec!["string".into()],
                classes: vec!["email".into()],
            },
        ],
        ..ExchangeShape::default()
    });
    vec![
        invoice,
        record(
            1,
            "billing",
            "GET",
            "/v1/invoices/8",
            Some("/v1/invoices/{id}"),
        ),
        record(2, "billing", "GET", "/internal/metrics", None),
        record(3, "ledger", "GET", "/entries/41", None),
        record(4, "ledger", "GET", "/entries/42", None),
    ]
}

/// A tempdir with `billing.yaml`, `audit.db` holding [`traffic`], and `palisade.toml`
/// naming both (billing owned by team-billing, ledger unowned).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("billing.yaml"), SPEC).unwrap();
    write_db(&dir.path().join("audit.db"), traffic());
    std::fs::write(
        dir.path().join("palisade.toml"),
        r#"trust_domain = "example.org"

[audit]
path = "audit.db"

[[service]]
name = "billing"
spiffe_id = "spiffe://example.org/ns/prod/sa/billing"
inbound = "127.0.0.1:7443"
upstream = "127.0.0.1:8080"
openapi = "billing.yaml"
owner = "team-billing"

[[service]]
name = "ledger"
spiffe_id = "spiffe://example.org/ns/prod/sa/ledger"
inbound = "127.0.0.1:7444"
upstream = "127.0.0.1:8081"

[service.inventory]
retired = ["GET /entries/{id}"]
"#,
    )
    .unwrap();
    dir
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_owned()
}

fn endpoint<'a>(snapshot: &'a Value, service: &str, method: &str, template: &str) -> &'a Value {
    snapshot["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .and_then(|s| {
            s["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["method"] == method && e["template"] == template)
        })
        .unwrap_or_else(|| panic!("no {service} {method} {template} in {snapshot:#}"))
}

#[test]
fn inventory_from_config_reads_owners_specs_and_the_audit_path() {
    let dir = workspace();
    let out = palisade(&[
        "inventory",
        "--config",
        &path(&dir, "palisade.toml"),
        "--since",
        "7d",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["format"], 1);
    assert_eq!(snapshot["records"]["counted"], 5);

    let invoice = endpoint(&snapshot, "billing", "GET", "/invoices/{id}");
    assert_eq!(invoice["flags"], serde_json::json!(["drift"]));
    assert_eq!(invoice["drift"][0]["name"], "/owner_email");
    assert_eq!(invoice["owner"], "team-billing");
    let zombie = endpoint(&snapshot, "billing", "GET", "/v1/invoices/{id}");
    assert_eq!(zombie["flags"], serde_json::json!(["zombie"]));
    assert_eq!(zombie["zombie"]["answered_2xx"], 1);
    let shadow = endpoint(&snapshot, "billing", "GET", "/internal/metrics");
    assert_eq!(shadow["flags"], serde_json::json!(["shadow"]));
    let unused = endpoint(&snapshot, "billing", "GET", "/refunds");
    assert_eq!(unused["flags"], serde_json::json!(["unused"]));
    // Retired in the configuration (parameter names do not matter) and still called.
    let ledger = endpoint(&snapshot, "ledger", "GET", "/entries/{entryId}");
    assert_eq!(ledger["flags"], serde_json::json!(["zombie", "orphan"]));
    assert_eq!(ledger["calls"], 2);
}

#[test]
fn inventory_table_is_the_default_and_lists_flags_and_risk_reasons() {
    let dir = workspace();
    let out = palisade(&[
        "inventory",
        "--db",
        &path(&dir, "audit.db"),
        "--spec",
        &format!("billing={}", path(&dir, "billing.yaml")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.starts_with("5 endpoints in 2 services, from 5 audit records (5 counted)"),
        "{table}"
    );
    for needle in [
        "SERVICE",
        "RISK",
        "/internal/metrics",
        "shadow, orphan",
        "/entries/{entryId}",
        "Risk (medium and above):",
        "billing GET /v1/invoices/{id}: 25 medium = +15 zombie: deprecated in the spec but still called; +10 zombie still answers 2xx (1 call)",
        "Drift (not declared in the spec):",
        "billing GET /invoices/{id}: response 200 /owner_email (1×)",
        "(no --config: owners are unknown",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }
}

#[test]
fn inventory_openapi_writes_one_loadable_document_per_service() {
    let dir = workspace();
    let out_dir = dir.path().join("reconstructed");
    let out = palisade(&[
        "inventory",
        "--config",
        &path(&dir, "palisade.toml"),
        "--format",
        "openapi",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let billing = out_dir.join("billing.openapi.json");
    let ledger = out_dir.join("ledger.openapi.json");
    assert_eq!(
        printed,
        [billing.display().to_string(), ledger.display().to_string()]
    );
    let spec = palisade_openapi::ApiSpec::load(&billing).unwrap();
    assert_eq!(spec.openapi_version(), "3.1.0");
    assert_eq!(
        spec.route_templates(),
        ["/internal/metrics", "/invoices/{id}", "/v1/invoices/{id}"]
    );
    let ledger = palisade_openapi::ApiSpec::load(&ledger).unwrap();
    assert_eq!(ledger.route_templates(), ["/entries/{entryId}"]);
}

#[test]
fn inventory_diff_compares_two_json_snapshots() {
    let dir = workspace();
    let snapshot = |args: &[&str], file: &str| {
        let db = path(&dir, "audit.db");
        let mut all = vec!["inventory", "--db", db.as_str(), "--format", "json"];
        all.extend_from_slice(args);
        let out = palisade(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::write(dir.path().join(file), &out.stdout).unwrap();
        path(&dir, file)
    };
    let spec = format!("billing={}", path(&dir, "billing.yaml"));
    let old = snapshot(&[], "old.json");
    let new = snapshot(&["--spec", &spec], "new.json");

    let out = palisade(&["inventory", "diff", &old, &new]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("1 appeared, 0 disappeared, 3 changed"),
        "{table}"
    );
    for needle in [
        "source: traffic → spec",
        "flags: +zombie",
        "drift: +response 200 /owner_email",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }

    let out = palisade(&["inventory", "diff", &old, &new, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let diff: Value = serde_json::from_slice(&out.stdout).unwrap();
    let appeared: Vec<&str> = diff["appeared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["template"].as_str().unwrap())
        .collect();
    assert_eq!(
        appeared,
        ["/refunds"],
        "unused in the spec, absent without it"
    );
    assert_eq!(diff["changed"].as_array().unwrap().len(), 3);
}

#[test]
fn inventory_usage_and_input_errors_exit_2_naming_the_problem() {
    let dir = workspace();
    let db = path(&dir, "audit.db");
    let cases: [(Vec<String>, &str); 6] = [
        (vec![], "give --db FILE or --config"),
        (
            vec!["--db".into(), db.clone(), "--spec".into(), "billing".into()],
            "expected SERVICE=FILE",
        ),
        (
            vec!["--db".into(), path(&dir, "missing.db")],
            "missing.db does not exist",
        ),
        (
            vec![
                "--db".into(),
                db.clone(),
                "--format".into(),
                "openapi".into(),
            ],
            "give --out DIR",
        ),
        (
            vec![
                "--db".into(),
                db.clone(),
                "--spec".into(),
                format!("billing={}", path(&dir, "nope.yaml")),
            ],
            "nope.yaml",
        ),
        (
            vec!["diff".into(), path(&dir, "billing.yaml"), db],
            "not an inventory snapshot",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["inventory"];
        all.extend(args.iter().map(String::as_str));
        let out = palisade(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(needle),
            "{all:?}: {needle:?} not in {}",
            text(&out.stderr)
        );
    }
}
