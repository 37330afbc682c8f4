//! The corpora: every benign line must pass every context untouched, every
//! attack line must be caught, with the right kind, in every context it
//! makes sense in, and the known misses must still be misses.
//!
//! Corpus format (`testdata/**/*.txt`): one value per line, no comments.
//! A line that starts with `{` or `[` and parses as JSON is a JSON document;
//! a line that is a JSON string literal (`"cos\nsystem\n…"`) stands for the
//! string it encodes (for control characters); anything else is the value
//! itself.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue};
use palisade_inspect::{Finding, InjectionKind, InspectOptions, Inspector};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

enum Entry {
    Json(serde_json::Value),
    Value(String),
}

fn entry(line: &str) -> Entry {
    if line.starts_with('{') || line.starts_with('[') {
        if let Ok(doc) = serde_json::from_str(line) {
            return Entry::Json(doc);
        }
    }
    if line.starts_with('"') {
        if let Ok(serde_json::Value::String(s)) = serde_json::from_str(line) {
            return Entry::Value(s);
        }
    }
    Entry::Value(line.to_owned())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// Escapes what cannot appear raw in a path: space, `?`, `#`, `%`-free
/// control characters; keeps the attacker's own encodings.
fn path_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            ' ' | '?' | '#' | '"' | '<' | '>' | '`' | '{' | '}' => {
                write!(out, "%{:02X}", c as u32).unwrap()
            }
            c if c.is_control() => write!(out, "%{:02X}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out
}

fn inspector() -> Inspector {
    Inspector::new(InspectOptions {
        headers: vec!["x-note".into()],
        disabled: Vec::new(),
    })
}

/// The contexts a plain value is tried in, with what each one found.
fn value_contexts(inspector: &Inspector, value: &str) -> Vec<(&'static str, Option<Finding>)> {
    let mut results = vec![
        (
            "json value",
            inspector.inspect_json(&serde_json::json!({ "v": value })),
        ),
        (
            "query value",
            inspector.inspect_target("/search", Some(&format!("q={}", encode(value)))),
        ),
        ("raw body", inspector.inspect_raw_body(value.as_bytes())),
    ];
    if let Ok(header) = HeaderValue::from_str(value) {
        let mut headers = HeaderMap::new();
        headers.insert("x-note", header);
        results.push(("header", inspector.inspect_headers(&headers)));
    }
    results
}

fn benign_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata("benign"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn benign_corpus_has_no_findings() {
    let inspector = inspector();
    let mut false_positives = Vec::new();
    let (mut total, mut checks) = (0, 0);
    for file in benign_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for line in lines(&file) {
            total += 1;
            let mut found: Vec<(&str, Finding)> = Vec::new();
            match entry(&line) {
                Entry::Json(doc) => {
                    if let Some(f) = inspector.inspect_json(&doc) {
                        found.push(("json document", f));
                    }
                }
                Entry::Value(_) => {}
            }
            for (context, finding) in value_contexts(&inspector, &line) {
                checks += 1;
                found.extend(finding.map(|f| (context, f)));
            }
            checks += 1;
            let as_key = serde_json::json!({ line.clone(): 1 });
            found.extend(inspector.inspect_json(&as_key).map(|f| ("json key", f)));
            if name == "request_targets.txt" {
                let (path, query) = match line.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (line.as_str(), None),
                };
                found.extend(inspector.inspect_target(path, query).map(|f| ("target", f)));
            }
            for (context, finding) in found {
                false_positives.push(format!(
                    "{name}: {line:?} in {context}: {:?} rule {}",
                    finding.kind, finding.rule
                ));
            }
        }
    }
    println!(
        "benign corpus: {total} lines, {checks} checks, {} false positives",
        false_positives.len()
    );
    assert!(total >= 300, "the benign corpus shrank to {total} lines");
    assert!(
        false_positives.is_empty(),
        "false positives:\n{}",
        false_positives.join("\n")
    );
}

fn attack_file(kind: InjectionKind) -> &'static str {
    match kind {
        InjectionKind::Sql => "attacks/sql.txt",
        InjectionKind::Command => "attacks/command.txt",
        InjectionKind::PathTraversal => "attacks/path_traversal.txt",
        InjectionKind::NoSql => "attacks/nosql.txt",
        InjectionKind::Deserialization => "attacks/deserialization.txt",
    }
}

/// Every context an attack line is tried in, with what each one found.
fn attack_contexts(
    inspector: &Inspector,
    kind: InjectionKind,
    line: &str,
) -> Vec<(&'static str, Option<Finding>)> {
    let mut results: Vec<(&str, Option<Finding>)> = Vec::new();
    match entry(line) {
        Entry::Json(doc) => {
            results.push(("json document", inspector.inspect_json(&doc)));
        }
        Entry::Value(_) if kind == InjectionKind::NoSql => {
            results.push((
                "query string",
                inspector.inspect_target("/login", Some(line)),
            ));
            results.push(("form body", inspector.inspect_raw_body(line.as_bytes())));
        }
        Entry::Value(value) => {
            results.extend(value_contexts(inspector, &value));
            if kind == InjectionKind::PathTraversal {
                let path = format!("/files/{}", path_escape(&value));
                results.push(("request path", inspector.inspect_target(&path, None)));
            }
        }
    }
    results
}

fn parse_kind(name: &str) -> InjectionKind {
    match name {
        "sql" => InjectionKind::Sql,
        "command" => InjectionKind::Command,
        "path_traversal" => InjectionKind::PathTraversal,
        "nosql" => InjectionKind::NoSql,
        "deserialization" => InjectionKind::Deserialization,
        other => panic!("unknown kind {other:?}"),
    }
}

/// An entry of `testdata/known_misses.txt`:
/// `kind<TAB>context<TAB>payload<TAB>reason`, `context` being `any` (the
/// payload is not in the attack corpus) or one context name (the payload is
/// in the attack corpus and caught everywhere else). `//` starts a comment
/// line. Payloads use the corpus line format.
struct KnownMiss {
    kind: InjectionKind,
    context: String,
    payload: String,
}

fn known_misses() -> Vec<KnownMiss> {
    let text = std::fs::read_to_string(testdata("known_misses.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("//"))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [kind, context, payload, reason] = fields.as_slice() else {
                panic!(
                    "known_misses.txt: expected kind<TAB>context<TAB>payload<TAB>reason: {line:?}"
                );
            };
            assert!(reason.trim().len() > 20, "{payload:?} needs a real reason");
            KnownMiss {
                kind: parse_kind(kind),
                context: (*context).to_owned(),
                payload: (*payload).to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_attack_is_caught_with_the_right_kind() {
    let inspector = inspector();
    let excused = known_misses();
    let mut failures = Vec::new();
    let mut summary = String::new();
    for kind in InjectionKind::ALL {
        let file = attack_file(kind);
        let attacks = lines(&testdata(file));
        let (mut checks, mut caught, mut lines_all_caught) = (0, 0, 0);
        for line in &attacks {
            let mut line_ok = true;
            for (context, finding) in attack_contexts(&inspector, kind, line) {
                if excused
                    .iter()
                    .any(|m| m.kind == kind && m.payload == *line && m.context == context)
                {
                    continue;
                }
                checks += 1;
                match finding {
                    Some(f) if f.kind == kind => {
                        caught += 1;
                        assert!(
                            line.len() < 3 || !f.location.contains(line.as_str()),
                            "{file}: {line:?}: location {:?} contains the payload",
                            f.location
                        );
                    }
                    Some(f) => {
                        line_ok = false;
                        failures.push(format!(
                            "{file}: {line:?} in {context}: found {:?} ({}) instead",
                            f.kind, f.rule
                        ));
                    }
                    None => {
                        line_ok = false;
                        failures.push(format!("{file}: {line:?} in {context}: missed"));
                    }
                }
            }
            lines_all_caught += usize::from(line_ok);
        }
        writeln!(
            summary,
            "{file}: {lines_all_caught}/{} lines caught ({caught}/{checks} checks)",
            attacks.len()
        )
        .unwrap();
    }
    println!("{summary}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each known miss is still missed where it says; when a detector improves,
/// the entry goes (and the payload moves to the attack corpus).
#[test]
fn known_misses_are_documented_and_still_missed() {
    let inspector = inspector();
    let misses = known_misses();
    assert!(!misses.is_empty());
    for miss in &misses {
        let in_corpus = lines(&testdata(attack_file(miss.kind))).contains(&miss.payload);
        assert_eq!(
            in_corpus,
            miss.context != "any",
            "{:?}: a payload excused in one context belongs in the attack corpus, one missed everywhere does not",
            miss.payload
        );
        for (context, finding) in attack_contexts(&inspector, miss.kind, &miss.payload) {
            if miss.context == "any" || miss.context == context {
                assert!(
                    finding.as_ref().is_none_or(|f| f.kind != miss.kind),
                    "{:?} is caught in {context} now ({finding:?}): update known_misses.txt",
                    miss.payload
                );
            }
        }
    }
}
