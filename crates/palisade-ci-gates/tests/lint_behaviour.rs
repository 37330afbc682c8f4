//! The linter end to end through its library API: parsing (YAML, JSON,
//! errors with positions), `$ref`s across files, suppression (config and
//! `x-palisade-ignore`), levels, directories, deduplication.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use palisade_ci_gates::lint::Level;
use palisade_ci_gates::{Error, Format, LintConfig, LintOptions, Linter, Report};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lint")
}

fn linter_with(config: LintConfig) -> Linter {
    Linter::new(
        config,
        LintOptions {
            base_dir: Some(testdata()),
            today: Some("2026-01-01".to_owned()),
        },
    )
}

fn lint_file(rel: &str) -> Result<Report, Error> {
    linter_with(LintConfig::default()).lint_paths(&[testdata().join(rel)])
}

fn lint_text(text: &str) -> Report {
    linter_with(LintConfig::default())
        .lint_str("spec.yaml", text, None)
        .unwrap()
}

fn rules_at(report: &Report, pointer: &str) -> Vec<String> {
    let mut rules: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.properties["pointer"] == pointer)
        .map(|f| f.rule_id.clone())
        .collect();
    rules.sort();
    rules
}

#[test]
fn findings_in_referenced_files_are_located_in_those_files() {
    let report = lint_file("refs/api.yaml").unwrap();
    let find = |rule: &str, path: &str| {
        report
            .findings
            .iter()
            .find(|f| f.rule_id == rule && f.location.path == path)
            .unwrap_or_else(|| panic!("no {rule} in {path}:\n{}", report.render(Format::Text)))
    };
    // The path item is a whole-file $ref: its parameter's schema is in that file.
    let id = find("owasp-no-numeric-ids", "refs/paths/pet-by-id.yaml");
    assert_eq!((id.location.line, id.location.column), (6, 7));
    assert_eq!(id.properties["pointer"], "/get/parameters/0/schema");
    // A schema reached through `../schemas/pet.yaml` from two places is reported once.
    let strict = find("palisade-request-body-not-strict", "refs/schemas/pet.yaml");
    assert_eq!(strict.properties["pointer"], "");
    let limits = report
        .findings
        .iter()
        .filter(|f| f.rule_id == "owasp-string-limit" && f.location.path == "refs/schemas/pet.yaml")
        .count();
    assert_eq!(limits, 1);
    // A response reached through `common.yaml#/responses/Created`.
    let rate = find("owasp-rate-limit", "refs/common.yaml");
    assert_eq!(rate.properties["pointer"], "/responses/Created");
    assert_eq!(rate.properties["operation"], "POST /pets");
    // A broken local ref inside the referenced file.
    let broken = find("palisade-unresolved-ref", "refs/common.yaml");
    assert_eq!(
        broken.properties["pointer"],
        "/schemas/Owner/properties/missing/$ref"
    );
    assert_eq!(report.stats.files_scanned, 4);
}

#[test]
fn unparsable_input_is_an_error_with_its_location() {
    let cases = [
        ("broken/tab-indented.yaml", "broken/tab-indented.yaml", 3, 2),
        (
            "broken/trailing-comma.json",
            "broken/trailing-comma.json",
            3,
            38,
        ),
        // A referenced file that does not parse fails the run like the spec itself.
        (
            "broken/refs-bad-file.yaml",
            "broken/tab-indented.yaml",
            3,
            2,
        ),
    ];
    for (file, path, line, column) in cases {
        match lint_file(file) {
            Err(Error::SpecSyntax {
                path: p,
                line: l,
                column: c,
                ..
            }) => assert_eq!(
                (p.to_string_lossy().into_owned(), l, c),
                (path.to_owned(), line, column),
                "{file}"
            ),
            other => panic!("{file}: {other:?}"),
        }
    }
    match lint_file("not-a-spec.yaml") {
        Err(e @ Error::NotOpenApi { .. }) => {
            assert!(e.to_string().starts_with("not-a-spec.yaml:2:1: "), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn yaml_edge_cases_are_errors_not_guesses() {
    let linter = linter_with(LintConfig::default());
    let cases = [
        ("openapi: 3.0.3\nopenapi: 3.1.0\n", 2, "duplicate key `openapi`"),
        ("openapi: 3.0.3\n---\nopenapi: 3.1.0\n", 2, "more than one YAML document"),
        ("", 1, "empty"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
            6,
            "aliases expand",
        ),
    ];
    for (text, line, message) in cases {
        match linter.lint_str("x.yaml", text, None) {
            Err(Error::SpecSyntax {
                line: l,
                message: m,
                ..
            }) => {
                assert_eq!(l, line, "{text:?}: {m}");
                assert!(m.contains(message), "{text:?}: {m}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // Deep nesting is refused (the parser's recursion limit), never a stack overflow.
    let deep = format!(
        "openapi: 3.0.3\nx: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(matches!(
        linter.lint_str("deep.yaml", &deep, None),
        Err(Error::SpecSyntax { line: 2, message, .. })
            if message.contains("recursion limit") || message.contains("nesting deeper")
    ));
    match linter.lint_str("v.yaml", "openapi: 3.2.0\n", None) {
        Err(Error::NotOpenApi {
            line: 1,
            column: 10,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match linter.lint_str("s.yaml", "swagger: \"2.0\"\n", None) {
        Err(e @ Error::NotOpenApi { .. }) => assert!(e.to_string().contains("Swagger 2.0")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_specs_get_positions_too() {
    let report = lint_file("numeric-id.json").unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.rule_id == "owasp-no-numeric-ids")
        .unwrap();
    assert_eq!(
        f.properties["pointer"],
        "/paths/~1users~1{id}/get/parameters/0/schema"
    );
    // Column counts the tab indentation as one character each.
    assert_eq!((f.location.line, f.location.column), (7, 67));
}

#[test]
fn merge_keys_and_anchors_are_expanded() {
    let report = lint_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    Base: &base\n      type: string\n      maxLength: 10\n    Derived:\n      <<: *base\n      maxLength: 20\n",
    );
    // Derived inherits `type: string` from the merge, keeps its own maxLength,
    // and has no pattern: string-restricted fires on both, string-limit on neither.
    assert_eq!(
        rules_at(&report, "/components/schemas/Derived"),
        ["owasp-string-restricted"]
    );
    assert_eq!(
        rules_at(&report, "/components/schemas/Base"),
        ["owasp-string-restricted"]
    );
}

const SHARED_RESPONSE: &str = r##"openapi: 3.0.3
info: {title: t, version: "1", contact: {name: team}}
security: [{bearer: []}]
paths:
  /a:
    get:
      x-palisade-ignore:
        owasp-rate-limit: the sidecar adds RateLimit headers to every response
      responses:
        "200": {$ref: "#/components/responses/Ok"}
  /b:
    get:
      responses:
        "200": {$ref: "#/components/responses/Ok"}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  responses:
    Ok: {description: ok}
"##;

#[test]
fn an_operation_ignore_covers_shared_findings_only_if_every_user_ignores_them() {
    // /b does not ignore: the finding in the shared response stays.
    let report = lint_text(SHARED_RESPONSE);
    assert_eq!(
        rules_at(&report, "/components/responses/Ok"),
        ["owasp-rate-limit"]
    );
    // Once /b ignores too, it is suppressed and counted.
    let both = SHARED_RESPONSE.replace(
        "  /b:\n    get:\n",
        "  /b:\n    get:\n      x-palisade-ignore: [{owasp-rate-limit: same sidecar}]\n",
    );
    let report = lint_text(&both);
    assert!(rules_at(&report, "/components/responses/Ok").is_empty());
    assert_eq!(report.suppressed["x-palisade-ignore"], 1);
    // Findings on the operation itself are suppressed by its own ignore only.
    assert!(report
        .findings
        .iter()
        .all(|f| f.rule_id != "owasp-rate-limit"));
}

#[test]
fn an_ignore_without_a_reason_suppresses_nothing() {
    let text = SHARED_RESPONSE.replace(
        "owasp-rate-limit: the sidecar adds RateLimit headers to every response",
        "owasp-define-error-validation: \"\"",
    );
    let report = lint_text(&text);
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule_id == "owasp-define-error-validation"
            && f.properties["pointer"] == "/paths/~1a/get/responses"));
    assert_eq!(
        rules_at(
            &report,
            "/paths/~1a/get/x-palisade-ignore/owasp-define-error-validation"
        ),
        ["palisade-ignore-invalid"]
    );
}

#[test]
fn the_config_switches_rules_off_changes_levels_and_accepts_findings() {
    let dir = testdata();
    let config = LintConfig::from_str(
        r#"
[rules]
owasp-define-error-responses-401 = "off"
"owasp:api4:2023-rate-limit" = "info"

[[ignore]]
rule = "owasp-no-numeric-ids"
files = ["refs/paths/*.yaml"]
pointer = "/get/parameters"
reason = "pet ids are public catalogue numbers"
"#,
        "lint.toml",
        &dir,
    )
    .unwrap();
    let report = linter_with(config)
        .lint_paths(&[dir.join("refs/api.yaml")])
        .unwrap();
    assert!(!report
        .rules
        .iter()
        .any(|r| r.id == "owasp-define-error-responses-401"));
    assert!(report
        .findings
        .iter()
        .all(|f| f.rule_id != "owasp-define-error-responses-401"
            && f.rule_id != "owasp-no-numeric-ids"));
    assert_eq!(report.suppressed["config"], 1);
    let rate: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule_id == "owasp-rate-limit")
        .collect();
    assert!(!rate.is_empty());
    assert!(rate.iter().all(|f| f.severity == Level::Info.severity()));
    assert!(report
        .render(Format::Text)
        .contains("  info      owasp-rate-limit"));
}

#[test]
fn directories_are_searched_for_specs_and_shared_files_reported_once() {
    let report = linter_with(LintConfig::default())
        .lint_paths(&[testdata().join("refs"), testdata().join("refs/api.yaml")])
        .unwrap();
    let single = lint_file("refs/api.yaml").unwrap();
    assert_eq!(report.findings.len(), single.findings.len());
    // not-a-spec.yaml and the broken files are not picked up from a directory
    // that has none of them; the rules directory's specs are.
    let all = linter_with(LintConfig::default())
        .lint_paths(&[testdata().join("rules")])
        .unwrap();
    let fixtures = std::fs::read_dir(testdata().join("rules")).unwrap().count() as u64;
    assert_eq!(all.stats.files_scanned, fixtures);
}

#[test]
fn lint_reports_speak_error_warn_info() {
    let report = lint_file("refs/api.yaml").unwrap();
    let text = report.render(Format::Text);
    assert!(
        text.contains("  error     owasp-write-restricted"),
        "{text}"
    );
    assert!(
        text.contains("    at /paths/~1pets/post/security"),
        "{text}"
    );
    assert!(text.contains("(error: 8, warn: 11)"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    assert_eq!(json["summary"]["by_severity"]["error"], 8);
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| ["error", "warn", "info"].contains(&f["severity"].as_str().unwrap())));
    let first = &json["findings"][0];
    assert!(first["properties"]["pointer"].is_string());
    assert!(first["location"]["line"].as_u64().unwrap() >= 1);
}

#[test]
fn deprecated_operations_past_their_sunset_say_so() {
    let report = lint_file("rules/palisade-deprecated-operation.bad.yaml").unwrap();
    let messages: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.rule_id == "palisade-deprecated-operation")
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("2020-01-01 has passed")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("set `x-sunset")),
        "{messages:?}"
    );
}

#[test]
fn remote_refs_are_noted_not_fetched_nor_reported_as_broken() {
    let report = lint_text(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    Remote: {$ref: 'https://schemas.example.com/pet.yaml#/Pet'}\n",
    );
    assert!(report
        .findings
        .iter()
        .all(|f| f.rule_id != "palisade-unresolved-ref"));
    assert_eq!(report.notifications.len(), 1);
    assert!(report.notifications[0]
        .message
        .contains("https://schemas.example.com/pet.yaml#/Pet"));
}
