//! Helpers shared by the integration tests. Fake secrets come from
//! `testdata/secrets/cases.toml`, so no test source holds one.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    rule: String,
    positive: Vec<String>,
}

/// The first positive fixture line of `rule`.
pub fn positive(rule: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/secrets/cases.toml"
    ))
    .unwrap();
    let cases: Cases = toml::from_str(&text).unwrap();
    cases
        .case
        .into_iter()
        .find(|c| c.rule == rule)
        .and_then(|c| c.positive.into_iter().next())
        .unwrap_or_else(|| panic!("no positive case for {rule}"))
}

/// The line `rule`'s first positive with everything up to the secret's
/// value (after `=` or `: `) cut off, so it can be embedded anywhere.
pub fn token(rule: &str) -> String {
    let line = positive(rule);
    let cut = line.rfind(['=', ' ']).map_or(0, |i| i + 1);
    line[cut..]
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned()
}

/// Runs git in `dir` with a fixed identity and dates; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Fixture Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.invalid")
        .env("GIT_COMMITTER_NAME", "Fixture Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.invalid")
        .env("GIT_AUTHOR_DATE", "2024-05-01T10:00:00+02:00")
        .env("GIT_COMMITTER_DATE", "2024-05-01T10:00:00+02:00")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
