//! The OpenAPI security linter (`palisade lint SPEC...`).
//!
//! Reads OpenAPI 3.0 and 3.1 specs in YAML or JSON, follows local and
//! relative-file `$ref`s, and checks them against [`RULES`]: everything the
//! Spectral OWASP API Security ruleset (2023 edition) checks, under
//! `owasp-*` ids (each maps to its Spectral id), plus Palisade's own
//! `palisade-*` rules. Every finding has a rule id, a level (`error`,
//! `warn`, `info`), a message, the JSON Pointer (RFC 6901) of what it is
//! about and that thing's line and column in the file it is written in.
//! `docs/lint-rules.md` documents every rule with an example.
//!
//! A [`LintConfig`] switches rules off or changes their level and accepts
//! findings with a reason; in a spec, `x-palisade-ignore` on an operation
//! (or any object: path item, schema, server, the root) accepts findings
//! at or under it, or found through that operation:
//!
//! ```yaml
//! paths:
//!   /health:
//!     get:
//!       x-palisade-ignore:
//!         owasp-read-restricted: probed by the kubelet, which has no credentials
//! ```
//!
//! The result is a [`Report`] on the lint [`SeverityScale`], rendered like
//! every gate's (text, JSON, SARIF 2.1.0). A spec that cannot be read or
//! parsed, or is not OpenAPI 3.0/3.1, is an [`Error`] naming the file, line
//! and column.

mod config;
mod node;
mod parse;
pub mod pointer;
pub mod rules;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use config::{ConfigIgnore, LintConfig};
pub use node::{Node, Pos, Value};
pub use parse::{parse, ParseError};
pub use rules::{Level, RuleDef, RULES};
pub use spec::Version;

use crate::error::Error;
use crate::report::{
    Finding, Location, Notification, NotificationLevel, Report, RuleInfo, SeverityScale, Tool,
};
use rules::{Context, Hit};
use spec::{FileId, Workspace};

/// Where to read about the rules.
pub const RULES_DOC: &str = "docs/lint-rules.md";

/// How a run reports.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Finding paths are relative to this directory (the current one in
    /// the CLI); without it they are absolute.
    pub base_dir: Option<PathBuf>,
    /// Today's date (`YYYY-MM-DD`) for `x-sunset` checks; the system
    /// clock's (UTC) when `None`.
    pub today: Option<String>,
}

/// The linter: a configuration and options; `Send + Sync`, build once.
#[derive(Debug, Clone, Default)]
pub struct Linter {
    config: LintConfig,
    options: LintOptions,
}

/// An accepted finding's reason kind, as counted in
/// [`Report::suppressed`].
const SUPPRESSED_INLINE: &str = "x-palisade-ignore";
const SUPPRESSED_CONFIG: &str = "config";

impl Linter {
    /// A linter with this configuration.
    pub fn new(config: LintConfig, options: LintOptions) -> Self {
        Linter { config, options }
    }

    /// An empty report naming the tool and the enabled rules.
    pub fn new_report(&self) -> Report {
        let repo = env!("CARGO_PKG_REPOSITORY");
        let mut report = Report::new(
            Tool {
                name: "palisade-lint".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                information_uri: (!repo.is_empty()).then(|| repo.to_owned()),
            },
            self.config
                .enabled()
                .into_iter()
                .map(|(r, level)| rule_info(r, level))
                .collect(),
        );
        report.severity_scale = SeverityScale::Lint;
        report
    }

    /// Lints spec files, and the specs found in directories (files named
    /// `*.yaml`, `*.yml` or `*.json` with a top-level `openapi` key;
    /// `.gitignore` is honoured).
    pub fn lint_paths<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Report, Error> {
        let mut specs = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let meta = std::fs::metadata(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
            if meta.is_dir() {
                specs.extend(find_specs(path)?);
            } else {
                specs.push(path.to_owned());
            }
        }
        let mut run = Run::new(self);
        for spec in &specs {
            let (ws, root) = Workspace::load(spec, &|p| self.display_path(p))?;
            run.lint(&ws, root)?;
        }
        Ok(run.finish())
    }

    /// Lints one in-memory spec called `name`; relative `$ref`s resolve
    /// against `base_dir` when given.
    pub fn lint_str(
        &self,
        name: &str,
        text: &str,
        base_dir: Option<&Path>,
    ) -> Result<Report, Error> {
        let (ws, root) = Workspace::from_text(name, text, base_dir, &|p| self.display_path(p))?;
        let mut run = Run::new(self);
        run.lint(&ws, root)?;
        Ok(run.finish())
    }

    /// The path as reported: relative to `base_dir`, `/`-separated.
    fn display_path(&self, path: &Path) -> String {
        let rel = self
            .options
            .base_dir
            .as_ref()
            .and_then(|b| b.canonicalize().ok())
            .and_then(|b| path.strip_prefix(&b).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| path.to_owned());
        let s = rel.to_string_lossy().into_owned();
        if std::path::MAIN_SEPARATOR == '/' {
            s
        } else {
            s.replace(std::path::MAIN_SEPARATOR, "/")
        }
    }

    fn today(&self) -> String {
        self.options.today.clone().unwrap_or_else(today_utc)
    }
}

/// A rule as the report lists it.
fn rule_info(r: &RuleDef, level: Level) -> RuleInfo {
    let mut tags = vec!["openapi".to_owned()];
    if let Some(owasp) = r.owasp {
        tags.push(format!(
            "owasp-{}",
            owasp.to_ascii_lowercase().replace(':', "-")
        ));
    }
    tags.extend(r.spectral.iter().map(|s| format!("spectral:{s}")));
    let mut help = r.help.to_owned();
    if !r.spectral.is_empty() {
        help.push_str(&format!(" (Spectral: {}.)", r.spectral.join(", ")));
    }
    help.push_str(&format!(" See {RULES_DOC}#{}.", r.id));
    RuleInfo {
        id: r.id.to_owned(),
        description: r.summary.to_owned(),
        help: Some(help),
        severity: level.severity(),
        tags,
        security: r.owasp.is_some(),
    }
}

/// An `x-palisade-ignore` entry.
#[derive(Debug, Clone)]
struct InlineIgnore {
    file: FileId,
    /// The object holding the `x-palisade-ignore`.
    at: String,
    rule: &'static str,
}

/// One run over several specs: findings are deduplicated across them (a
/// shared file is reported once).
struct Run<'l> {
    linter: &'l Linter,
    report: Report,
    reported: BTreeSet<String>,
    suppressed: BTreeMap<String, &'static str>,
    files: BTreeMap<PathBuf, u64>,
    today: String,
}

impl<'l> Run<'l> {
    fn new(linter: &'l Linter) -> Self {
        Run {
            linter,
            report: linter.new_report(),
            reported: BTreeSet::new(),
            suppressed: BTreeMap::new(),
            files: BTreeMap::new(),
            today: linter.today(),
        }
    }

    fn lint(&mut self, ws: &Workspace, root: FileId) -> Result<(), Error> {
        let version = ws.version(root)?;
        for f in ws.files() {
            self.files.insert(f.path.clone(), f.bytes);
        }
        let mut hits = rules::Ctx::new(ws, root, version, self.today.clone()).run();
        let (ref_hits, remote) = rules::check_refs(ws);
        hits.extend(ref_hits);
        let (ignores, invalid) = inline_ignores(ws);
        hits.extend(invalid);
        for (file, reference) in remote {
            self.report.notifications.push(Notification {
                level: NotificationLevel::Note,
                message: format!(
                    "remote `$ref` not followed (the linter reads local files only): {reference}"
                ),
                path: Some(ws.file(file).display.clone()),
            });
        }

        // Deduplicate by place, merging the operations a hit was found through.
        let mut merged: BTreeMap<(&'static str, FileId, String), (Hit, Vec<Context>)> =
            BTreeMap::new();
        for hit in hits {
            let key = (hit.rule, hit.file, hit.pointer.clone());
            let context = hit.context.clone();
            let slot = merged.entry(key).or_insert_with(|| (hit, Vec::new()));
            if let Some(c) = context {
                if !slot.1.contains(&c) {
                    slot.1.push(c);
                }
            }
        }

        for ((rule_id, file, pointer_text), (hit, contexts)) in merged {
            let Some(rule) = rules::find(rule_id) else {
                continue;
            };
            let Some(level) = self.linter.config.level(rule) else {
                continue;
            };
            let source = ws.file(file);
            let fingerprint = fingerprint(rule.id, &source.display, &pointer_text);
            if let Some(reason) =
                self.suppression(ws, &ignores, rule_id, file, &pointer_text, &contexts)
            {
                self.suppressed.entry(fingerprint).or_insert(reason);
                continue;
            }
            if !self.reported.insert(fingerprint.clone()) {
                continue;
            }
            let pos = pointer::position(&source.root, &pointer_text);
            let mut properties = BTreeMap::new();
            properties.insert("pointer".to_owned(), pointer_text.clone());
            if let Some(op) = &hit.operation {
                properties.insert("operation".to_owned(), op.clone());
            }
            if !rule.spectral.is_empty() {
                properties.insert("spectral".to_owned(), rule.spectral.join(","));
            }
            if let Some(owasp) = rule.owasp {
                properties.insert("owasp".to_owned(), owasp.to_owned());
            }
            self.report.findings.push(Finding {
                rule_id: rule.id.to_owned(),
                severity: level.severity(),
                message: hit.message,
                location: Location {
                    path: source.display.clone(),
                    line: pos.line,
                    column: pos.column,
                    end_line: None,
                    end_column: None,
                },
                fingerprint,
                redacted: None,
                commit: None,
                properties,
            });
        }
        Ok(())
    }

    /// Why a hit is accepted, if it is: an `x-palisade-ignore` at or above
    /// it (or above every operation it was found through), or a config
    /// ignore.
    fn suppression(
        &self,
        ws: &Workspace,
        ignores: &[InlineIgnore],
        rule: &'static str,
        file: FileId,
        at: &str,
        contexts: &[Context],
    ) -> Option<&'static str> {
        let covers = |i: &InlineIgnore, f: FileId, p: &str| {
            i.rule == rule && i.file == f && pointer::is_within(p, &i.at)
        };
        if rule != "palisade-ignore-invalid" {
            let here = ignores.iter().any(|i| covers(i, file, at));
            let via_ops = !contexts.is_empty()
                && contexts
                    .iter()
                    .all(|c| ignores.iter().any(|i| covers(i, c.file, &c.pointer)));
            if here || via_ops {
                return Some(SUPPRESSED_INLINE);
            }
        }
        let path = &ws.file(file).path;
        let config = self.linter.config.ignores().iter().any(|i| {
            i.rule == rule
                && i.matches_file(path)
                && match &i.pointer {
                    None => true,
                    Some(p) => {
                        pointer::is_within(at, p)
                            || (!contexts.is_empty()
                                && contexts.iter().all(|c| {
                                    pointer::is_within(&c.pointer, p)
                                        && i.matches_file(&ws.file(c.file).path)
                                }))
                    }
                }
        });
        config.then_some(SUPPRESSED_CONFIG)
    }

    fn finish(mut self) -> Report {
        for (fp, reason) in &self.suppressed {
            if !self.reported.contains(fp) {
                *self
                    .report
                    .suppressed
                    .entry((*reason).to_owned())
                    .or_insert(0) += 1;
            }
        }
        self.report.stats.files_scanned = self.files.len() as u64;
        self.report.stats.bytes_scanned = self.files.values().sum();
        self.report.sort_findings();
        self.report
    }
}

/// Stable identity of a lint finding: rule, file and pointer (not the
/// line, so it survives edits elsewhere in the file).
fn fingerprint(rule: &str, path: &str, pointer: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"palisade-lint/v1\0");
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(pointer.as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every `x-palisade-ignore` in the loaded files, and hits for the
/// entries that are invalid (no reason, unknown rule, malformed).
fn inline_ignores(ws: &Workspace) -> (Vec<InlineIgnore>, Vec<Hit>) {
    let mut ignores = Vec::new();
    let mut invalid = Vec::new();
    for (file, source) in ws.files().iter().enumerate() {
        let mut stack: Vec<(&Node, String)> = vec![(&source.root, String::new())];
        while let Some((node, at)) = stack.pop() {
            match &node.value {
                Value::Map(entries) => {
                    for e in entries {
                        let child = pointer::push(&at, &e.key);
                        if e.key == "x-palisade-ignore" {
                            read_ignore(file, &at, &child, &e.value, &mut ignores, &mut invalid);
                        } else {
                            stack.push((&e.value, child));
                        }
                    }
                }
                Value::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        stack.push((item, pointer::push(&at, &i.to_string())));
                    }
                }
                _ => {}
            }
        }
    }
    (ignores, invalid)
}

/// An `x-palisade-ignore` entry as written: (rule, reason), or what is
/// wrong with it.
type IgnoreEntry<'a> = Result<(&'a str, Option<&'a Node>), String>;

fn read_ignore(
    file: FileId,
    holder: &str,
    at: &str,
    value: &Node,
    ignores: &mut Vec<InlineIgnore>,
    invalid: &mut Vec<Hit>,
) {
    let mut entries: Vec<(String, IgnoreEntry<'_>)> = Vec::new();
    match &value.value {
        Value::Map(map) => {
            for e in map {
                entries.push((pointer::push(at, &e.key), Ok((&e.key, Some(&e.value)))));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_at = pointer::push(at, &i.to_string());
                let entry = match &item.value {
                    Value::Str(rule) => Ok((rule.as_str(), None)),
                    Value::Map(_) if item.has("rule") => item
                        .get_str("rule")
                        .map(|rule| (rule, item.get("reason")))
                        .ok_or_else(|| "`rule` must be a rule id".to_owned()),
                    Value::Map(map) if map.len() == 1 => Ok((map[0].key.as_str(), Some(&map[0].value))),
                    _ => Err("an `x-palisade-ignore` entry is `rule-id: reason` or `{rule: rule-id, reason: ...}`".to_owned()),
                };
                entries.push((item_at, entry));
            }
        }
        _ => entries.push((
            at.to_owned(),
            Err("`x-palisade-ignore` must map rule ids to reasons (`rule-id: reason`)".to_owned()),
        )),
    }
    for (pointer, entry) in entries {
        let problem = match entry {
            Err(message) => Some(message),
            Ok((rule, reason)) => match rules::find(rule) {
                None => Some(format!(
                    "`x-palisade-ignore` names `{rule}`, which is not a rule (see {RULES_DOC})"
                )),
                Some(def) => {
                    let reason = reason.and_then(Node::as_str).map(str::trim).unwrap_or("");
                    if reason.is_empty() {
                        Some(format!(
                            "`x-palisade-ignore` of `{rule}` has no reason, so it suppresses nothing: write `{rule}: <why this is accepted>`"
                        ))
                    } else {
                        ignores.push(InlineIgnore {
                            file,
                            at: holder.to_owned(),
                            rule: def.id,
                        });
                        None
                    }
                }
            },
        };
        if let Some(message) = problem {
            invalid.push(Hit {
                rule: "palisade-ignore-invalid",
                file,
                pointer,
                message,
                operation: None,
                context: None,
            });
        }
    }
}

/// Spec files under a directory: `*.yaml`, `*.yml`, `*.json` whose text
/// has a top-level `openapi` key, in path order.
fn find_specs(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for entry in ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build()
    {
        let entry = entry.map_err(|e| Error::Io {
            path: dir.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let path = entry.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("yaml" | "yml" | "json"))
            || !entry.file_type().is_some_and(|t| t.is_file())
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        if looks_like_openapi(&text) {
            out.push(path.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a text has a top-level `openapi:` key (YAML, at column 1) or an
/// `"openapi":` member (JSON).
fn looks_like_openapi(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_end();
        let key = l
            .strip_prefix('"')
            .and_then(|r| r.strip_prefix("openapi\""))
            .or_else(|| {
                l.strip_prefix('\'')
                    .and_then(|r| r.strip_prefix("openapi'"))
            })
            .or_else(|| l.strip_prefix("openapi"));
        key.is_some_and(|rest| rest.trim_start().starts_with(':'))
    }) || text
        .split("\"openapi\"")
        .skip(1)
        .any(|rest| rest.trim_start().starts_with(':'))
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
