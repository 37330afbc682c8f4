//! The JSON rendering of a [`Report`].
//!
//! ```json
//! {
//!   "version": 1,
//!   "tool": {"name": "palisade-secrets", "version": "0.1.0"},
//!   "summary": {
//!     "findings": 1,
//!     "by_severity": {"high": 1},
//!     "suppressed": {"baseline": 2, "inline": 1},
//!     "stats": {"files_scanned": 120, "bytes_scanned": 981233, "commits_scanned": 0,
//!               "files_skipped": {"binary": 3}}
//!   },
//!   "findings": [
//!     {"rule_id": "github-pat", "severity": "high", "message": "GitHub personal access token (classic): ghp_***",
//!      "location": {"path": "src/x.rs", "line": 3, "column": 12, "end_line": 3, "end_column": 52},
//!      "fingerprint": "5a0c…", "redacted": "ghp_***",
//!      "commit": {"id": "…", "author": "…", "date": "2024-05-01T10:00:00+02:00"}}
//!   ],
//!   "notifications": [{"level": "warning", "message": "…", "path": "…"}]
//! }
//! ```
//!
//! Severities are labelled on the report's
//! [`SeverityScale`](super::SeverityScale) (`high` for the secret scanner,
//! `error` for the linter); a lint finding's `properties` carry its JSON
//! `pointer`, the `operation` it was found through and the `spectral` rule
//! ids it covers.
//!
//! `version` changes only when a field changes meaning or goes away; new
//! fields may appear. A baseline is read from `findings[].fingerprint`
//! ([`fingerprints_from_str`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Report;

/// Version of the JSON document layout.
pub const JSON_VERSION: u32 = 1;

/// The report as a JSON value.
pub fn to_value(report: &Report) -> Value {
    let scale = report.severity_scale;
    let mut by_severity = BTreeMap::new();
    for f in &report.findings {
        *by_severity.entry(scale.label(f.severity)).or_insert(0u64) += 1;
    }
    let mut findings = serialize(&report.findings);
    if let Value::Array(items) = &mut findings {
        for (item, f) in items.iter_mut().zip(&report.findings) {
            item["severity"] = json!(scale.label(f.severity));
        }
    }
    json!({
        "version": JSON_VERSION,
        "tool": serialize(&report.tool),
        "summary": {
            "findings": report.findings.len(),
            "by_severity": by_severity,
            "suppressed": report.suppressed,
            "stats": serialize(&report.stats),
        },
        "findings": findings,
        "notifications": serialize(&report.notifications),
    })
}

/// Serializes a value whose `Serialize` cannot fail (plain structs with
/// string-keyed maps); a failure would be a bug and is rendered as an error
/// string rather than panicking.
fn serialize<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| Value::String(format!("<unserializable: {e}>")))
}

/// Reads the finding fingerprints out of a previous report: either this
/// crate's JSON (`findings[].fingerprint`) or a SARIF log
/// (`runs[].results[].partialFingerprints.*`).
pub fn fingerprints_from_str(text: &str) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(findings) = value.get("findings").and_then(Value::as_array) {
        return findings
            .iter()
            .enumerate()
            .map(|(i, f)| {
                f.get("fingerprint")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("findings[{i}] has no string `fingerprint`"))
            })
            .collect();
    }
    if let Some(runs) = value.get("runs").and_then(Value::as_array) {
        let mut out = Vec::new();
        for run in runs {
            for result in run
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(fp) = result
                    .get("partialFingerprints")
                    .and_then(|p| p.get(super::sarif::FINGERPRINT_KEY))
                    .and_then(Value::as_str)
                {
                    out.push(fp.to_owned());
                }
            }
        }
        return Ok(out);
    }
    Err("neither a palisade JSON report (`findings`) nor a SARIF log (`runs`)".to_owned())
}
