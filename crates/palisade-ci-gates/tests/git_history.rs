//! History scans of a repository each test builds with `git init`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::{git, token};
use palisade_ci_gates::report::Format;
use palisade_ci_gates::{Baseline, Error, RuleSet, ScanOptions, Scanner};

fn scanner(options: ScanOptions) -> Scanner {
    Scanner::new(RuleSet::builtin().unwrap(), options)
}

/// A repository where commit 2 adds a GitHub token on line 3 of
/// `config/settings.py` and commit 3 removes it again. Returns the dir and
/// the three commit ids.
fn repo_with_removed_secret() -> (tempfile::TempDir, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q"]);
    std::fs::write(d.join("README.md"), "# demo\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "initial"]);
    let c1 = git(d, &["rev-parse", "HEAD"]);

    std::fs::create_dir(d.join("config")).unwrap();
    let with_secret = format!(
        "import os\n\nGITHUB = \"{}\"\nDEBUG = False\n",
        token("github-pat")
    );
    std::fs::write(d.join("config/settings.py"), with_secret).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "add settings"]);
    let c2 = git(d, &["rev-parse", "HEAD"]);

    std::fs::write(
        d.join("config/settings.py"),
        "import os\n\nGITHUB = os.environ[\"GITHUB_TOKEN\"]\nDEBUG = False\n",
    )
    .unwrap();
    git(
        d,
        &["commit", "-q", "-am", "read the token from the environment"],
    );
    let c3 = git(d, &["rev-parse", "HEAD"]);
    (dir, [c1, c2, c3])
}

#[test]
fn secret_added_then_removed_is_found_in_history_with_commit_and_line() {
    let (dir, [_, c2, _]) = repo_with_removed_secret();
    let report = scanner(ScanOptions::default())
        .scan_git_history(dir.path(), None)
        .unwrap();
    assert_eq!(report.findings.len(), 1, "{}", report.render(Format::Text));
    let f = &report.findings[0];
    assert_eq!(f.rule_id, "github-pat");
    assert_eq!(f.location.path, "config/settings.py");
    assert_eq!((f.location.line, f.location.column), (3, 11));
    let commit = f
        .commit
        .as_ref()
        .expect("history findings carry the commit");
    assert_eq!(commit.id, c2);
    assert_eq!(commit.author, "Fixture Author");
    assert_eq!(commit.date, "2024-05-01T10:00:00+02:00");
    assert_eq!(report.stats.commits_scanned, 3);

    let text = report.render(Format::Text);
    assert!(text.contains(&c2[..12]), "{text}");
    let sarif = report.render(Format::Sarif);
    assert!(sarif.contains(&c2), "SARIF carries the commit");
    for format in [Format::Text, Format::Json, Format::Sarif] {
        assert!(!report.render(format).contains(&token("github-pat")));
    }
}

#[test]
fn secret_added_then_removed_is_not_found_in_the_working_tree() {
    let (dir, _) = repo_with_removed_secret();
    let report = scanner(ScanOptions::default())
        .scan_paths(&[dir.path()])
        .unwrap();
    assert!(!report.has_findings(), "{}", report.render(Format::Text));
    assert!(
        report.stats.files_scanned >= 2,
        "README and settings are scanned, .git is not"
    );
}

#[test]
fn since_limits_the_scan_to_later_commits() {
    let (dir, [c1, c2, _]) = repo_with_removed_secret();
    let s = scanner(ScanOptions::default());
    let after_c1 = s.scan_git_history(dir.path(), Some(&c1)).unwrap();
    assert_eq!(after_c1.findings.len(), 1);
    assert_eq!(after_c1.stats.commits_scanned, 2);
    let after_c2 = s.scan_git_history(dir.path(), Some(&c2)).unwrap();
    assert!(!after_c2.has_findings());
    assert_eq!(after_c2.stats.commits_scanned, 1);
}

#[test]
fn unknown_revision_and_non_repository_are_errors() {
    let (dir, _) = repo_with_removed_secret();
    let s = scanner(ScanOptions::default());
    let err = s
        .scan_git_history(dir.path(), Some("no-such-branch"))
        .unwrap_err();
    assert!(matches!(err, Error::Git { .. }), "{err}");
    assert!(err.to_string().contains("no-such-branch"), "{err}");
    let err = s
        .scan_git_history(dir.path(), Some("--output=/tmp/x"))
        .unwrap_err();
    assert!(matches!(err, Error::Git { .. }), "{err}");

    let plain = tempfile::tempdir().unwrap();
    let err = s.scan_git_history(plain.path(), None).unwrap_err();
    assert!(matches!(err, Error::Git { .. }), "{err}");
}

#[test]
fn empty_repository_gives_an_empty_report() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    let report = scanner(ScanOptions::default())
        .scan_git_history(dir.path(), None)
        .unwrap();
    assert!(!report.has_findings());
    assert_eq!(report.notifications.len(), 1);
}

#[test]
fn history_lines_are_file_lines_across_hunks_and_odd_paths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q"]);
    let mut lines: Vec<String> = (1..=30).map(|i| format!("line {i}")).collect();
    std::fs::write(d.join("notes me ü.txt"), lines.join("\n") + "\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "notes"]);

    lines[4] = format!("aws: {}", token("aws-access-key-id"));
    lines[24] = format!("slack: {}", token("slack-bot-token"));
    std::fs::write(d.join("notes me ü.txt"), lines.join("\n") + "\n").unwrap();
    git(d, &["commit", "-q", "-am", "two hunks"]);

    let report = scanner(ScanOptions::default())
        .scan_git_history(d, None)
        .unwrap();
    let got: Vec<(&str, &str, u32)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.rule_id.as_str(),
                f.location.path.as_str(),
                f.location.line,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("aws-access-key-id", "notes me ü.txt", 5),
            ("slack-bot-token", "notes me ü.txt", 25)
        ]
    );
}

#[test]
fn multiline_private_key_added_in_history_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q"]);
    std::fs::write(d.join("id_rsa"), common::positive("private-key-rsa") + "\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "oops"]);
    let report = scanner(ScanOptions::default())
        .scan_git_history(d, None)
        .unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].rule_id, "private-key-rsa");
    assert_eq!(
        report.findings[0].location.line, 2,
        "the key body starts on line 2"
    );
}

#[test]
fn a_history_baseline_suppresses_the_same_findings_and_matches_the_tree_scan() {
    let (dir, _) = repo_with_removed_secret();
    let first = scanner(ScanOptions::default())
        .scan_git_history(dir.path(), None)
        .unwrap();
    let baseline = Baseline::from_report_str(&first.render(Format::Json)).unwrap();
    assert_eq!(baseline.len(), 1);
    let again = scanner(ScanOptions {
        baseline: Some(baseline),
        ..ScanOptions::default()
    })
    .scan_git_history(dir.path(), None)
    .unwrap();
    assert!(!again.has_findings());
    assert_eq!(again.suppressed.get("baseline"), Some(&1));
}
