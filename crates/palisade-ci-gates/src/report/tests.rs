use std::collections::BTreeMap;

use super::*;

fn sample() -> Report {
    let mut report = Report::new(
        Tool {
            name: "t".into(),
            version: "1.0.0".into(),
            information_uri: None,
        },
        vec![RuleInfo {
            id: "some-rule".into(),
            description: "Some rule".into(),
            help: Some("Fix it.".into()),
            severity: Severity::High,
            tags: vec!["x".into()],
            security: true,
        }],
    );
    report.findings.push(Finding {
        rule_id: "some-rule".into(),
        severity: Severity::High,
        message: "Some rule: abcd***".into(),
        location: Location {
            path: "dir with space/ü.txt".into(),
            line: 3,
            column: 7,
            end_line: Some(3),
            end_column: Some(20),
        },
        fingerprint: "0123456789abcdef".into(),
        redacted: Some("abcd***".into()),
        commit: None,
        properties: BTreeMap::new(),
    });
    report.suppressed.insert("inline".into(), 2);
    report.stats.files_scanned = 4;
    report.stats.bytes_scanned = 2048;
    report
}

#[test]
fn severities_order_and_parse() {
    assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
    assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
    assert!("severe".parse::<Severity>().is_err());
    assert_eq!(Severity::Medium.sarif_level(), "warning");
}

#[test]
fn formats_parse() {
    assert_eq!("sarif".parse::<Format>(), Ok(Format::Sarif));
    assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
    assert!("xml".parse::<Format>().is_err());
}

#[test]
fn report_counts_by_threshold() {
    let r = sample();
    assert!(r.has_findings());
    assert_eq!(r.max_severity(), Some(Severity::High));
    assert_eq!(r.count_at_or_above(Severity::High), 1);
    assert_eq!(r.count_at_or_above(Severity::Critical), 0);
    assert_eq!(r.suppressed_total(), 2);
}

#[test]
fn text_has_location_rule_and_summary() {
    let text = sample().render(Format::Text);
    assert!(text.contains("dir with space/ü.txt:3:7"), "{text}");
    assert!(text.contains("some-rule"), "{text}");
    assert!(
        text.contains("1 finding (high: 1); 2 suppressed (inline: 2); 4 files, 2.0 KiB scanned"),
        "{text}"
    );
}

#[test]
fn json_round_trips_fingerprints() {
    let json = sample().render(Format::Json);
    assert_eq!(
        json::fingerprints_from_str(&json),
        Ok(vec!["0123456789abcdef".to_owned()])
    );
}

#[test]
fn sarif_fingerprints_are_readable_as_a_baseline() {
    let sarif = sample().render(Format::Sarif);
    assert_eq!(
        json::fingerprints_from_str(&sarif),
        Ok(vec!["0123456789abcdef".to_owned()])
    );
}

#[test]
fn sarif_uri_is_percent_encoded_and_rule_indexed() {
    let v = sarif::to_value(&sample());
    let result = &v["runs"][0]["results"][0];
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "dir%20with%20space/%C3%BC.txt"
    );
    assert_eq!(result["ruleIndex"], 0);
    assert_eq!(result["level"], "error");
    let rule = &v["runs"][0]["tool"]["driver"]["rules"][0];
    assert_eq!(rule["name"], "SomeRule");
    assert_eq!(rule["properties"]["security-severity"], "8.0");
}

#[test]
fn human_bytes_units() {
    assert_eq!(text::human_bytes(12), "12 B");
    assert_eq!(text::human_bytes(1536), "1.5 KiB");
    assert_eq!(text::human_bytes(50 * 1024 * 1024), "50.0 MiB");
}
