//! Working-tree scans: what is skipped, what is suppressed, what is shown.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{positive, token};
use palisade_ci_gates::report::Format;
use palisade_ci_gates::secrets::Progress;
use palisade_ci_gates::{Baseline, Error, Report, RuleSet, ScanOptions, Scanner};

fn scan(dir: &Path, options: ScanOptions) -> Report {
    Scanner::new(
        RuleSet::builtin().unwrap(),
        ScanOptions {
            base_dir: Some(dir.to_owned()),
            ..options
        },
    )
    .scan_paths(&[dir])
    .unwrap()
}

fn paths(report: &Report) -> Vec<&str> {
    report
        .findings
        .iter()
        .map(|f| f.location.path.as_str())
        .collect()
}

fn write(dir: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn baseline_accepts_known_findings_and_still_reports_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.py",
        format!("KEY = '{}'\n", token("aws-access-key-id")),
    );
    write(d, "b.env", positive("generic-credential-env") + "\n");
    let first = scan(d, ScanOptions::default());
    assert_eq!(first.findings.len(), 2);

    let baseline_file = d.join("baseline.json");
    std::fs::write(&baseline_file, first.render(Format::Json)).unwrap();
    let baseline = Baseline::from_file(&baseline_file).unwrap();

    // Lines added above the known secret do not change its fingerprint.
    write(
        d,
        "a.py",
        format!("import os\n\n\nKEY = '{}'\n", token("aws-access-key-id")),
    );
    write(d, "c.txt", format!("slack {}\n", token("slack-bot-token")));
    let second = scan(
        d,
        ScanOptions {
            baseline: Some(baseline),
            ..ScanOptions::default()
        },
    );
    assert_eq!(paths(&second), vec!["c.txt"]);
    assert_eq!(second.suppressed.get("baseline"), Some(&2));
    assert!(second
        .render(Format::Text)
        .contains("2 suppressed (baseline: 2)"));

    // A SARIF log written by the scanner works as a baseline too.
    let from_sarif = Baseline::from_report_str(&first.render(Format::Sarif)).unwrap();
    assert_eq!(from_sarif.len(), 2);
    // Anything else is refused with the file named.
    std::fs::write(&baseline_file, "{\"not\": \"a report\"}").unwrap();
    let err = Baseline::from_file(&baseline_file).unwrap_err();
    assert!(matches!(err, Error::Baseline { .. }), "{err}");
    assert!(err.to_string().contains("baseline.json"), "{err}");
}

#[test]
fn inline_allow_comment_suppresses_its_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = token("aws-access-key-id");
    write(
        d,
        "settings.py",
        format!("A = '{key}'  # palisade:allow (documented example)\nB = '{key}'\n"),
    );
    let report = scan(d, ScanOptions::default());
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].location.line, 2);
    assert_eq!(report.suppressed.get("inline"), Some(&1));
}

#[test]
fn inline_allow_on_the_begin_line_suppresses_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let pem = positive("private-key-pkcs8").replacen("-----\n", "----- palisade:allow\n", 1);
    write(dir.path(), "test_key.pem.txt", pem);
    let report = scan(dir.path(), ScanOptions::default());
    assert!(!report.has_findings(), "{}", report.render(Format::Text));
}

#[test]
fn redaction_hides_every_secret_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = [
        "aws-access-key-id",
        "github-pat",
        "slack-bot-token",
        "stripe-live-secret-key",
        "gcp-api-key",
        "npm-access-token",
    ];
    for (i, rule) in rules.iter().enumerate() {
        write(d, &format!("f{i}.txt"), format!("value {}\n", token(rule)));
    }
    write(d, "db.env", positive("postgres-url-password") + "\n");
    let report = scan(d, ScanOptions::default());
    assert_eq!(report.findings.len(), rules.len() + 1);
    for format in [Format::Text, Format::Json, Format::Sarif] {
        let out = report.render(format);
        for rule in rules {
            let secret = token(rule);
            assert!(!out.contains(&secret), "{format} shows {rule}'s secret");
            assert!(out.contains(&format!("{}***", &secret[..4])), "{format}");
        }
        assert!(
            !out.contains("Xq7-Fixture-Pw9"),
            "{format} shows the URL password"
        );
    }
    let debug = format!("{report:?}");
    assert!(
        !debug.contains(&token("github-pat")),
        "Debug shows a secret"
    );
}

#[test]
fn gitignore_is_respected_even_outside_a_git_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, ".gitignore", "secrets.env\nbuild/\n");
    write(d, "secrets.env", positive("generic-credential-env") + "\n");
    write(
        d,
        "build/out.txt",
        format!("{}\n", token("aws-access-key-id")),
    );
    write(d, "app.py", "print('hello')\n");
    assert!(!scan(d, ScanOptions::default()).has_findings());

    let all = scan(
        d,
        ScanOptions {
            respect_gitignore: false,
            ..ScanOptions::default()
        },
    );
    let mut p = paths(&all);
    p.sort_unstable();
    assert_eq!(p, vec!["build/out.txt", "secrets.env"]);
}

#[test]
fn binary_and_non_utf8_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = token("aws-access-key-id");
    let mut binary = b"\x7fELF\x02\x01\x01\0\0\0".to_vec();
    binary.extend_from_slice(key.as_bytes());
    write(d, "tool.bin", binary);
    let mut latin = b"caf\xe9 \xff\xfe ".to_vec();
    latin.extend_from_slice(key.as_bytes());
    write(d, "legacy.dat", latin);
    write(d, "text.txt", "nothing to see\n");
    let report = scan(d, ScanOptions::default());
    assert!(!report.has_findings(), "{}", report.render(Format::Text));
    assert_eq!(report.stats.files_skipped.get("binary"), Some(&2));
    assert_eq!(report.stats.files_scanned, 1);
}

#[test]
fn vendored_lock_and_minified_files_are_skipped_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = format!("var k = '{}';\n", token("aws-access-key-id"));
    for rel in [
        "node_modules/lib/index.js",
        "vendor/github.com/x/y.go",
        "web/app.min.js",
        "package-lock.json",
        "Cargo.lock",
        "go.sum",
    ] {
        write(d, rel, &line);
    }
    write(d, "src/app.js", &line);
    let report = scan(d, ScanOptions::default());
    assert_eq!(paths(&report), vec!["src/app.js"]);

    let everything = scan(
        d,
        ScanOptions {
            default_excludes: false,
            ..ScanOptions::default()
        },
    );
    assert_eq!(everything.findings.len(), 7);

    // A path named explicitly is scanned even if excluded by default.
    let scanner = Scanner::new(RuleSet::builtin().unwrap(), ScanOptions::default());
    let explicit = scanner.scan_paths(&[d.join("package-lock.json")]).unwrap();
    assert_eq!(explicit.findings.len(), 1);
}

#[test]
fn dotfiles_are_scanned_but_not_the_git_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, ".env", positive("generic-credential-env") + "\n");
    write(
        d,
        ".git/config",
        format!("{}\n", token("aws-access-key-id")),
    );
    let report = scan(d, ScanOptions::default());
    assert_eq!(paths(&report), vec![".env"]);
}

#[test]
fn files_over_the_size_limit_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut big = "x = 1\n".repeat(2000);
    big.push_str(&format!("{}\n", token("aws-access-key-id")));
    write(d, "big.txt", &big);
    let report = scan(
        d,
        ScanOptions {
            max_file_size: 1024,
            ..ScanOptions::default()
        },
    );
    assert!(!report.has_findings());
    assert_eq!(report.stats.files_skipped.get("too_large"), Some(&1));
}

#[test]
fn config_path_allowlist_skips_matching_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = format!("{}\n", token("aws-access-key-id"));
    write(d, "fixtures/keys.txt", &line);
    write(d, "deep/x/snapshot.snap", &line);
    write(d, "src/keys.txt", &line);
    let rules = RuleSet::with_config_str(
        "palisade-secrets.toml",
        "[allowlist]\npaths = [\"fixtures/**\", \"*.snap\"]\n",
    )
    .unwrap();
    let report = Scanner::new(
        rules,
        ScanOptions {
            base_dir: Some(d.to_owned()),
            ..ScanOptions::default()
        },
    )
    .scan_paths(&[d])
    .unwrap();
    assert_eq!(paths(&report), vec!["src/keys.txt"]);
    assert_eq!(report.stats.files_skipped.get("allowlisted"), Some(&2));
}

#[test]
fn missing_path_is_an_error_naming_it() {
    let scanner = Scanner::new(RuleSet::builtin().unwrap(), ScanOptions::default());
    let err = scanner.scan_paths(&["/no/such/dir"]).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}

#[test]
fn findings_are_sorted_and_located_by_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = token("aws-access-key-id");
    for name in ["c.txt", "a.txt", "b.txt"] {
        write(d, name, format!("one\r\ntwo  ü {key}\r\n"));
    }
    let report = scan(d, ScanOptions::default());
    assert_eq!(paths(&report), vec!["a.txt", "b.txt", "c.txt"]);
    let loc = &report.findings[0].location;
    assert_eq!((loc.line, loc.column), (2, 8), "columns count characters");
    assert_eq!(loc.end_column, Some(8 + key.len() as u32));
}

#[test]
fn secrets_on_very_long_lines_are_found_in_windows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = token("aws-access-key-id");
    let filler = "a=1;".repeat(10_000);
    write(d, "bundle.js", format!("{filler}var k='{key}';{filler}\n"));
    let report = scan(d, ScanOptions::default());
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].location.column, 40_000 + 8);
}

#[test]
fn a_specific_rule_wins_over_the_generic_one_on_the_same_value() {
    let scanner = Scanner::new(RuleSet::builtin().unwrap(), ScanOptions::default());
    let line = format!("api_token = \"{}\"\n", token("stripe-live-secret-key"));
    let found = scanner.scan_bytes("x.py", line.as_bytes());
    let rules: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(rules, vec!["stripe-live-secret-key"]);
    // A service-account key is one finding, not also a PKCS#8 key.
    let sa = positive("gcp-service-account-key");
    let found = scanner.scan_bytes("sa.json", sa.as_bytes());
    let rules: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(rules, vec!["gcp-service-account-key"]);
}

#[derive(Default)]
struct Counting {
    begun: AtomicU64,
    items: AtomicU64,
    finished: AtomicU64,
}

impl Progress for Counting {
    fn begin(&self, _what: &str, _total: Option<u64>) {
        self.begun.fetch_add(1, Ordering::Relaxed);
    }
    fn advance(&self, items: u64, _bytes: u64) {
        self.items.fetch_add(items, Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn progress_hook_sees_every_scanned_file() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..25 {
        write(dir.path(), &format!("d{}/f{i}.txt", i % 4), "hello\n");
    }
    let progress = Arc::new(Counting::default());
    let scanner = Scanner::new(RuleSet::builtin().unwrap(), ScanOptions::default())
        .with_progress(progress.clone());
    let report = scanner.scan_paths(&[dir.path()]).unwrap();
    assert_eq!(report.stats.files_scanned, 25);
    assert_eq!(progress.items.load(Ordering::Relaxed), 25);
    assert_eq!(progress.begun.load(Ordering::Relaxed), 1);
    assert_eq!(progress.finished.load(Ordering::Relaxed), 1);
}
