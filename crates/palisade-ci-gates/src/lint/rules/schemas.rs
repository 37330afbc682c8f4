//! Schema objects: open objects (API3) and unbounded values (API4), and
//! request bodies that accept undeclared fields.

use std::collections::HashSet;

use super::model::body_schemas;
use super::{Ctx, Operation};
use crate::lint::node::{Node, Value};
use crate::lint::spec::{FileId, Located, Version};

pub(super) fn check(ctx: &mut Ctx<'_>) {
    let schemas = ctx.model.schemas.clone();
    for s in &schemas {
        limits(ctx, s);
        open_objects(ctx, s);
    }
    request_bodies(ctx);
}

/// Whether a mapping has any of these keys.
fn has_any(node: &Node, keys: &[&str]) -> bool {
    keys.iter().any(|k| node.has(k))
}

/// Array, string and integer bounds.
fn limits(ctx: &mut Ctx<'_>, s: &Located<'_>) {
    let n = s.node;
    if n.has_type("array") && !n.has("maxItems") {
        ctx.hit(
            "owasp-array-limit",
            s.file,
            s.pointer.clone(),
            "array schema has no `maxItems`".to_owned(),
        );
    }
    if n.has_type("string") {
        if !has_any(n, &["maxLength", "enum", "const"]) {
            ctx.hit(
                "owasp-string-limit",
                s.file,
                s.pointer.clone(),
                "string schema has no `maxLength`, `enum` or `const`".to_owned(),
            );
        }
        if !has_any(n, &["format", "pattern", "enum", "const"]) {
            ctx.hit(
                "owasp-string-restricted",
                s.file,
                s.pointer.clone(),
                "string schema has no `format`, `pattern`, `enum` or `const`".to_owned(),
            );
        }
    }
    if n.has_type("integer") {
        let numeric = |k: &str| n.get(k).and_then(Node::as_f64).is_some();
        let (lower, upper) = match ctx.version {
            Version::V30 => (numeric("minimum"), numeric("maximum")),
            Version::V31 => (
                numeric("minimum") || numeric("exclusiveMinimum"),
                numeric("maximum") || numeric("exclusiveMaximum"),
            ),
        };
        if !lower || !upper {
            let missing = match (lower, upper) {
                (false, false) => "minimum and no maximum",
                (false, true) => "minimum",
                _ => "maximum",
            };
            ctx.hit(
                "owasp-integer-limit",
                s.file,
                s.pointer.clone(),
                format!("integer schema has no {missing}"),
            );
        }
        if !n.has("format") {
            ctx.hit(
                "owasp-integer-format",
                s.file,
                s.pointer.clone(),
                "integer schema has no `format` (int32 or int64)".to_owned(),
            );
        }
    }
}

/// Whether an `additionalProperties`/`unevaluatedProperties` value allows
/// anything: `true` or the empty schema `{}`.
fn allows_anything(v: &Node) -> bool {
    match &v.value {
        Value::Bool(b) => *b,
        Value::Map(entries) => entries.iter().all(|e| e.key.starts_with("x-")),
        _ => false,
    }
}

/// `owasp-(no|constrained)-(additional|unevaluated)-properties`.
fn open_objects(ctx: &mut Ctx<'_>, s: &Located<'_>) {
    if !s.node.has_type("object") {
        return;
    }
    let mut keywords = vec![(
        "additionalProperties",
        "owasp-no-additional-properties",
        "owasp-constrained-additional-properties",
    )];
    if ctx.version == Version::V31 {
        keywords.push((
            "unevaluatedProperties",
            "owasp-no-unevaluated-properties",
            "owasp-constrained-unevaluated-properties",
        ));
    }
    for (keyword, open_rule, constrained_rule) in keywords {
        let Some(v) = s.get(keyword) else {
            continue;
        };
        if allows_anything(v.node) {
            ctx.hit(
                open_rule,
                v.file,
                v.pointer.clone(),
                format!("object schema allows any additional property (`{keyword}: {}`): set it to false", if v.node.is_map() { "{}" } else { "true" }),
            );
        } else if v.node.is_map() && !s.node.has("maxProperties") {
            ctx.hit(
                constrained_rule,
                v.file,
                v.pointer.clone(),
                format!("object schema allows `{keyword}` but sets no `maxProperties`"),
            );
        }
    }
}

/// Whether a value of `additionalProperties`/`unevaluatedProperties`
/// closes the object: `false`, or a real schema (a typed map).
fn closes(v: &Node) -> bool {
    match &v.value {
        Value::Bool(b) => !*b,
        Value::Map(_) => !allows_anything(v),
        _ => false,
    }
}

/// `palisade-request-body-not-strict`.
fn request_bodies(ctx: &mut Ctx<'_>) {
    let ops = ctx.model.operations.clone();
    for op in &ops {
        let Some(body) = op.at.get("requestBody") else {
            continue;
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (_, schema) in body_schemas(ctx.ws, &body) {
            strict_walk(ctx, schema, false, &mut seen, &mut out);
        }
        for (file, at, message) in out {
            report_body(ctx, op, file, at, message);
        }
    }
}

fn report_body(ctx: &mut Ctx<'_>, op: &Operation<'_>, file: FileId, at: String, message: String) {
    let message = format!("request body of {}: {message}", op.label());
    ctx.hit_op("palisade-request-body-not-strict", op, file, at, message);
}

/// Collects the object schemas under `at` that accept undeclared
/// properties. `closed_by_parent`: the enclosing schema decides (an
/// `allOf` member, or a branch under `unevaluatedProperties: false`).
fn strict_walk<'a>(
    ctx: &Ctx<'a>,
    at: Located<'a>,
    closed_by_parent: bool,
    seen: &mut HashSet<((FileId, String), bool)>,
    out: &mut Vec<(FileId, String, String)>,
) {
    let Some(at) = ctx.ws.follow(at) else {
        return;
    };
    if !seen.insert((at.key(), closed_by_parent)) {
        return;
    }
    let n = at.node;
    let uneval_closed = n.get("unevaluatedProperties").is_some_and(closes);
    let addl_closed = n.get("additionalProperties").is_some_and(closes);
    let object_like = n.has_type("object") || (n.type_names().is_empty() && n.has("properties"));
    let all_of = at.get("allOf").map(|l| l.items()).unwrap_or_default();
    let composed_object = all_of.iter().any(|m| {
        ctx.ws.follow(m.clone()).is_some_and(|m| {
            m.node.has_type("object") || m.node.has("properties") || m.node.has("allOf")
        })
    });
    if !closed_by_parent && !uneval_closed {
        if composed_object {
            let fix = if ctx.version == Version::V31 {
                "add `unevaluatedProperties: false` to the composing schema"
            } else {
                "`additionalProperties: false` cannot close an `allOf` in OpenAPI 3.0: flatten the schema, or move to 3.1 and use `unevaluatedProperties: false`"
            };
            out.push((
                at.file,
                at.pointer.clone(),
                format!("object composed with `allOf` accepts undeclared properties: {fix}"),
            ));
        } else if object_like && !addl_closed {
            out.push((
                at.file,
                at.pointer.clone(),
                "object schema accepts undeclared properties: add `additionalProperties: false`"
                    .to_owned(),
            ));
        }
    }
    for member in all_of {
        strict_walk(ctx, member, true, seen, out);
    }
    for key in ["oneOf", "anyOf"] {
        for branch in at.get(key).map(|l| l.items()).unwrap_or_default() {
            strict_walk(ctx, branch, closed_by_parent || uneval_closed, seen, out);
        }
    }
    if let Some(props) = at.get("properties") {
        for (_, prop) in props.entries() {
            strict_walk(ctx, prop, false, seen, out);
        }
    }
    for key in ["items", "additionalProperties", "unevaluatedProperties"] {
        if let Some(sub) = at.get(key) {
            if sub.node.is_map() {
                strict_walk(ctx, sub, false, seen, out);
            }
        }
    }
    for item in at.get("prefixItems").map(|l| l.items()).unwrap_or_default() {
        strict_walk(ctx, item, false, seen, out);
    }
}
