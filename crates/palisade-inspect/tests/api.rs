//! The public API: where findings are located, what they never contain,
//! each entry point, the options, and normalisation seen from outside.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use http::{HeaderMap, HeaderValue};
use palisade_inspect::{Finding, InjectionKind, InspectOptions, Inspector, Source};
use serde_json::json;

fn inspector() -> Inspector {
    Inspector::new(InspectOptions::default())
}

fn finding(kind: InjectionKind, location: &str, source: Source, rule: &'static str) -> Finding {
    Finding {
        kind,
        location: location.to_owned(),
        source,
        rule,
    }
}

// ---- locations -------------------------------------------------------------

#[test]
fn json_findings_are_located_by_pointer() {
    let body = json!({
        "customer": {"name": "Siobhán O'Brien"},
        "items": [
            {"sku": "A-1", "name": "Union Jack flag"},
            {"sku": "B-2", "name": "x' UNION SELECT password FROM users--"}
        ]
    });
    assert_eq!(
        inspector().inspect_json(&body),
        Some(finding(
            InjectionKind::Sql,
            "/items/1/name",
            Source::Body,
            "libinjection"
        ))
    );
}

#[test]
fn pointer_segments_are_escaped() {
    let body = json!({"a/b": {"c~d": ["; cat /etc/passwd"]}});
    let found = inspector().inspect_json(&body).unwrap();
    assert_eq!(found.location, "/a~1b/c~0d/0");
    assert_eq!(found.kind, InjectionKind::Command);
}

#[test]
fn a_bad_key_is_located_at_its_object() {
    let body = json!({"filter": {"user": {"$ne": null}}});
    assert_eq!(
        inspector().inspect_json(&body),
        Some(finding(
            InjectionKind::NoSql,
            "/filter/user",
            Source::Body,
            "$ne"
        ))
    );
    // At the top level the object is the whole document: the empty pointer.
    let body = json!({"$where": "sleep(100)"});
    assert_eq!(inspector().inspect_json(&body).unwrap().location, "");
    // A key that is itself a payload never appears in the location.
    let payload = "name' OR '1'='1";
    let body = json!({ "row": { payload: 1 } });
    let found = inspector().inspect_json(&body).unwrap();
    assert_eq!(
        (found.kind, found.location.as_str()),
        (InjectionKind::Sql, "/row")
    );
}

#[test]
fn every_finding_is_listed_by_the_all_variant() {
    let body = json!({
        "a": "../../etc/passwd",
        "b": {"$gt": ""},
        "c": ["fine", "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA=="]
    });
    let found: Vec<(InjectionKind, String)> = inspector()
        .inspect_json_all(&body)
        .into_iter()
        .map(|f| (f.kind, f.location))
        .collect();
    assert_eq!(
        found,
        [
            (InjectionKind::PathTraversal, "/a".to_owned()),
            (InjectionKind::NoSql, "/b".to_owned()),
            (InjectionKind::Deserialization, "/c/1".to_owned()),
        ]
    );
}

#[test]
fn query_findings_name_the_parameter() {
    let ins = inspector();
    assert_eq!(
        ins.inspect_target("/search", Some("page=2&q=1%27%20OR%20%271%27%3D%271")),
        Some(finding(
            InjectionKind::Sql,
            "query/q",
            Source::Query,
            "libinjection"
        ))
    );
    assert_eq!(
        ins.inspect_target("/login", Some("user=admin&password[$ne]=x")),
        Some(finding(
            InjectionKind::NoSql,
            "query/password",
            Source::Query,
            "$ne"
        ))
    );
    // A parameter name that is itself the payload is not echoed.
    let found = ins
        .inspect_target("/x", Some("1%27%20OR%20%271%27%3D%271=v"))
        .unwrap();
    assert_eq!(
        (found.kind, found.location.as_str()),
        (InjectionKind::Sql, "query")
    );
}

#[test]
fn path_and_header_findings() {
    let ins = Inspector::new(InspectOptions {
        headers: vec!["X-Forwarded-Path".into(), "referer".into()],
        disabled: Vec::new(),
    });
    assert_eq!(
        ins.inspect_target("/static/..%2f..%2fetc%2fpasswd", None),
        Some(finding(
            InjectionKind::PathTraversal,
            "path",
            Source::Path,
            "dotdot_segment"
        ))
    );
    let mut headers = HeaderMap::new();
    headers.insert("referer", HeaderValue::from_static("https://example.com/"));
    headers.insert(
        "x-forwarded-path",
        HeaderValue::from_static("/a;cat /etc/passwd"),
    );
    // Not configured: never looked at.
    headers.insert("x-other", HeaderValue::from_static("' OR 1=1--"));
    assert_eq!(
        ins.inspect_headers(&headers),
        Some(finding(
            InjectionKind::Command,
            "header/x-forwarded-path",
            Source::Header,
            "separator_command"
        ))
    );
    headers.remove("x-forwarded-path");
    assert_eq!(ins.inspect_headers(&headers), None);
}

#[test]
fn findings_never_carry_the_payload() {
    let payloads = [
        "' UNION SELECT password FROM users--",
        "; cat /etc/passwd",
        "../../../../etc/shadow",
        "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==",
        "O:8:\"stdClass\":1:{s:4:\"name\";s:5:\"admin\";}",
    ];
    let ins = inspector();
    for payload in payloads {
        let mut found = ins.inspect_json_all(&json!({ "v": payload, payload: payload }));
        found.extend(ins.inspect_target_all("/x", Some(&format!("p={}", urlencode(payload)))));
        found.extend(ins.inspect_raw_body(payload.as_bytes()));
        assert!(found.len() >= 3, "{payload}: {found:?}");
        for f in found {
            let shown = format!("{f:?}");
            assert!(!shown.contains(payload), "{shown} contains {payload:?}");
            assert!(f.rule.len() <= 32 && !f.rule.contains(' '), "{}", f.rule);
        }
    }
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---- normalisation, end to end ----------------------------------------------

#[test]
fn encoding_tricks_are_undone_before_detection() {
    let ins = inspector();
    let kind = |query: &str| ins.inspect_target("/x", Some(query)).map(|f| f.kind);
    // double encoding
    assert_eq!(
        kind("f=%252e%252e%252fetc%252fpasswd"),
        Some(InjectionKind::PathTraversal)
    );
    // `+` as a space in a query value
    assert_eq!(kind("q=1+UNION+SELECT+1,2,3"), Some(InjectionKind::Sql));
    // overlong UTF-8
    assert_eq!(
        kind("f=%c0%ae%c0%ae%c0%afetc"),
        Some(InjectionKind::PathTraversal)
    );
    // IIS %u
    assert_eq!(
        kind("f=%u002e%u002e%u2215etc"),
        Some(InjectionKind::PathTraversal)
    );
    // a line feed smuggled in
    assert_eq!(kind("host=127.0.0.1%0aid"), Some(InjectionKind::Command));
    // full-width lookalikes
    assert_eq!(
        kind("f=%EF%BC%8E%EF%BC%8E%EF%BC%8Fetc"),
        Some(InjectionKind::PathTraversal)
    );
    // NUL truncation, and a NUL alone in a path
    assert_eq!(
        kind("f=report.pdf%00.png"),
        Some(InjectionKind::PathTraversal)
    );
    assert_eq!(
        ins.inspect_target("/files/a%00", None).map(|f| f.rule),
        Some("nul_byte")
    );
    // JSON escapes are decoded by serde_json already.
    let body: serde_json::Value =
        serde_json::from_str(r#"{"f": "\u002e\u002e\u002fetc\u002fpasswd"}"#).unwrap();
    assert_eq!(
        ins.inspect_json(&body).map(|f| f.kind),
        Some(InjectionKind::PathTraversal)
    );
}

#[test]
fn clean_requests_pass() {
    let ins = inspector();
    assert_eq!(
        ins.inspect_target(
            "/api/v1/customers/550e8400-e29b-41d4-a716-446655440000/orders",
            Some("status=pending&sort=-created_at&q=O%27Brien&page=2&tags[]=a&filter[city]=Dublin")
        ),
        None
    );
    let body = json!({
        "name": "Marco D'Angelo",
        "notes": "Select your size from the drop-down menu; ring twice.",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "@type": "Person",
        "image": "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
    });
    assert_eq!(ins.inspect_json(&body), None);
}

// ---- raw bodies ----------------------------------------------------------------

#[test]
fn raw_bodies_binary_serializations() {
    let ins = inspector();
    let rule = |body: &[u8]| ins.inspect_raw_body(body).map(|f| (f.kind, f.rule));
    let de = InjectionKind::Deserialization;
    assert_eq!(
        rule(b"\xac\xed\x00\x05sr\x00\x11java.util.HashMap"),
        Some((de, "java_serialized_raw"))
    );
    assert_eq!(
        rule(b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix"),
        Some((de, "pickle_raw"))
    );
    assert_eq!(
        rule(b"\x00\x01\x00\x00\x00\xff\xff\xff\xff\x01\x00\x00\x00"),
        Some((de, "dotnet_binaryformatter_raw"))
    );
    // Inside a multipart part.
    let multipart =
        b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\xac\xed\x00\x05sr\r\n--b--\r\n";
    assert_eq!(rule(multipart), Some((de, "java_serialized_raw")));
    // A PNG is not an object.
    assert_eq!(rule(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"), None);
    // Protocol-0 pickle text spans lines.
    assert_eq!(
        rule(b"cos\nsystem\n(S'id'\ntR."),
        Some((de, "pickle_protocol0"))
    );
}

#[test]
fn raw_bodies_text_and_forms() {
    let ins = inspector();
    let found = ins
        .inspect_raw_body(b"user=admin&comment=fine&sort=1%20UNION%20SELECT%201,2,3")
        .unwrap();
    assert_eq!(
        (found.kind, found.location.as_str()),
        (InjectionKind::Sql, "/sort")
    );
    let found = ins
        .inspect_raw_body(b"user[$ne]=x&password[$ne]=x")
        .unwrap();
    assert_eq!(
        (found.kind, found.location.as_str()),
        (InjectionKind::NoSql, "/user")
    );
    let text = "line one is fine\nsecond line; cat /etc/passwd\n";
    let found = ins.inspect_raw_body(text.as_bytes()).unwrap();
    assert_eq!(
        (found.kind, found.location.as_str()),
        (InjectionKind::Command, "")
    );
    assert_eq!(
        ins.inspect_raw_body(b"Dear team,\nthe report is attached.\n"),
        None
    );
}

// ---- options ---------------------------------------------------------------------

#[test]
fn disabled_detectors_do_not_run() {
    let ins = Inspector::new(InspectOptions {
        headers: Vec::new(),
        disabled: vec![InjectionKind::Sql, InjectionKind::NoSql],
    });
    assert_eq!(ins.inspect_json(&json!({"q": "' OR '1'='1"})), None);
    assert_eq!(ins.inspect_json(&json!({"u": {"$ne": 1}})), None);
    assert_eq!(ins.inspect_target("/x", Some("u[$ne]=1")), None);
    assert_eq!(
        ins.inspect_json(&json!({"f": "../etc/passwd"}))
            .map(|f| f.kind),
        Some(InjectionKind::PathTraversal)
    );
}

// ---- robustness ----------------------------------------------------------------------

/// Deterministic pseudo-random inputs (xorshift) built from attack
/// fragments and random bytes: no entry point may panic.
#[test]
fn arbitrary_input_never_panics() {
    let fragments: &[&[u8]] = &[
        b"'",
        b"\"",
        b"`",
        b";",
        b"|",
        b"&&",
        b"$(",
        b"${IFS}",
        b"%",
        b"%2",
        b"%25",
        b"%c0",
        b"%u00",
        b"..",
        b"/",
        b"\\",
        b"\0",
        b"\n",
        b"{",
        b"}",
        b"[$ne]",
        b"=",
        b"--",
        b"/*",
        b"#",
        b"O:",
        b"a:1:{",
        b"rO0AB",
        b"gASV",
        b"\xac\xed\x00\x05",
        b"\x80\x04\x95",
        b"\xef\xbc\x8e",
        b"\xc0",
        b"\xff",
        b"union",
        b"select",
        b"or",
        b"1",
        b" ",
        b"cat",
        b"id",
        b"etc/passwd",
        b"c:",
        b"file:",
        b"\xe2\x88\x95",
    ];
    let ins = Inspector::new(InspectOptions {
        headers: vec!["x-a".into()],
        disabled: Vec::new(),
    });
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut bytes = Vec::new();
        for _ in 0..(next() % 12) {
            let r = next();
            if r % 5 == 0 {
                bytes.push((r >> 8) as u8);
            } else {
                bytes.extend_from_slice(fragments[(r >> 8) as usize % fragments.len()]);
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        ins.inspect_raw_body(&bytes);
        ins.inspect_target(&text, Some(&text));
        ins.inspect_json(&json!({ text.clone(): [text.clone()] }));
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut headers = HeaderMap::new();
            headers.insert("x-a", value);
            ins.inspect_headers(&headers);
        }
    }
}
