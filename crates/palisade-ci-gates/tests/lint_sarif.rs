//! The linter's SARIF output validates against the OASIS SARIF 2.1.0 JSON
//! schema (`testdata/sarif-schema-2.1.0.json`) and carries what GitHub code
//! scanning reads: rules with help and security-severity, results with a
//! location (file, line, column), the JSON Pointer and a stable fingerprint.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use palisade_ci_gates::lint::RULES;
use palisade_ci_gates::{Format, LintConfig, LintOptions, Linter, Report};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(testdata().join("sarif-schema-2.1.0.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

fn sarif_of(report: &Report) -> Value {
    let sarif: Value = serde_json::from_str(&report.render(Format::Sarif)).unwrap();
    let errors: Vec<String> = validator()
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF invalid:\n{}", errors.join("\n"));
    sarif
}

fn report_of(paths: &[PathBuf]) -> Report {
    Linter::new(
        LintConfig::default(),
        LintOptions {
            base_dir: Some(testdata().join("lint")),
            today: Some("2026-01-01".to_owned()),
        },
    )
    .lint_paths(paths)
    .unwrap()
}

#[test]
fn lint_sarif_validates_against_the_sarif_2_1_0_schema() {
    // Every rule fires at least once across the bad fixtures, and the split
    // spec adds results in several files (one with a space-free nested path).
    let report = report_of(&[
        testdata().join("lint/rules"),
        testdata().join("lint/refs/api.yaml"),
    ]);
    for rule in RULES {
        assert!(
            report.findings.iter().any(|f| f.rule_id == rule.id),
            "{} never fired",
            rule.id
        );
    }
    let sarif = sarif_of(&report);
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "palisade-lint");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    for rule in rules {
        assert!(rule["help"]["text"]
            .as_str()
            .unwrap()
            .contains("docs/lint-rules.md#"));
        assert!(rule["shortDescription"]["text"].is_string());
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(
            ["error", "warn", "info"].contains(&result["properties"]["severity"].as_str().unwrap())
        );
        assert!(result["properties"]["pointer"].is_string());
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
        assert_eq!(
            result["partialFingerprints"]["palisade/v1"]
                .as_str()
                .unwrap()
                .len(),
            32
        );
    }
    let uris: Vec<&str> = results
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(uris.contains(&"refs/paths/pet-by-id.yaml"), "{uris:?}");
    // Security rules carry a security-severity, so GitHub ranks them.
    let write = rules
        .iter()
        .find(|r| r["id"] == "owasp-write-restricted")
        .unwrap();
    assert_eq!(write["properties"]["security-severity"], "8.0");
    assert_eq!(write["defaultConfiguration"]["level"], "error");
    assert!(write["properties"]["tags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("spectral:owasp:api2:2023-write-restricted")));
}

#[test]
fn lint_sarif_without_findings_validates_too() {
    let report = report_of(&[testdata().join("lint/clean.yaml")]);
    let sarif = sarif_of(&report);
    assert_eq!(sarif["runs"][0]["results"], serde_json::json!([]));
}
