//! Findings, reports and their renderings, shared by every gate.
//!
//! A gate (the secret scanner in [`crate::secrets`]; the OpenAPI linter next)
//! produces a [`Report`]: the tool, the rules it ran, its [`Finding`]s, what it
//! suppressed and how much it looked at. The renderers turn a report into
//! human text ([`text`]), a stable JSON document ([`json`], also the format a
//! baseline is read from) or a SARIF 2.1.0 log ([`sarif`]) for code-scanning
//! tools. A finding never carries the raw value that made a rule fire — only
//! what a gate chose to show (for secrets, a redacted prefix) — so no
//! rendering can leak it.

pub mod json;
pub mod sarif;
pub mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`, so
/// a CI gate can fail "at or above" a threshold ([`Report::count_at_or_above`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never a reason to fail on its own.
    Info,
    /// Probably harmless (a test-mode key, an identifier that is not secret by itself).
    Low,
    /// Needs a look.
    Medium,
    /// A usable credential or a real defect.
    High,
    /// A credential with wide reach (cloud root keys, private keys).
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lower-case name used in configuration files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The SARIF `level` (`note`, `warning`, `error`).
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Info | Severity::Low => "note",
            Severity::Medium => "warning",
            Severity::High | Severity::Critical => "error",
        }
    }

    /// GitHub code scanning's `security-severity` (a CVSS-like score as a
    /// string): it maps `> 9.0` to critical, `7.0–8.9` high, `4.0–6.9` medium,
    /// `0.1–3.9` low.
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Info => "0.0",
            Severity::Low => "3.0",
            Severity::Medium => "5.5",
            Severity::High => "8.0",
            Severity::Critical => "9.5",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The words a report uses for severities. The secret scanner ranks risk
/// (`info` … `critical`); the linter speaks Spectral's and ESLint's
/// language (`info`, `warn`, `error`). Ordering, thresholds and SARIF
/// levels are the same either way; only the labels in text and JSON (and
/// the `severity` result property in SARIF) differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeverityScale {
    /// `info`, `low`, `medium`, `high`, `critical`.
    #[default]
    Risk,
    /// `info` (Info), `warn` (Low, Medium), `error` (High, Critical).
    Lint,
}

impl SeverityScale {
    /// The label of `severity` on this scale.
    pub fn label(self, severity: Severity) -> &'static str {
        match self {
            SeverityScale::Risk => severity.as_str(),
            SeverityScale::Lint => match severity {
                Severity::Info => "info",
                Severity::Low | Severity::Medium => "warn",
                Severity::High | Severity::Critical => "error",
            },
        }
    }
}

/// A string that names no [`Severity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}` (expected info, low, medium, high or critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSeverity(s.to_owned()))
    }
}

/// The program that produced a report (SARIF `tool.driver`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// Short name, e.g. `palisade-secrets`.
    pub name: String,
    /// Version string (the crate version).
    pub version: String,
    /// Where to read about the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub information_uri: Option<String>,
}

/// What a rule looks for; rendered as SARIF `reportingDescriptor`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// Stable identifier (`aws-access-key-id`); a finding's `rule_id` names it.
    pub id: String,
    /// One line, e.g. "AWS access key ID".
    pub description: String,
    /// Longer guidance: what to do about a finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The severity its findings get.
    pub severity: Severity,
    /// Free-form tags (`cloud`, `vcs`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether findings are security issues: SARIF then carries a
    /// `security-severity` so GitHub ranks them as security alerts.
    #[serde(default)]
    pub security: bool,
}

/// Where a finding is. Lines and columns are 1-based; columns count Unicode
/// code points (SARIF `columnKind: unicodeCodePoints`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Path as reported: relative to the scan's base directory, `/`-separated.
    pub path: String,
    /// First line of the flagged region.
    pub line: u32,
    /// First column of the flagged region.
    pub column: u32,
    /// Last line of the region, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u32>,
    /// Column just past the region on `end_line`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
}

/// The commit a history finding was introduced in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Commit {
    /// Full object id.
    pub id: String,
    /// Author name (no e-mail address).
    pub author: String,
    /// Author date, strict ISO 8601 as git prints it (`%aI`).
    pub date: String,
}

/// One thing a rule flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The [`RuleInfo::id`] that fired.
    pub rule_id: String,
    /// Its severity (the rule's, possibly overridden by configuration).
    pub severity: Severity,
    /// Human message; never contains the flagged value in clear.
    pub message: String,
    /// Where.
    pub location: Location,
    /// Stable identity used for baselines and SARIF `partialFingerprints`; its
    /// scheme is the gate's (see [`crate::secrets`] for the secret scanner's).
    pub fingerprint: String,
    /// What the gate shows of the flagged value (for secrets: its first
    /// characters and `***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
    /// The commit that introduced it, for history scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    /// Gate-specific extras (rendered as SARIF result `properties`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// How serious a [`Notification`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationLevel {
    /// For information.
    Note,
    /// Something was not examined (unreadable file, ...).
    Warning,
    /// Something went wrong in the tool itself.
    Error,
}

impl NotificationLevel {
    fn as_str(self) -> &'static str {
        match self {
            NotificationLevel::Note => "note",
            NotificationLevel::Warning => "warning",
            NotificationLevel::Error => "error",
        }
    }
}

/// A condition about the run itself, not about the scanned code (SARIF
/// `toolExecutionNotifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Level.
    pub level: NotificationLevel,
    /// What happened.
    pub message: String,
    /// The file concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// How much a run looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Files (or, in a history scan, file changes) examined.
    pub files_scanned: u64,
    /// Bytes examined.
    pub bytes_scanned: u64,
    /// Commits examined (history scans).
    pub commits_scanned: u64,
    /// Files not examined, by reason (`binary`, `too_large`, `excluded`, `allowlisted`).
    #[serde(default)]
    pub files_skipped: BTreeMap<String, u64>,
}

/// The outcome of one gate run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The tool.
    pub tool: Tool,
    /// Every rule that was enabled for the run.
    pub rules: Vec<RuleInfo>,
    /// What was found (suppressed findings are not here), sorted by
    /// [`Report::sort_findings`].
    pub findings: Vec<Finding>,
    /// Findings that were suppressed, by reason (`inline`, `baseline`).
    pub suppressed: BTreeMap<String, u64>,
    /// How much was looked at.
    pub stats: Stats,
    /// Conditions about the run (unreadable files, ...).
    pub notifications: Vec<Notification>,
    /// The words severities are shown with.
    pub severity_scale: SeverityScale,
}

impl Report {
    /// An empty report for `tool` with `rules`.
    pub fn new(tool: Tool, rules: Vec<RuleInfo>) -> Self {
        Report {
            tool,
            rules,
            findings: Vec::new(),
            suppressed: BTreeMap::new(),
            stats: Stats::default(),
            notifications: Vec::new(),
            severity_scale: SeverityScale::Risk,
        }
    }

    /// Whether anything was found (after suppressions). The CLI maps this
    /// (or [`Report::count_at_or_above`]) to its exit code.
    pub fn has_findings(&self) -> bool {
        !self.findings.is_empty()
    }

    /// The highest severity among the findings.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// How many findings are at or above `threshold`.
    pub fn count_at_or_above(&self, threshold: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity >= threshold)
            .count()
    }

    /// Total number of suppressed findings.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed.values().sum()
    }

    /// Sorts findings by path, line, column, rule id, then commit date, so
    /// output does not depend on scheduling.
    pub fn sort_findings(&mut self) {
        self.findings.sort_by(|a, b| {
            (&a.location, &a.rule_id, a.commit.as_ref().map(|c| &c.date)).cmp(&(
                &b.location,
                &b.rule_id,
                b.commit.as_ref().map(|c| &c.date),
            ))
        });
    }

    /// Renders in `format` as a string.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => text::render(self),
            Format::Json => format!("{:#}\n", json::to_value(self)),
            Format::Sarif => format!("{:#}\n", sarif::to_value(self)),
        }
    }

    /// Writes the rendering in `format` to `out`.
    pub fn write_to(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(self.render(format).as_bytes())
    }
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable lines and a summary.
    #[default]
    Text,
    /// The JSON document described in [`json`] (also what `--baseline` reads).
    Json,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
}

/// A string that names no [`Format`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}` (expected text, json or sarif)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Sarif => "sarif",
        })
    }
}

#[cfg(test)]
mod tests;
