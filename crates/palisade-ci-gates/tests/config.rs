//! A user's config merged over the built-in rules.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::token;
use palisade_ci_gates::{Error, RuleSet, ScanOptions, Scanner, Severity};

fn findings(rules: RuleSet, text: &str) -> Vec<(String, Severity)> {
    Scanner::new(rules, ScanOptions::default())
        .scan_bytes("x.txt", text.as_bytes())
        .into_iter()
        .map(|f| (f.rule_id, f.severity))
        .collect()
}

#[test]
fn override_changes_only_the_given_fields() {
    let builtin = RuleSet::builtin().unwrap();
    let rules = RuleSet::with_config_str(
        "cfg.toml",
        "[[rules]]\nid = \"aws-access-key-id\"\nseverity = \"low\"\n",
    )
    .unwrap();
    assert_eq!(rules.len(), builtin.len());
    let rule = rules.get("aws-access-key-id").unwrap();
    assert_eq!(rule.severity(), Severity::Low);
    assert_eq!(
        rule.regex(),
        builtin.get("aws-access-key-id").unwrap().regex()
    );
    let line = format!("k {}", token("aws-access-key-id"));
    assert_eq!(
        findings(rules, &line),
        vec![("aws-access-key-id".to_owned(), Severity::Low)]
    );
}

#[test]
fn disable_and_enabled_false_drop_rules() {
    let rules = RuleSet::with_config_str(
        "cfg.toml",
        "disable = [\"aws-access-key-id\"]\n[[rules]]\nid = \"jwt\"\nenabled = false\n",
    )
    .unwrap();
    assert!(rules.get("aws-access-key-id").is_none());
    assert!(rules.get("jwt").is_none());
    let line = format!("k {}", token("aws-access-key-id"));
    assert!(findings(rules, &line).is_empty());
}

#[test]
fn new_rules_are_added_and_can_stand_alone() {
    let config = r#"
use_default_rules = false

[[rules]]
id = "acme-api-key"
description = "ACME API key"
regex = '''\b(?P<secret>acme_[a-z0-9]{32})\b'''
keywords = ["acme_"]
severity = "high"
"#;
    let rules = RuleSet::with_config_str("cfg.toml", config).unwrap();
    assert_eq!(rules.len(), 1);
    let line = format!("key = acme_{}", "0123456789abcdef".repeat(2));
    assert_eq!(
        findings(rules, &line),
        vec![("acme-api-key".to_owned(), Severity::High)]
    );
}

#[test]
fn global_allowlist_regexes_and_stopwords_apply_to_every_rule() {
    let key = token("aws-access-key-id");
    let rules = RuleSet::with_config_str(
        "cfg.toml",
        &format!("[allowlist]\nregexes = ['''^{key}$''']\nstopwords = [\"fakekey\"]\n"),
    )
    .unwrap();
    assert!(findings(rules, &format!("k {key}")).is_empty());
}

#[test]
fn every_problem_is_reported_with_line_rule_and_field() {
    let config = r#"
disable = ["no-such-rule"]

[[rules]]
id = "broken-regex"
regex = '''(unclosed'''
keywords = ["x1"]

[[rules]]
id = "no-keywords"
regex = '''abc'''

[[rules]]
id = "bad-severity"
regex = '''abc'''
keywords = ["abc"]
severity = "severe"
secret_group = "nope"
stopword_sets = ["missing"]
checksum = "luhn"
entropy = 9.5

[[rules]]
id = "typo-in-override-id"
severity = "low"
"#;
    let err = RuleSet::with_config_str("cfg.toml", config).unwrap_err();
    let Error::RulesInvalid {
        source_name,
        errors,
    } = &err
    else {
        panic!("expected RulesInvalid, got {err}");
    };
    assert_eq!(source_name, "cfg.toml");
    let text = err.to_string();
    for needle in [
        "line 2: rule `no-such-rule`: `disable`: no rule has this id",
        "line 5: rule `broken-regex`: `regex`: invalid regex",
        "line 10: rule `no-keywords`: `keywords`",
        "rule `bad-severity`: `severity`: unknown severity `severe`",
        "rule `bad-severity`: `secret_group`",
        "rule `bad-severity`: `stopword_sets`: no stop-word set named `missing`",
        "rule `bad-severity`: `checksum`: unknown checksum `luhn`",
        "rule `bad-severity`: `entropy`",
        "rule `typo-in-override-id`: `regex`: missing",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(errors.len(), 10, "{text}");
}

#[test]
fn syntax_errors_and_unknown_fields_name_file_and_line() {
    let err = RuleSet::with_config_str("cfg.toml", "[[rules]]\nid = \"x\"\nregexp = \"a\"\n")
        .unwrap_err();
    assert!(
        matches!(err, Error::RulesSyntax { line: Some(3), .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("cfg.toml:3:"), "{err}");

    let err = RuleSet::with_config_str("cfg.toml", "disable = [").unwrap_err();
    assert!(matches!(err, Error::RulesSyntax { .. }), "{err:?}");
}

#[test]
fn config_file_is_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.toml");
    std::fs::write(&path, "disable = [\"jwt\"]\n").unwrap();
    let rules = RuleSet::with_config_file(&path).unwrap();
    assert!(rules.get("jwt").is_none());
    let err = RuleSet::with_config_file(&dir.path().join("missing.toml")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
}
