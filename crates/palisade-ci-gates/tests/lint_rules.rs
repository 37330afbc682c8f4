//! Every lint rule has a fixture that triggers it and one that does not
//! (`testdata/lint/rules/<rule>.bad.yaml` / `.good.yaml`). A bad fixture
//! lists, in `# expect: <JSON Pointer> @ <line>:<column>` comments, exactly
//! the findings of its rule, where they point and where that is in the file.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use palisade_ci_gates::lint::RULES;
use palisade_ci_gates::{LintConfig, LintOptions, Linter, Report};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lint/rules")
}

fn linter() -> Linter {
    Linter::new(
        LintConfig::default(),
        LintOptions {
            base_dir: Some(rules_dir()),
            today: Some("2026-01-01".to_owned()),
        },
    )
}

fn lint(file: &Path) -> Report {
    linter()
        .lint_paths(&[file])
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// (pointer, "line:column") of each finding of `rule`.
fn found(report: &Report, rule: &str) -> BTreeSet<(String, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.rule_id == rule)
        .map(|f| {
            (
                f.properties["pointer"].clone(),
                format!("{}:{}", f.location.line, f.location.column),
            )
        })
        .collect()
}

fn expected(file: &Path) -> BTreeSet<(String, String)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (pointer, pos) = e
                .rsplit_once(" @ ")
                .unwrap_or_else(|| panic!("{}: `# expect: POINTER @ L:C`", file.display()));
            (pointer.to_owned(), pos.to_owned())
        })
        .collect()
}

#[test]
fn every_rule_fires_on_its_bad_fixture_exactly_where_expected() {
    let mut failures = Vec::new();
    for rule in RULES {
        let bad = rules_dir().join(format!("{}.bad.yaml", rule.id));
        assert!(bad.is_file(), "no fixture {}", bad.display());
        let want = expected(&bad);
        assert!(!want.is_empty(), "{}: no `# expect:` lines", bad.display());
        let got = found(&lint(&bad), rule.id);
        if got != want {
            failures.push(format!(
                "{}:\n  expected {want:?}\n  found    {got:?}",
                rule.id
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_rule_fires_on_its_good_fixture() {
    let mut failures = Vec::new();
    for rule in RULES {
        let good = rules_dir().join(format!("{}.good.yaml", rule.id));
        assert!(good.is_file(), "no fixture {}", good.display());
        let got = found(&lint(&good), rule.id);
        if !got.is_empty() {
            failures.push(format!("{}: {got:?}", rule.id));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_belongs_to_a_rule() {
    let ids: BTreeSet<&str> = RULES.iter().map(|r| r.id).collect();
    for entry in std::fs::read_dir(rules_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let id = name
            .strip_suffix(".bad.yaml")
            .or_else(|| name.strip_suffix(".good.yaml"))
            .unwrap_or_else(|| panic!("unexpected file {name}"));
        assert!(ids.contains(id), "{name} names no rule");
    }
}

#[test]
fn the_clean_spec_has_no_findings_at_all() {
    let clean = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lint/clean.yaml");
    let report = lint(&clean);
    assert!(
        report.findings.is_empty(),
        "{}",
        report.render(palisade_ci_gates::Format::Text)
    );
    assert_eq!(report.rules.len(), RULES.len());
}
