//! `palisade secrets scan` end to end: exit codes, formats, baselines, git history.

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

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fake AWS access key id, built at run time so this file holds none.
fn fake_key() -> String {
    format!("AKIA{}", "ZFAKE234567QWERT")
}

#[test]
fn exits_1_on_a_finding_0_when_clean_and_never_prints_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ok.py"),
        "password = os.environ['DB_PASSWORD']\n",
    )
    .unwrap();
    let clean = palisade(dir.path(), &["secrets", "scan", "."]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    std::fs::write(
        dir.path().join("settings.py"),
        format!("AWS_KEY = '{}'\n", fake_key()),
    )
    .unwrap();
    for format in ["text", "json", "sarif"] {
        let out = palisade(dir.path(), &["secrets", "scan", ".", "--format", format]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{format}: {stdout}");
        assert!(stdout.contains("aws-access-key-id"), "{format}: {stdout}");
        assert!(!stdout.contains(&fake_key()), "{format} leaks the secret");
    }
    let sarif = palisade(dir.path(), &["secrets", "scan", ".", "--format", "sarif"]);
    let log: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(
        log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "settings.py"
    );
}

#[test]
fn a_baseline_accepts_known_findings_and_a_bad_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.py"),
        format!("AWS_KEY = '{}'\n", fake_key()),
    )
    .unwrap();
    let first = palisade(
        dir.path(),
        &[
            "secrets",
            "scan",
            "settings.py",
            "--format",
            "json",
            "--output",
            "baseline.json",
        ],
    );
    assert_eq!(first.status.code(), Some(1));
    let again = palisade(
        dir.path(),
        &[
            "secrets",
            "scan",
            "settings.py",
            "--baseline",
            "baseline.json",
        ],
    );
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    std::fs::write(dir.path().join("rules.toml"), "disable = 7\n").unwrap();
    let bad = palisade(
        dir.path(),
        &["secrets", "scan", ".", "--config", "rules.toml"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("rules.toml"));
}

#[test]
fn git_history_finds_a_secret_that_was_added_and_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    std::fs::write(
        repo.join("app.env"),
        format!("AWS_ACCESS_KEY_ID={}\n", fake_key()),
    )
    .unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "add config"]);
    std::fs::write(
        repo.join("app.env"),
        "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID}\n",
    )
    .unwrap();
    git(repo, &["commit", "-qam", "use the environment"]);

    let tree = palisade(repo, &["secrets", "scan", "."]);
    assert_eq!(tree.status.code(), Some(0), "the working tree is clean now");
    let history = palisade(repo, &["secrets", "scan", "--git", ".", "--format", "json"]);
    assert_eq!(history.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!(finding["rule_id"], "aws-access-key-id");
    assert_eq!(finding["location"]["path"], "app.env");
    assert_eq!(finding["location"]["line"], 1);
    assert!(finding["commit"].is_object(), "{finding}");
}
