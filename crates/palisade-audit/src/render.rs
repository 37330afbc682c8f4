//! Human (table) and machine (JSON lines) renderings of records.

use comfy_table::{presets, ContentArrangement, Table};
use time::UtcOffset;

use crate::record::{AuditRecord, Direction};

/// Shown in a table cell for a missing value.
const NONE: &str = "—";

/// Renders records as a table for a terminal, followed by an `N records`
/// line.
///
/// Columns: TIME (UTC, `HH:MM:SS.mmm`), DIR (`in`/`out`: which side of the call
/// the recording sidecar was on), SERVICE, CALLER (the full SPIFFE ID,
/// wrapped rather than shortened, since the trust domain matters), METHOD,
/// PATH, DECISION, STATUS, CODE, POLICIES. Missing values show as `—`.
pub fn render_table(records: &[AuditRecord]) -> String {
    let mut table = build_table(records);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    finish(&table, records.len())
}

/// Renders records as JSON lines: one compact object per line, each ending
/// in a newline, the same format the JSON lines sink writes.
pub fn render_json_lines(records: &[AuditRecord]) -> String {
    let mut out = String::new();
    for record in records {
        out.push_str(&json_line(record));
        out.push('\n');
    }
    out
}

/// One record as compact JSON, without the newline.
pub(crate) fn json_line(record: &AuditRecord) -> String {
    match serde_json::to_string(record) {
        Ok(line) => line,
        // Not reachable in practice: every field serialises to a JSON string,
        // number, list of strings or null. Still, degrade to a line naming the
        // record instead of panicking inside the writer.
        Err(err) => {
            tracing::error!(request_id = %record.request_id, error = %err, "cannot encode audit record as JSON");
            format!(
                "{{\"request_id\":{},\"encoding_error\":{}}}",
                serde_json::Value::from(record.request_id.as_str()),
                serde_json::Value::from(err.to_string()),
            )
        }
    }
}

/// The table with its header and rows, before width handling.
fn build_table(records: &[AuditRecord]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "TIME", "DIR", "SERVICE", "CALLER", "METHOD", "PATH", "DECISION", "STATUS", "CODE",
        "POLICIES",
    ]);
    for record in records {
        let ts = record.ts.to_offset(UtcOffset::UTC);
        let policies = if record.policies.is_empty() {
            NONE.to_owned()
        } else {
            record.policies.join(", ")
        };
        table.add_row([
            format!(
                "{:02}:{:02}:{:02}.{:03}",
                ts.hour(),
                ts.minute(),
                ts.second(),
                ts.millisecond()
            ),
            match record.direction {
                Direction::Inbound => "in".to_owned(),
                Direction::Outbound => "out".to_owned(),
            },
            record.service.clone(),
            or_none(record.caller.as_deref()),
            or_none(record.method.as_deref()),
            or_none(record.path.as_deref()),
            record.decision.as_str().to_owned(),
            record
                .status
                .map_or_else(|| NONE.to_owned(), |status| status.to_string()),
            or_none(record.code.as_deref()),
            policies,
        ]);
    }
    table
}

fn or_none(value: Option<&str>) -> String {
    value.unwrap_or(NONE).to_owned()
}

/// The table followed by the record count line.
fn finish(table: &Table, n: usize) -> String {
    let noun = if n == 1 { "record" } else { "records" };
    format!("{table}\n{n} {noun}\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use time::macros::datetime;

    use super::*;
    use crate::record::{AuthMethod, Decision, Direction};

    fn record() -> AuditRecord {
        AuditRecord {
            ts: datetime!(2026-11-30 08:24:36.123456 UTC),
            request_id: "req-1".to_owned(),
            caller: Some("spiffe://palisade.test/ns/shop/sa/checkout".to_owned()),
            auth: AuthMethod::Mtls,
            service: "payments".to_owned(),
            method: Some("POST".to_owned()),
            path: Some("/charges".to_owned()),
            route: Some("/charges".to_owned()),
            decision: Decision::Allow,
            code: None,
            policies: vec!["allow-checkout".to_owned(), "baseline".to_owned()],
            status: Some(201),
            latency_us: 1_500,
            bytes_in: 10,
            bytes_out: 20,
            data_classes: vec![],
            peer: Some("127.0.0.1:5555".to_owned()),
            direction: Direction::Inbound,
            detail: None,
            findings: Vec::new(),
            ratelimit_degraded: false,
            shape: None,
        }
    }

    /// Renders at a fixed, wide width so the assertions do not depend on the
    /// terminal running the tests.
    fn render_wide(records: &[AuditRecord]) -> String {
        let mut table = build_table(records);
        table.set_content_arrangement(ContentArrangement::Dynamic);
        table.set_width(400);
        finish(&table, records.len())
    }

    #[test]
    fn table_shows_every_column_the_full_caller_and_a_count() {
        let handshake_refused = AuditRecord {
            caller: None,
            method: None,
            path: None,
            route: None,
            decision: Decision::Deny,
            code: Some("palisade.tls.handshake_failed".to_owned()),
            policies: vec![],
            status: None,
            ..record()
        };
        let out = render_wide(&[record(), handshake_refused]);
        for header in [
            "TIME", "DIR", "SERVICE", "CALLER", "METHOD", "PATH", "DECISION", "STATUS", "CODE",
            "POLICIES",
        ] {
            assert!(out.contains(header), "missing {header} in\n{out}");
        }
        assert!(out.contains("08:24:36.123"), "{out}");
        assert!(
            out.contains("spiffe://palisade.test/ns/shop/sa/checkout"),
            "{out}"
        );
        assert!(out.contains("allow-checkout, baseline"), "{out}");
        assert!(out.contains("201"), "{out}");
        assert!(out.contains("palisade.tls.handshake_failed"), "{out}");
        let denied_row = out
            .lines()
            .find(|line| line.contains("deny"))
            .expect("deny row");
        assert!(denied_row.matches(NONE).count() >= 5, "{denied_row}");
        assert_eq!(out.lines().last(), Some("2 records"));
    }

    #[test]
    fn table_count_line_is_singular_for_one_record() {
        assert_eq!(render_wide(&[record()]).lines().last(), Some("1 record"));
        assert_eq!(render_table(&[]).lines().last(), Some("0 records"));
    }

    #[test]
    fn json_lines_render_one_parseable_object_per_record() {
        let out = render_json_lines(&[record(), record()]);
        assert_eq!(out.lines().count(), 2);
        assert!(out.ends_with('\n'));
        for line in out.lines() {
            let back: AuditRecord = serde_json::from_str(line).unwrap();
            assert_eq!(back, record());
        }
    }
}
