//! The [`Inspector`]: walks the parts of a request, normalises each value and
//! runs the detectors on it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::ControlFlow;

use crate::finding::{Finding, InjectionKind, Source};
use crate::normalize;
use crate::path::Scope;
use crate::profile::{self, Profile};
use crate::{command, deser, nosql, path, sql};

/// What to inspect and which detectors to run.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Names of the request headers whose values are inspected (matched
    /// case-insensitively; stored lower-case). Headers not listed are ignored.
    pub headers: Vec<String>,
    /// Detectors to switch off.
    pub disabled: Vec<InjectionKind>,
}

/// Inspects request data for injection and serialized-object payloads.
///
/// Built once from [`InspectOptions`] and shared (`Send + Sync`, no interior
/// state). Every `inspect_*` method returns the first [`Finding`], or `None`
/// when the data is clean; the `*_all` variants return every finding: one per
/// value, and one per offending object key (whose member is then not
/// walked, since every pointer into it would spell out the key).
#[derive(Debug, Clone)]
pub struct Inspector {
    headers: Vec<String>,
    enabled: [bool; 5],
}

/// Collects findings: stops at the first, or gathers all.
struct Sink {
    all: bool,
    found: Vec<Finding>,
}

impl Sink {
    fn new(all: bool) -> Self {
        Sink {
            all,
            found: Vec::new(),
        }
    }

    fn push(&mut self, finding: Finding) -> ControlFlow<()> {
        self.found.push(finding);
        if self.all {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    fn first(self) -> Option<Finding> {
        self.found.into_iter().next()
    }
}

impl Inspector {
    /// Builds an inspector.
    pub fn new(options: InspectOptions) -> Self {
        let mut enabled = [true; 5];
        for kind in options.disabled {
            enabled[kind.index()] = false;
        }
        Inspector {
            headers: options
                .headers
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            enabled,
        }
    }

    fn enabled(&self, kind: InjectionKind) -> bool {
        self.enabled[kind.index()]
    }

    /// Inspects the request target: `path` as received (still
    /// percent-encoded) and the raw query string without its `?`.
    ///
    /// The whole decoded path is checked for traversal, each decoded path
    /// segment and each query parameter name and value for everything.
    pub fn inspect_target(&self, path: &str, query: Option<&str>) -> Option<Finding> {
        let mut sink = Sink::new(false);
        let _ = self.target(path, query, &mut sink);
        sink.first()
    }

    /// Like [`inspect_target`](Self::inspect_target), but returns every finding.
    pub fn inspect_target_all(&self, path: &str, query: Option<&str>) -> Vec<Finding> {
        let mut sink = Sink::new(true);
        let _ = self.target(path, query, &mut sink);
        sink.found
    }

    /// Inspects the values of the headers named in
    /// [`InspectOptions::headers`] (every value of a repeated header).
    pub fn inspect_headers(&self, headers: &http::HeaderMap) -> Option<Finding> {
        for name in &self.headers {
            for value in headers.get_all(name.as_str()) {
                let text = String::from_utf8_lossy(value.as_bytes());
                if let Some((kind, rule)) = self.scan_text(&text, Scope::Value) {
                    return Some(Finding {
                        kind,
                        location: format!("header/{name}"),
                        source: Source::Header,
                        rule,
                    });
                }
            }
        }
        None
    }

    /// Inspects a parsed JSON body: every object key and every string value,
    /// located by JSON Pointer.
    pub fn inspect_json(&self, body: &serde_json::Value) -> Option<Finding> {
        let mut sink = Sink::new(false);
        let _ = self.walk_json(body, &mut String::new(), &mut sink);
        sink.first()
    }

    /// Like [`inspect_json`](Self::inspect_json), but returns every finding.
    pub fn inspect_json_all(&self, body: &serde_json::Value) -> Vec<Finding> {
        let mut sink = Sink::new(true);
        let _ = self.walk_json(body, &mut String::new(), &mut sink);
        sink.found
    }

    /// Inspects a body that is not JSON.
    ///
    /// Binary serialization headers are looked for at the start of the body
    /// and of every multipart part. A UTF-8 body is then scanned as text: a
    /// form (`a=1&b=2`) field by field (located `/<field>`), anything else
    /// line by line (located `""`, the whole body).
    pub fn inspect_raw_body(&self, body: &[u8]) -> Option<Finding> {
        let mut sink = Sink::new(false);
        let _ = self.raw_body(body, &mut sink);
        sink.first()
    }

    fn target(&self, path: &str, query: Option<&str>, sink: &mut Sink) -> ControlFlow<()> {
        let found = |kind, rule, location: String, source| Finding {
            kind,
            location,
            source,
            rule,
        };
        if self.enabled(InjectionKind::PathTraversal) {
            let whole = normalize::normalised(path);
            let whole = whole.as_deref().unwrap_or(path);
            if let Some(rule) = path::detect(whole, Scope::RequestPath, Profile::of(whole)) {
                sink.push(found(
                    InjectionKind::PathTraversal,
                    rule,
                    "path".into(),
                    Source::Path,
                ))?;
            }
        }
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let decoded = normalize::percent_decode(segment, false);
            if let Some((kind, rule)) = self.scan_text(&decoded, Scope::Value) {
                sink.push(found(kind, rule, "path".into(), Source::Path))?;
                break;
            }
        }
        for (name, value) in normalize::query_pairs(query.unwrap_or_default()) {
            if let Some((kind, rule)) = self.scan_param_name(&name) {
                let base = nosql::base_name(&name);
                let location = if kind == InjectionKind::NoSql && plain_name(base) {
                    format!("query/{base}")
                } else {
                    "query".to_owned()
                };
                sink.push(found(kind, rule, location, Source::Query))?;
                continue;
            }
            if let Some((kind, rule)) = self.scan_text(&value, Scope::Value) {
                sink.push(found(kind, rule, format!("query/{name}"), Source::Query))?;
            }
        }
        ControlFlow::Continue(())
    }

    /// A query or form parameter name: a MongoDB operator (bracketed or
    /// bare), or any other payload.
    fn scan_param_name(&self, name: &str) -> Option<(InjectionKind, &'static str)> {
        if self.enabled(InjectionKind::NoSql) {
            let decoded = normalize::normalised(name);
            let op = nosql::query_key_operator(name)
                .or_else(|| decoded.as_deref().and_then(nosql::query_key_operator));
            if let Some(op) = op {
                return Some((InjectionKind::NoSql, op));
            }
        }
        self.scan_text(name, Scope::Value)
    }

    fn walk_json(
        &self,
        value: &serde_json::Value,
        pointer: &mut String,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        match value {
            serde_json::Value::String(text) => {
                if let Some((kind, rule)) = self.scan_text(text, Scope::Value) {
                    sink.push(body_finding(kind, rule, pointer))?;
                }
            }
            serde_json::Value::Array(items) => {
                if self.enabled(InjectionKind::Deserialization) {
                    if let Some(rule) = deser::typed_array(items) {
                        sink.push(body_finding(InjectionKind::Deserialization, rule, pointer))?;
                    }
                }
                for (index, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    let _ = write!(pointer, "/{index}");
                    self.walk_json(item, pointer, sink)?;
                    pointer.truncate(len);
                }
            }
            serde_json::Value::Object(members) => {
                for (key, item) in members {
                    if let Some((kind, rule)) = self.scan_key(key, item) {
                        sink.push(body_finding(kind, rule, pointer))?;
                        // Its value is not walked: every pointer below would
                        // spell out the offending key.
                        continue;
                    }
                    let len = pointer.len();
                    pointer.push('/');
                    push_pointer_segment(pointer, key);
                    self.walk_json(item, pointer, sink)?;
                    pointer.truncate(len);
                }
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
            }
        }
        ControlFlow::Continue(())
    }

    /// An object key, with the member's value for the type-hint rules.
    fn scan_key(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Option<(InjectionKind, &'static str)> {
        if self.enabled(InjectionKind::Deserialization) {
            if let Some(rule) = deser::type_hint(key, value) {
                return Some((InjectionKind::Deserialization, rule));
            }
        }
        // Every operator starts with `$` (a full-width `＄` folds to it).
        if self.enabled(InjectionKind::NoSql) && (key.contains('$') || !key.is_ascii()) {
            let normal = normalize::fold_unicode(key);
            if let Some(op) =
                nosql::operator(&normal).or_else(|| nosql::bracketed_operator(&normal))
            {
                return Some((InjectionKind::NoSql, op));
            }
        }
        self.scan_text(key, Scope::Value)
    }

    fn raw_body(&self, body: &[u8], sink: &mut Sink) -> ControlFlow<()> {
        if self.enabled(InjectionKind::Deserialization) {
            let part_starts = std::iter::once(0).chain(
                body.windows(4)
                    .enumerate()
                    .filter(|(_, w)| *w == b"\r\n\r\n")
                    .map(|(at, _)| at + 4),
            );
            for start in part_starts {
                if let Some(rule) = body.get(start..).and_then(deser::detect_binary) {
                    return sink.push(body_finding(InjectionKind::Deserialization, rule, ""));
                }
            }
        }
        let Ok(text) = std::str::from_utf8(body) else {
            if self.enabled(InjectionKind::Deserialization) {
                let text = String::from_utf8_lossy(body);
                if let Some(rule) = deser::detect(&text, Profile::of(&text)) {
                    sink.push(body_finding(InjectionKind::Deserialization, rule, ""))?;
                }
            }
            return ControlFlow::Continue(());
        };
        if self.enabled(InjectionKind::Deserialization) {
            if let Some(rule) = deser::detect(text, Profile::of(text)) {
                sink.push(body_finding(InjectionKind::Deserialization, rule, ""))?;
            }
        }
        let trimmed = text.trim_end();
        if trimmed.contains('=') && !trimmed.contains(char::is_whitespace) {
            for (name, value) in normalize::query_pairs(trimmed) {
                if let Some((kind, rule)) = self.scan_param_name(&name) {
                    let base = nosql::base_name(&name);
                    let mut location = String::new();
                    if kind == InjectionKind::NoSql && plain_name(base) {
                        location.push('/');
                        push_pointer_segment(&mut location, base);
                    }
                    sink.push(body_finding(kind, rule, &location))?;
                    continue;
                }
                if let Some((kind, rule)) = self.scan_text(&value, Scope::Value) {
                    let mut location = String::from("/");
                    push_pointer_segment(&mut location, &name);
                    sink.push(body_finding(kind, rule, &location))?;
                }
            }
        } else {
            for line in text.lines() {
                if let Some((kind, rule)) = self.scan_text(line, Scope::Value) {
                    sink.push(body_finding(kind, rule, ""))?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Runs every enabled detector, in [`InjectionKind::ALL`] order, on the
    /// value as received and on its normalised form (when that differs), so
    /// the kind reported does not depend on which form revealed it.
    fn scan_text(&self, raw: &str, scope: Scope) -> Option<(InjectionKind, &'static str)> {
        let raw_profile = Profile::of(raw);
        // Only `%` escapes and non-ASCII characters normalise to something else.
        let normal = raw_profile
            .any(profile::PERCENT | profile::NON_ASCII)
            .then(|| normalize::normalised(raw))
            .flatten()
            .map(|text| {
                let profile = Profile::of(&text);
                (text, profile)
            });
        for kind in InjectionKind::ALL {
            if !self.enabled(kind) {
                continue;
            }
            if let Some(rule) = detect(kind, raw, scope, raw_profile) {
                return Some((kind, rule));
            }
            if let Some((text, profile)) = &normal {
                if let Some(rule) = detect(kind, text, scope, *profile) {
                    return Some((kind, rule));
                }
            }
        }
        None
    }
}

/// Runs one detector.
fn detect(kind: InjectionKind, text: &str, scope: Scope, profile: Profile) -> Option<&'static str> {
    match kind {
        InjectionKind::Deserialization => deser::detect(text, profile),
        InjectionKind::NoSql => nosql::embedded_operator(text, profile),
        InjectionKind::Command => command::detect(text, profile),
        InjectionKind::Sql => sql::detect(text, profile),
        InjectionKind::PathTraversal => path::detect(text, scope, profile),
    }
}

fn body_finding(kind: InjectionKind, rule: &'static str, pointer: &str) -> Finding {
    Finding {
        kind,
        location: pointer.to_owned(),
        source: Source::Body,
        rule,
    }
}

/// Appends `segment` to a JSON Pointer with RFC 6901 escaping.
fn push_pointer_segment(pointer: &mut String, segment: &str) {
    let escaped: Cow<'_, str> = if segment.bytes().any(|b| b == b'~' || b == b'/') {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    };
    pointer.push_str(&escaped);
}

/// A parameter name safe to echo in a location: 1–64 of `[A-Za-z0-9_.-]`.
fn plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_escaping() {
        let mut p = String::new();
        push_pointer_segment(&mut p, "a/b~c");
        assert_eq!(p, "a~1b~0c");
    }

    #[test]
    fn plain_names() {
        assert!(plain_name("user"));
        assert!(plain_name("page.size"));
        assert!(!plain_name(""));
        assert!(!plain_name("a b"));
        assert!(!plain_name(&"x".repeat(65)));
    }

    #[test]
    fn inspector_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Inspector>();
    }
}
