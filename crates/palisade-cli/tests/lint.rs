//! `palisade lint` end to end: exit codes, --fail-on, formats, config,
//! errors naming file, line and column.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn palisade(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

const WARN_ONLY: &str = r#"openapi: 3.1.0
info: {title: t, version: "1", contact: {name: team}}
paths:
  /things:
    get:
      security: [{bearer: []}]
      responses:
        "200":
          description: ok
          headers:
            RateLimit: {schema: {type: string, maxLength: 10, pattern: "^[0-9]+$"}}
            Access-Control-Allow-Origin: {schema: {type: string, const: "null"}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
"#;

#[test]
fn exit_code_follows_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.yaml"), WARN_ONLY).unwrap();
    // Only warnings (missing 400/401/429/500 responses): passes at the default --fail-on error.
    let out = palisade(dir.path(), &["lint", "api.yaml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warn      owasp-define-error-validation"),
        "{stdout}"
    );
    assert!(stdout.contains("api.yaml:7:7"), "{stdout}");
    let out = palisade(dir.path(), &["lint", "api.yaml", "--fail-on", "warn"]);
    assert_eq!(out.status.code(), Some(1));

    // An error-level finding fails by default.
    std::fs::write(
        dir.path().join("api.yaml"),
        WARN_ONLY.replace(
            "    get:\n      security: [{bearer: []}]",
            "    delete:\n      security: []",
        ),
    )
    .unwrap();
    let out = palisade(dir.path(), &["lint", "api.yaml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error     owasp-write-restricted"),
        "{stdout}"
    );

    // ... unless the config lowers it.
    std::fs::write(
        dir.path().join("lint.toml"),
        "[rules]\nowasp-write-restricted = \"info\"\n",
    )
    .unwrap();
    let out = palisade(dir.path(), &["lint", "--config", "lint.toml", "api.yaml"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn formats_json_and_sarif_carry_pointer_and_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.yaml"), WARN_ONLY).unwrap();
    let out = palisade(dir.path(), &["lint", "api.yaml", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == "owasp-define-error-validation")
        .unwrap();
    assert_eq!(f["severity"], "warn");
    assert_eq!(f["properties"]["pointer"], "/paths/~1things/get/responses");
    assert_eq!(f["location"]["line"], 7);

    let out = palisade(
        dir.path(),
        &["lint", "api.yaml", "--format", "sarif", "-o", "lint.sarif"],
    );
    assert_eq!(out.status.code(), Some(0));
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("lint.sarif")).unwrap())
            .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
            ["uri"],
        "api.yaml"
    );
}

#[test]
fn unreadable_input_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "openapi: 3.0.3\ninfo:\n  title: [unclosed\n",
    )
    .unwrap();
    let out = palisade(dir.path(), &["lint", "bad.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.yaml:4:1:"), "{stderr}");

    let out = palisade(dir.path(), &["lint", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));

    std::fs::write(
        dir.path().join("lint.toml"),
        "[rules]\nnot-a-rule = \"off\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ok.yaml"), WARN_ONLY).unwrap();
    let out = palisade(dir.path(), &["lint", "--config", "lint.toml", "ok.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 2: rule `not-a-rule`"), "{stderr}");
}
