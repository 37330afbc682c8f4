//! Text renderings for a terminal: the inventory table with its risk
//! reasons and drift, and the diff of two snapshots.

use std::fmt::Write;

use comfy_table::{presets, ContentArrangement, Table};

use crate::diff::{Change, SnapshotDiff};
use crate::snapshot::{EndpointSnapshot, RiskLevel, Snapshot};

/// Shown in a table cell for a missing value.
const NONE: &str = "—";

/// The inventory as a table, one row per endpoint (SERVICE, METHOD,
/// TEMPLATE, CALLS, DENIED, CALLERS, STATUS, LAST SEEN, DATA, FLAGS, RISK),
/// then the reasons of every score at `medium` or above and every drift
/// item, so a reviewer can check each flag and score.
pub fn render_table(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let endpoints: Vec<_> = snapshot.endpoints().collect();
    let _ = writeln!(
        out,
        "{} in {}, from {} ({} counted){}",
        plural(endpoints.len() as u64, "endpoint"),
        plural(snapshot.services.len() as u64, "service"),
        plural(snapshot.records.read, "audit record"),
        snapshot.records.counted,
        snapshot
            .since
            .as_ref()
            .map(|since| format!(", since {since}"))
            .unwrap_or_default()
    );
    if endpoints.is_empty() {
        return out;
    }
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "SERVICE",
        "METHOD",
        "TEMPLATE",
        "CALLS",
        "DENIED",
        "CALLERS",
        "STATUS",
        "LAST SEEN",
        "DATA",
        "FLAGS",
        "RISK",
    ]);
    for (service, e) in &endpoints {
        table.add_row([
            (*service).to_owned(),
            e.method.clone(),
            e.template.clone(),
            e.calls.to_string(),
            e.denied.to_string(),
            e.callers.len().to_string(),
            statuses(e),
            e.last_seen
                .as_deref()
                .map_or_else(|| NONE.to_owned(), short_time),
            or_none(&e.data_classes.join(", ")),
            or_none(
                &e.flags
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            format!("{} {}", e.risk.score, e.risk.level),
        ]);
    }
    let _ = writeln!(out, "{table}");

    let risky: Vec<_> = endpoints
        .iter()
        .filter(|(_, e)| e.risk.level >= RiskLevel::Medium)
        .collect();
    if !risky.is_empty() {
        let _ = writeln!(out, "\nRisk (medium and above):");
        for (service, e) in risky {
            let reasons: Vec<String> = e
                .risk
                .reasons
                .iter()
                .map(|r| format!("+{} {}", r.points, r.reason))
                .collect();
            let _ = writeln!(
                out,
                "  {service} {} {}: {} {} = {}",
                e.method,
                e.template,
                e.risk.score,
                e.risk.level,
                reasons.join("; ")
            );
        }
    }
    let drifting: Vec<_> = endpoints
        .iter()
        .filter(|(_, e)| !e.drift.is_empty())
        .collect();
    if !drifting.is_empty() {
        let _ = writeln!(out, "\nDrift (not declared in the spec):");
        for (service, e) in drifting {
            let items: Vec<String> = e
                .drift
                .iter()
                .map(|d| format!("{d} ({}×)", d.seen))
                .collect();
            let _ = writeln!(
                out,
                "  {service} {} {}: {}",
                e.method,
                e.template,
                items.join(", ")
            );
        }
    }
    out
}

/// `200×12 404×1`.
fn statuses(e: &EndpointSnapshot) -> String {
    if e.statuses.is_empty() {
        return NONE.to_owned();
    }
    e.statuses
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-05-01T12:00:03.123456Z` → `2026-05-01 12:00:03`.
fn short_time(ts: &str) -> String {
    match (ts.get(..10), ts.get(11..19)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => ts.to_owned(),
    }
}

/// `1 endpoint`, `2 endpoints`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn or_none(text: &str) -> String {
    if text.is_empty() {
        NONE.to_owned()
    } else {
        text.to_owned()
    }
}

/// The diff as a table: one row per appeared, disappeared or changed
/// endpoint (CHANGE, SERVICE, METHOD, TEMPLATE, DETAILS).
pub fn render_diff(diff: &SnapshotDiff) -> String {
    let mut out = format!(
        "{} → {}: {} appeared, {} disappeared, {} changed\n",
        diff.old,
        diff.new,
        diff.appeared.len(),
        diff.disappeared.len(),
        diff.changed.len()
    );
    if diff.is_empty() {
        return out;
    }
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["CHANGE", "SERVICE", "METHOD", "TEMPLATE", "DETAILS"]);
    for (label, endpoints) in [
        ("appeared", &diff.appeared),
        ("disappeared", &diff.disappeared),
    ] {
        for e in endpoints {
            let flags: Vec<&str> = e.flags.iter().map(|f| f.as_str()).collect();
            table.add_row([
                label.to_owned(),
                e.service.clone(),
                e.method.clone(),
                e.template.clone(),
                format!(
                    "{} calls, risk {}{}",
                    e.calls,
                    e.risk,
                    if flags.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", flags.join(", "))
                    }
                ),
            ]);
        }
    }
    for e in &diff.changed {
        let details: Vec<String> = e.changes.iter().map(describe).collect();
        table.add_row([
            "changed".to_owned(),
            e.service.clone(),
            e.method.clone(),
            e.template.clone(),
            details.join("\n"),
        ]);
    }
    let _ = writeln!(out, "{table}");
    out
}

/// `risk: 15 low → 40 medium`, `callers: +spiffe://…/a −spiffe://…/b`.
fn describe(change: &Change) -> String {
    match (&change.before, &change.after) {
        (Some(before), Some(after)) => format!("{}: {before} → {after}", change.what),
        _ => {
            let mut parts: Vec<String> = change.added.iter().map(|a| format!("+{a}")).collect();
            parts.extend(change.removed.iter().map(|r| format!("-{r}")));
            format!("{}: {}", change.what, parts.join(" "))
        }
    }
}
