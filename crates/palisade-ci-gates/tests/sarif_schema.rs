//! SARIF output validates against the OASIS SARIF 2.1.0 JSON schema
//! (`testdata/sarif-schema-2.1.0.json`, the errata01 schema from the
//! oasis-tcs/sarif-spec repository) and has what GitHub code scanning reads.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::{positive, token};
use palisade_ci_gates::report::{Format, Notification, NotificationLevel, Report};
use palisade_ci_gates::{RuleSet, ScanOptions, Scanner};
use serde_json::Value;

fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/sarif-schema-2.1.0.json"
    ))
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["title"],
        "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    );
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

fn assert_valid(report: &Report) -> Value {
    let sarif: Value = serde_json::from_str(&report.render(Format::Sarif)).unwrap();
    let validator = schema_validator();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF invalid:\n{}", errors.join("\n"));
    sarif
}

fn sample_report() -> Report {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("dir with space")).unwrap();
    std::fs::write(
        d.join("dir with space/ünïcode #1.py"),
        format!("x = 1\nKEY = '{}'\n", token("aws-access-key-id")),
    )
    .unwrap();
    std::fs::write(d.join("id_rsa"), positive("private-key-rsa")).unwrap();
    std::fs::write(d.join(".env"), positive("generic-credential-env")).unwrap();
    let scanner = Scanner::new(
        RuleSet::builtin().unwrap(),
        ScanOptions {
            base_dir: Some(d.to_owned()),
            ..ScanOptions::default()
        },
    );
    let mut report = scanner.scan_paths(&[d]).unwrap();
    report.notifications.push(Notification {
        level: NotificationLevel::Warning,
        message: "cannot read: permission denied".into(),
        path: Some("locked file.txt".into()),
    });
    assert_eq!(report.findings.len(), 3, "{}", report.render(Format::Text));
    report
}

#[test]
fn sarif_with_findings_validates_against_the_schema() {
    assert_valid(&sample_report());
}

#[test]
fn sarif_without_findings_validates_against_the_schema() {
    let scanner = Scanner::new(RuleSet::builtin().unwrap(), ScanOptions::default());
    let sarif = assert_valid(&scanner.new_report());
    assert_eq!(sarif["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn sarif_has_what_github_code_scanning_reads() {
    let report = sample_report();
    let sarif = assert_valid(&report);
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "palisade-secrets");
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), report.rules.len());
    for rule in rules {
        assert!(rule["id"].is_string());
        assert!(rule["shortDescription"]["text"].is_string());
        assert!(rule["properties"]["security-severity"].is_string());
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for result in results {
        let rule_id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], rule_id);
        assert!(["note", "warning", "error"].contains(&result["level"].as_str().unwrap()));
        assert!(result["message"]["text"].as_str().unwrap().contains("***"));
        let loc = &result["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"].is_string());
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
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
    assert!(
        uris.contains(&"dir%20with%20space/%C3%BCn%C3%AFcode%20%231.py"),
        "{uris:?}"
    );
    let note = &run["invocations"][0]["toolExecutionNotifications"][0];
    assert_eq!(note["level"], "warning");
}

#[test]
fn sarif_never_contains_the_secrets() {
    let sarif = sample_report().render(Format::Sarif);
    assert!(!sarif.contains(&token("aws-access-key-id")));
    assert!(!sarif.contains("FAKEfakeFAKEfakeFAKEfake"), "no PEM body");
}

#[test]
fn the_schema_rejects_broken_logs() {
    // Guards against a vacuous validator: each mutation breaks the log.
    let good: Value = serde_json::from_str(&sample_report().render(Format::Sarif)).unwrap();
    let validator = schema_validator();
    assert!(validator.is_valid(&good));
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "bad level",
            Box::new(|v| v["runs"][0]["results"][0]["level"] = "fatal".into()),
        ),
        (
            "no message",
            Box::new(|v| {
                v["runs"][0]["results"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("message");
            }),
        ),
        (
            "line 0",
            Box::new(|v| {
                v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
                    ["startLine"] = 0.into()
            }),
        ),
        (
            "unknown property",
            Box::new(|v| v["runs"][0]["results"][0]["secret"] = "x".into()),
        ),
        ("wrong version", Box::new(|v| v["version"] = "2.0.0".into())),
        (
            "no driver name",
            Box::new(|v| {
                v["runs"][0]["tool"]["driver"]
                    .as_object_mut()
                    .unwrap()
                    .remove("name");
            }),
        ),
    ];
    for (name, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "{name}: accepted");
    }
}
