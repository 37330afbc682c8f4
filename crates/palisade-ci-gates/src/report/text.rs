//! Human-readable rendering: one line per finding (then, indented, the
//! commit of a history finding and the JSON Pointer of a lint finding),
//! then a summary. Severities are labelled on the report's
//! [`SeverityScale`](super::SeverityScale).
//!
//! ```text
//! src/settings.py:12:14  high      github-pat  GitHub personal access token (classic): ghp_***  [fp 5a0c1e22]
//!     introduced in 1a2b3c4d5e6f (2024-05-01T10:00:00+02:00, Alice)
//! specs/billing.yaml:54:5  error     owasp-write-restricted  write operation POST /payments is not protected …  [fp 9c1d07aa]
//!     at /paths/~1payments/post
//!
//! 1 finding (high: 1); 2 suppressed (baseline: 1, inline: 1); 120 files, 958.2 KiB scanned
//! ```

use std::fmt::Write as _;

use super::{NotificationLevel, Report, Severity};

/// Renders the report as text (ends with a newline).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .findings
        .iter()
        .map(|f| f.rule_id.len())
        .max()
        .unwrap_or(0);
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{}:{}:{}  {:<8}  {:<width$}  {}  [fp {}]",
            f.location.path,
            f.location.line,
            f.location.column,
            report.severity_scale.label(f.severity),
            f.rule_id,
            f.message,
            f.fingerprint.get(..8).unwrap_or(&f.fingerprint),
        );
        if let Some(pointer) = f.properties.get("pointer") {
            // RFC 6901: "" is the whole document ("/" would be the key "").
            let pointer = if pointer.is_empty() {
                "(the whole document)"
            } else {
                pointer
            };
            let _ = writeln!(out, "    at {pointer}");
        }
        if let Some(c) = &f.commit {
            let _ = writeln!(
                out,
                "    introduced in {} ({}, {})",
                c.id.get(..12).unwrap_or(&c.id),
                c.date,
                c.author
            );
        }
    }
    for n in &report.notifications {
        let level = match n.level {
            NotificationLevel::Note => "note",
            NotificationLevel::Warning => "warning",
            NotificationLevel::Error => "error",
        };
        match &n.path {
            Some(path) => {
                let _ = writeln!(out, "{level}: {path}: {}", n.message);
            }
            None => {
                let _ = writeln!(out, "{level}: {}", n.message);
            }
        }
    }
    if !report.findings.is_empty() || !report.notifications.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

/// The one-line summary (`1 finding (high: 1); ...`).
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    let n = report.findings.len();
    if n == 0 {
        s.push_str("no findings");
    } else {
        let _ = write!(s, "{n} finding{}", if n == 1 { "" } else { "s" });
        let mut parts: Vec<(&str, usize)> = Vec::new();
        for sev in Severity::ALL.iter().rev() {
            let count = report
                .findings
                .iter()
                .filter(|f| f.severity == *sev)
                .count();
            if count == 0 {
                continue;
            }
            let label = report.severity_scale.label(*sev);
            match parts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, c)) => *c += count,
                None => parts.push((label, count)),
            }
        }
        let parts: Vec<String> = parts
            .into_iter()
            .map(|(label, count)| format!("{label}: {count}"))
            .collect();
        let _ = write!(s, " ({})", parts.join(", "));
    }
    let suppressed = report.suppressed_total();
    if suppressed > 0 {
        let parts: Vec<String> = report
            .suppressed
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| format!("{k}: {c}"))
            .collect();
        let _ = write!(s, "; {suppressed} suppressed ({})", parts.join(", "));
    }
    let st = &report.stats;
    if st.commits_scanned > 0 {
        let _ = write!(
            s,
            "; {} commit{}, {} file change{}, {} scanned",
            st.commits_scanned,
            if st.commits_scanned == 1 { "" } else { "s" },
            st.files_scanned,
            if st.files_scanned == 1 { "" } else { "s" },
            human_bytes(st.bytes_scanned)
        );
    } else {
        let _ = write!(
            s,
            "; {} file{}, {} scanned",
            st.files_scanned,
            if st.files_scanned == 1 { "" } else { "s" },
            human_bytes(st.bytes_scanned)
        );
    }
    let skipped: u64 = st.files_skipped.values().sum();
    if skipped > 0 {
        let parts: Vec<String> = st
            .files_skipped
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| format!("{k}: {c}"))
            .collect();
        let _ = write!(s, "; {skipped} skipped ({})", parts.join(", "));
    }
    s
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
