//! SARIF 2.1.0 rendering, in the subset GitHub code scanning reads.
//!
//! One run; `tool.driver` lists every enabled rule as a
//! `reportingDescriptor` (id, name, short and full description, help,
//! `defaultConfiguration.level`, and `properties.tags` plus, for security
//! rules, `properties.security-severity`). Each finding is a `result` with
//! `ruleId`, `ruleIndex`, `level`, `message.text`, one location
//! (`physicalLocation.artifactLocation.uri` relative to the scan base, and a
//! `region` with `startLine`/`startColumn` and the end when known), and
//! `partialFingerprints` under [`FINGERPRINT_KEY`]. History findings carry
//! the commit in `properties`. Run-level conditions (unreadable files) are
//! `invocations[0].toolExecutionNotifications`. Columns are Unicode code
//! points (`columnKind: unicodeCodePoints`). The output validates against
//! the OASIS SARIF 2.1.0 schema (a test checks it).

use serde_json::{json, Map, Value};

use super::{Finding, Report, RuleInfo, SeverityScale};

/// The `$schema` written into the log.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Key of our fingerprint in `result.partialFingerprints`. The `/v1` is the
/// fingerprint scheme's version: if the scheme ever changes, the key does.
pub const FINGERPRINT_KEY: &str = "palisade/v1";

/// The report as a SARIF 2.1.0 log.
pub fn to_value(report: &Report) -> Value {
    let rules: Vec<Value> = report.rules.iter().map(rule).collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = report.rules.iter().position(|r| r.id == f.rule_id);
            result(f, index, report.severity_scale)
        })
        .collect();

    let mut driver = Map::new();
    driver.insert("name".into(), json!(report.tool.name));
    driver.insert("version".into(), json!(report.tool.version));
    driver.insert("semanticVersion".into(), json!(report.tool.version));
    if let Some(uri) = &report.tool.information_uri {
        driver.insert("informationUri".into(), json!(uri));
    }
    driver.insert("rules".into(), Value::Array(rules));

    let notifications: Vec<Value> = report
        .notifications
        .iter()
        .map(|n| {
            let mut v = json!({
                "level": n.level.as_str(),
                "message": {"text": n.message},
            });
            if let Some(path) = &n.path {
                v["locations"] = json!([{
                    "physicalLocation": {"artifactLocation": {"uri": uri_reference(path)}}
                }]);
            }
            v
        })
        .collect();

    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": Value::Object(driver)},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

fn rule(r: &RuleInfo) -> Value {
    let mut properties = Map::new();
    let mut tags = r.tags.clone();
    if r.security && !tags.iter().any(|t| t == "security") {
        tags.insert(0, "security".to_owned());
    }
    properties.insert("tags".into(), json!(tags));
    if r.security {
        properties.insert(
            "security-severity".into(),
            json!(r.severity.security_severity()),
        );
    }
    let mut v = json!({
        "id": r.id,
        "name": pascal_case(&r.id),
        "shortDescription": {"text": r.description},
        "fullDescription": {"text": r.description},
        "defaultConfiguration": {"level": r.severity.sarif_level()},
        "properties": Value::Object(properties),
    });
    if let Some(help) = &r.help {
        v["help"] = json!({"text": help});
    }
    v
}

fn result(f: &Finding, rule_index: Option<usize>, scale: SeverityScale) -> Value {
    let mut region = Map::new();
    region.insert("startLine".into(), json!(f.location.line.max(1)));
    region.insert("startColumn".into(), json!(f.location.column.max(1)));
    if let Some(end_line) = f.location.end_line {
        region.insert("endLine".into(), json!(end_line.max(1)));
    }
    if let Some(end_column) = f.location.end_column {
        region.insert("endColumn".into(), json!(end_column.max(1)));
    }
    let mut v = json!({
        "ruleId": f.rule_id,
        "level": f.severity.sarif_level(),
        "message": {"text": f.message},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": uri_reference(&f.location.path)},
                "region": Value::Object(region),
            }
        }],
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
    });
    if let Some(index) = rule_index {
        v["ruleIndex"] = json!(index);
    }
    let mut properties = Map::new();
    properties.insert("severity".into(), json!(scale.label(f.severity)));
    if let Some(redacted) = &f.redacted {
        properties.insert("redacted".into(), json!(redacted));
    }
    if let Some(c) = &f.commit {
        properties.insert("commit".into(), json!(c.id));
        properties.insert("author".into(), json!(c.author));
        properties.insert("authorDate".into(), json!(c.date));
    }
    for (k, val) in &f.properties {
        properties.insert(k.clone(), json!(val));
    }
    v["properties"] = Value::Object(properties);
    v
}

/// `aws-access-key-id` → `AwsAccessKeyId` (SARIF `reportingDescriptor.name`).
fn pascal_case(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Percent-encodes a relative path into a URI reference: `/` separators,
/// unreserved characters and a few safe sub-delimiters stay as they are,
/// everything else (spaces, `%`, `#`, `?`, non-ASCII) is encoded as UTF-8
/// octets. Backslashes become `/`.
pub fn uri_reference(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            b'\\' => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    // A first segment containing ':' would read as a scheme; none of the
    // characters kept above is ':', so that cannot happen.
    out
}
