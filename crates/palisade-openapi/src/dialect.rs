//! The spec's request schemas as one JSON Schema 2020-12 document.
//!
//! Request validation registers a single document with jsonschema, so that a
//! `$ref` into `#/components/...` (or to another operation's schema) resolves
//! as it does in the spec. The document holds the spec's `components` and,
//! under `paths`, each operation's `parameters` (merged with the path item's)
//! and `requestBody`, at the pointers an operation's own fields have in the
//! spec (`/paths/~1orders/post/requestBody`).
//!
//! Before it is registered, every schema reachable from a request schema
//! (through subschemas and `$ref`s) is rewritten:
//!
//! - OpenAPI 3.0 schemas are translated into 2020-12 ([`translate_30`]).
//! - A property whose schema is `readOnly: true` is dropped from its object's
//!   `required` list: it is required in responses only.
//! - In strict mode, `unevaluatedProperties: false` is added to each schema
//!   that is applied to an instance of its own (a property value, an array
//!   item, a body) and declares members somewhere in place (`properties` or
//!   `patternProperties` of itself or of what it reaches through `allOf`,
//!   `anyOf`, `oneOf`, `if`/`then`/`else`, `dependentSchemas` and `$ref`).
//!   `unevaluatedProperties` sees through those keywords, so a body composed
//!   with `allOf` keeps every member its parts declare. An `anyOf`/`oneOf`
//!   branch that accepts any object (`type: object` and nothing about its
//!   members) gets `unevaluatedProperties: true`, so that strict mode does
//!   not close what the spec left open.
//!
//! Schemas at the top of a request schema (a body's or parameter's `schema`)
//! are left as they are and wrapped when compiled ([`root_schema`]), so that
//! a component schema referenced from inside an `allOf` is never closed.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::spec::ApiSpec;

/// The URI the document is registered under; `$ref`s resolve against it.
pub(crate) const DOCUMENT_URI: &str = "urn:palisade:openapi";

/// Which schema dialect the spec's schemas are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAPI 3.0: an extended subset of JSON Schema draft 5 (`nullable`,
    /// boolean `exclusiveMinimum`, `example`, `discriminator`...).
    OpenApi30,
    /// OpenAPI 3.1: JSON Schema 2020-12.
    OpenApi31,
}

impl Dialect {
    /// The dialect of a spec with this `openapi` version.
    pub(crate) fn of(version: &str) -> Dialect {
        if version.starts_with("3.0.") {
            Dialect::OpenApi30
        } else {
            Dialect::OpenApi31
        }
    }
}

/// A `$ref` that cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefError {
    /// JSON Pointer of the object holding the `$ref`.
    pub(crate) pointer: String,
    /// The reference as written (JSON-encoded if it is not a string).
    pub(crate) reference: String,
    /// Why it cannot be followed.
    pub(crate) reason: &'static str,
}

/// Keywords whose value is one subschema.
const SINGLE: [&str; 12] = [
    "not",
    "if",
    "then",
    "else",
    "additionalProperties",
    "items",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas (`items` in old drafts too).
const ARRAYS: [&str; 5] = ["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value maps names to subschemas.
const MAPS: [&str; 3] = ["properties", "patternProperties", "dependentSchemas"];

/// Keywords holding one subschema applied to a value inside the instance.
const ENTRY_SINGLE: [&str; 6] = [
    "additionalProperties",
    "items",
    "contains",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
];
/// Keywords mapping names to subschemas applied to values inside the instance.
const ENTRY_MAPS: [&str; 2] = ["properties", "patternProperties"];

/// Keywords that say something about an object's members.
const MEMBER_KEYWORDS: [&str; 6] = [
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "required",
    "dependentRequired",
];

/// Escapes one JSON Pointer reference token (`~` → `~0`, `/` → `~1`).
pub(crate) fn escape(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

/// The `$ref` URI of a pointer into the document, percent-encoding what a
/// URI fragment cannot hold (`{`, `}`, spaces, `%`...).
pub(crate) fn pointer_uri(pointer: &str) -> String {
    let mut uri = String::with_capacity(DOCUMENT_URI.len() + 1 + pointer.len());
    uri.push_str(DOCUMENT_URI);
    uri.push('#');
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// The JSON Pointer a local reference (`#/components/schemas/Order`) names,
/// percent-decoded; `None` for a reference to another document.
pub(crate) fn local_pointer(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    let bytes = fragment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let hex = fragment.get(at + 1..at + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(byte);
            at += 1;
        }
    }
    let pointer = String::from_utf8(decoded).ok()?;
    (pointer.is_empty() || pointer.starts_with('/')).then_some(pointer)
}

/// Follows the `$ref` of an OpenAPI object (a parameter, a request body)
/// until it reaches one without, returning that object and its pointer.
pub(crate) fn follow<'a>(
    document: &'a Value,
    mut pointer: String,
    mut value: &'a Value,
) -> Result<(String, &'a Value), RefError> {
    for _ in 0..32 {
        let Some(reference) = value.get("$ref") else {
            return Ok((pointer, value));
        };
        let (target, next) = resolve(document, &pointer, reference)?;
        pointer = target;
        value = next;
    }
    Err(RefError {
        pointer,
        reference: reference_text(value.get("$ref")),
        reason: "the chain of references is too long or circular",
    })
}

/// The target of the `$ref` value `reference` found in the object at `pointer`.
fn resolve<'a>(
    document: &'a Value,
    pointer: &str,
    reference: &Value,
) -> Result<(String, &'a Value), RefError> {
    let error = |reason| RefError {
        pointer: pointer.to_owned(),
        reference: reference_text(Some(reference)),
        reason,
    };
    let text = reference
        .as_str()
        .ok_or_else(|| error("it is not a string"))?;
    let target = local_pointer(text)
        .ok_or_else(|| error("only references within the spec document (`#/...`) are supported"))?;
    let value = document
        .pointer(&target)
        .ok_or_else(|| error("nothing in the spec document is at that pointer"))?;
    Ok((target, value))
}

fn reference_text(reference: Option<&Value>) -> String {
    match reference {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The document: `components` as written, and each operation's parameters
/// and request body under `/paths/<template>/<method>`.
pub(crate) fn document(spec: &ApiSpec) -> Value {
    let mut paths = Map::new();
    for operation in spec.operations() {
        let item = paths
            .entry(operation.template.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let mut fields = Map::new();
        fields.insert(
            "parameters".to_owned(),
            Value::Array(operation.parameters.clone()),
        );
        if let Some(body) = &operation.request_body {
            fields.insert("requestBody".to_owned(), body.clone());
        }
        if let Value::Object(item) = item {
            item.insert(operation.method.to_ascii_lowercase(), Value::Object(fields));
        }
    }
    json!({
        "components": spec.components().cloned().unwrap_or_else(|| json!({})),
        "paths": paths,
    })
}

/// The pointer of an operation's fields in [`document`].
pub(crate) fn operation_pointer(template: &str, method: &str) -> String {
    format!(
        "/paths/{}/{}",
        escape(template),
        method.to_ascii_lowercase()
    )
}

/// Rewrites the schemas reachable from `roots` (see the module documentation).
///
/// Each root is (pointer, tag); an error carries the tag of the root from
/// which the failing `$ref` was reached, so that it can name an operation.
pub(crate) fn rewrite<T: Copy>(
    document: &mut Value,
    roots: &[(String, T)],
    dialect: Dialect,
    strict: bool,
) -> Result<(), (RefError, T)> {
    let visited = translate(document, roots, dialect)?;

    let mut required = Vec::new();
    for pointer in &visited {
        if let Some(kept) = document
            .pointer(pointer)
            .and_then(|schema| writable_required(document, schema))
        {
            required.push((pointer.clone(), "required", Value::Array(kept)));
        }
    }
    apply(document, required);

    if strict {
        let mut edits = Vec::new();
        for pointer in &visited {
            if let Some(Value::Object(schema)) = document.pointer(pointer) {
                strict_edits(document, pointer, schema, &mut edits);
            }
        }
        apply(document, edits);
    }
    Ok(())
}

/// The schema to compile for the request schema at `pointer`: a reference to
/// it, closed with `unevaluatedProperties: false` in strict mode when it
/// declares members.
pub(crate) fn root_schema(document: &Value, pointer: &str, strict: bool) -> Value {
    let mut root = Map::new();
    root.insert("$ref".to_owned(), Value::String(pointer_uri(pointer)));
    if strict {
        if let Some(schema @ Value::Object(map)) = document.pointer(pointer) {
            if !map.contains_key("unevaluatedProperties") && declares_members(document, schema) {
                root.insert("unevaluatedProperties".to_owned(), Value::Bool(false));
            }
        }
    }
    Value::Object(root)
}

/// Visits every schema reachable from the roots once, translating 3.0
/// schemas in place. Returns the pointers of the schemas visited.
fn translate<T: Copy>(
    document: &mut Value,
    roots: &[(String, T)],
    dialect: Dialect,
) -> Result<Vec<String>, (RefError, T)> {
    let mut seen = HashSet::new();
    let mut visited = Vec::new();
    let mut work: Vec<(String, T)> = roots.iter().rev().cloned().collect();
    while let Some((pointer, tag)) = work.pop() {
        if !seen.insert(pointer.clone()) {
            continue;
        }
        let Some(schema) = document.pointer_mut(&pointer) else {
            continue;
        };
        if dialect == Dialect::OpenApi30 {
            translate_30(schema);
        }
        let Value::Object(schema) = schema else {
            continue;
        };
        let mut children = Vec::new();
        for_each_subschema(&pointer, schema, |child, _| children.push(child));
        let reference = schema.get("$ref").cloned();
        visited.push(pointer.clone());
        if let Some(reference) = reference {
            let (target, _) = resolve(document, &pointer, &reference).map_err(|e| (e, tag))?;
            children.push(target);
        }
        work.extend(children.into_iter().rev().map(|child| (child, tag)));
    }
    Ok(visited)
}

/// Calls `f(pointer, subschema)` for each subschema of `schema` (at `pointer`).
fn for_each_subschema<'a>(
    pointer: &str,
    schema: &'a Map<String, Value>,
    mut f: impl FnMut(String, &'a Value),
) {
    for key in SINGLE {
        if let Some(child @ Value::Object(_)) = schema.get(key) {
            f(format!("{pointer}/{key}"), child);
        }
    }
    for key in ARRAYS {
        if let Some(Value::Array(children)) = schema.get(key) {
            for (index, child) in children.iter().enumerate() {
                f(format!("{pointer}/{key}/{index}"), child);
            }
        }
    }
    for key in MAPS {
        if let Some(Value::Object(children)) = schema.get(key) {
            for (name, child) in children {
                f(format!("{pointer}/{key}/{}", escape(name)), child);
            }
        }
    }
}

/// Translates one OpenAPI 3.0 schema object into JSON Schema 2020-12 (its
/// subschemas are translated when they are visited):
///
/// - `nullable: true` adds `"null"` to `type` (and to `enum` when there is
///   one); without a `type`, the schema becomes `anyOf: [{type: null}, <it>]`.
/// - `exclusiveMinimum: true` with `minimum: n` becomes `exclusiveMinimum: n`
///   (same for the maximum); `false` is dropped.
/// - `example`, `discriminator`, `xml` and `externalDocs` are dropped: they
///   are annotations, and the `oneOf`/`anyOf` they accompany already validates.
pub(crate) fn translate_30(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    for key in ["example", "discriminator", "xml", "externalDocs"] {
        map.remove(key);
    }
    for (exclusive, inclusive) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(flag)) = map.get(exclusive) {
            let flag = *flag;
            map.remove(exclusive);
            if flag {
                if let Some(limit) = map.remove(inclusive) {
                    map.insert(exclusive.to_owned(), limit);
                }
            }
        }
    }
    if map.remove("nullable") != Some(Value::Bool(true)) {
        return;
    }
    if let Some(Value::Array(options)) = map.get_mut("enum") {
        if !options.contains(&Value::Null) {
            options.push(Value::Null);
        }
    }
    match map.get_mut("type") {
        Some(Value::String(single)) => {
            let single = std::mem::take(single);
            map.insert("type".to_owned(), json!([single, "null"]));
        }
        Some(Value::Array(types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push(Value::from("null"));
            }
        }
        Some(_) => {}
        None => {
            let annotations_only = map.keys().all(|key| {
                matches!(
                    key.as_str(),
                    "description" | "title" | "default" | "deprecated" | "readOnly" | "writeOnly"
                ) || key.starts_with("x-")
            });
            if annotations_only {
                return;
            }
            // Read-only stays at the top, so that a null is refused too.
            let read_only = map.remove("readOnly");
            let rest = std::mem::take(map);
            map.insert(
                "anyOf".to_owned(),
                json!([{ "type": "null" }, Value::Object(rest)]),
            );
            if let Some(read_only) = read_only {
                map.insert("readOnly".to_owned(), read_only);
            }
        }
    }
}

/// The `required` list of an object schema without its read-only
/// properties, or `None` when it has none to drop.
fn writable_required(document: &Value, schema: &Value) -> Option<Vec<Value>> {
    let properties = schema.get("properties")?.as_object()?;
    let required = schema.get("required")?.as_array()?;
    let kept: Vec<Value> = required
        .iter()
        .filter(|name| {
            !name
                .as_str()
                .and_then(|name| properties.get(name))
                .is_some_and(|property| is_read_only(document, property))
        })
        .cloned()
        .collect();
    (kept.len() != required.len()).then_some(kept)
}

/// Whether a schema is `readOnly: true` itself or through `$ref` or `allOf`.
fn is_read_only(document: &Value, schema: &Value) -> bool {
    closure(document, schema, &["allOf"])
        .iter()
        .any(|schema| schema.get("readOnly") == Some(&Value::Bool(true)))
}

/// The strict-mode additions inside `schema` (at `pointer`): see the module documentation.
fn strict_edits(
    document: &Value,
    pointer: &str,
    schema: &Map<String, Value>,
    edits: &mut Vec<(String, &'static str, Value)>,
) {
    let mut entries = Vec::new();
    for key in ENTRY_SINGLE {
        match schema.get(key) {
            Some(child @ Value::Object(_)) => entries.push((format!("{pointer}/{key}"), child)),
            Some(Value::Array(children)) if key == "items" => {
                for (index, child) in children.iter().enumerate() {
                    entries.push((format!("{pointer}/{key}/{index}"), child));
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Array(children)) = schema.get("prefixItems") {
        for (index, child) in children.iter().enumerate() {
            entries.push((format!("{pointer}/prefixItems/{index}"), child));
        }
    }
    for key in ENTRY_MAPS {
        if let Some(Value::Object(children)) = schema.get(key) {
            for (name, child) in children {
                entries.push((format!("{pointer}/{key}/{}", escape(name)), child));
            }
        }
    }
    for (child_pointer, child) in entries {
        if let Value::Object(map) = child {
            if !map.contains_key("unevaluatedProperties") && declares_members(document, child) {
                edits.push((child_pointer, "unevaluatedProperties", Value::Bool(false)));
            }
        }
    }

    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = schema.get(key) {
            for (index, branch) in branches.iter().enumerate() {
                if branch.is_object() && is_free_form(document, branch) {
                    edits.push((
                        format!("{pointer}/{key}/{index}"),
                        "unevaluatedProperties",
                        Value::Bool(true),
                    ));
                }
            }
        }
    }
}

/// In-place applicators: the keywords whose subschemas see the same instance.
const IN_PLACE: [&str; 7] = [
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "then",
    "else",
    "dependentSchemas",
];

/// Whether `schema`, or a schema it applies in place, declares members.
fn declares_members(document: &Value, schema: &Value) -> bool {
    closure(document, schema, &IN_PLACE)
        .iter()
        .any(|s| s.contains_key("properties") || s.contains_key("patternProperties"))
}

/// Whether `schema` accepts any object: it (or what it applies in place)
/// says `type: object` and nothing about members.
fn is_free_form(document: &Value, schema: &Value) -> bool {
    let parts = closure(document, schema, &IN_PLACE);
    let says_object = parts.iter().any(|s| match s.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
        _ => false,
    });
    says_object
        && !parts
            .iter()
            .any(|s| MEMBER_KEYWORDS.iter().any(|key| s.contains_key(*key)))
}

/// `schema` and the schema objects reachable from it through `$ref` and
/// the `through` keywords, each once. Unresolvable references are skipped
/// (they were reported when the schemas were visited).
fn closure<'a>(
    document: &'a Value,
    schema: &'a Value,
    through: &[&str],
) -> Vec<&'a Map<String, Value>> {
    let mut seen: HashSet<*const Value> = HashSet::new();
    let mut parts = Vec::new();
    let mut work = vec![schema];
    while let Some(value) = work.pop() {
        if parts.len() > 256 || !seen.insert(std::ptr::from_ref(value)) {
            continue;
        }
        let Value::Object(map) = value else {
            continue;
        };
        parts.push(map);
        if let Some(target) = map
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(local_pointer)
            .and_then(|pointer| document.pointer(&pointer))
        {
            work.push(target);
        }
        for key in through {
            match map.get(*key) {
                Some(Value::Array(children)) => work.extend(children),
                Some(Value::Object(children)) if *key == "dependentSchemas" => {
                    work.extend(children.values());
                }
                Some(child @ Value::Object(_)) => work.push(child),
                _ => {}
            }
        }
    }
    parts
}

/// Sets `key` to `value` in the object at each pointer.
fn apply(document: &mut Value, edits: Vec<(String, &'static str, Value)>) {
    for (pointer, key, value) in edits {
        if let Some(Value::Object(object)) = document.pointer_mut(&pointer) {
            object.insert(key.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_adds_null_to_type_and_enum() {
        let mut schema = json!({"type": "string", "enum": ["a"], "nullable": true});
        translate_30(&mut schema);
        assert_eq!(
            schema,
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
    }

    #[test]
    fn nullable_without_type_wraps_in_any_of_keeping_read_only_outside() {
        let mut schema = json!({"allOf": [{"$ref": "#/x"}], "nullable": true, "readOnly": true});
        translate_30(&mut schema);
        assert_eq!(
            schema,
            json!({"anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/x"}]}], "readOnly": true})
        );
        let mut plain = json!({"nullable": true, "description": "anything"});
        translate_30(&mut plain);
        assert_eq!(plain, json!({"description": "anything"}));
    }

    #[test]
    fn boolean_exclusive_limits_become_numbers() {
        let mut schema = json!({"minimum": 0, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false, "example": 3});
        translate_30(&mut schema);
        assert_eq!(schema, json!({"exclusiveMinimum": 0, "maximum": 9}));
    }

    #[test]
    fn pointers_round_trip_through_ref_uris() {
        let pointer = "/paths/~1orders~1{id}/post/requestBody/content/application~1json/schema";
        let uri = pointer_uri(pointer);
        assert_eq!(
            uri,
            "urn:palisade:openapi#/paths/~1orders~1%7Bid%7D/post/requestBody/content/application~1json/schema"
        );
        let fragment = &uri[DOCUMENT_URI.len()..];
        assert_eq!(local_pointer(fragment).as_deref(), Some(pointer));
        assert_eq!(local_pointer("other.yaml#/a"), None);
        assert_eq!(local_pointer("#a"), None);
        assert_eq!(local_pointer("#/a%zz"), None);
    }

    #[test]
    fn strict_mode_closes_entries_and_opens_free_form_branches_only() {
        let mut document = json!({
            "components": {"schemas": {
                "Base": {"type": "object", "properties": {"id": {"type": "string", "readOnly": true}}, "required": ["id", "name"]},
            }},
            "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {
                "allOf": [{"$ref": "#/components/schemas/Base"}],
                "properties": {
                    "child": {"$ref": "#/components/schemas/Base"},
                    "meta": {"type": "object"},
                    "choice": {"oneOf": [{"type": "object"}, {"type": "object", "required": ["x"]}]},
                },
            }}}}}}},
        });
        let root = "/paths/~1a/post/requestBody/content/application~1json/schema".to_owned();
        rewrite(
            &mut document,
            &[(root.clone(), ())],
            Dialect::OpenApi31,
            true,
        )
        .expect("references resolve");
        let schema = &document.pointer(&root).expect("root");
        assert_eq!(schema.get("unevaluatedProperties"), None);
        assert_eq!(
            schema["properties"]["child"]["unevaluatedProperties"],
            json!(false)
        );
        assert_eq!(
            schema["properties"]["meta"].get("unevaluatedProperties"),
            None
        );
        assert_eq!(
            schema["properties"]["choice"]["oneOf"][0]["unevaluatedProperties"],
            json!(true)
        );
        assert_eq!(
            schema["properties"]["choice"]["oneOf"][1].get("unevaluatedProperties"),
            None
        );
        let base = &document["components"]["schemas"]["Base"];
        assert_eq!(base.get("unevaluatedProperties"), None);
        assert_eq!(base["required"], json!(["name"]));
        assert_eq!(
            root_schema(&document, &root, true)["unevaluatedProperties"],
            json!(false)
        );
    }

    #[test]
    fn external_and_dangling_references_are_errors_naming_their_root() {
        let mut document = json!({"components": {"schemas": {
            "A": {"properties": {"b": {"$ref": "other.yaml#/B"}}},
            "C": {"items": {"$ref": "#/components/schemas/Nope"}},
        }}});
        let error = rewrite(
            &mut document,
            &[("/components/schemas/A".to_owned(), 7)],
            Dialect::OpenApi30,
            true,
        )
        .expect_err("external");
        assert_eq!(error.1, 7);
        assert_eq!(error.0.pointer, "/components/schemas/A/properties/b");
        assert_eq!(error.0.reference, "other.yaml#/B");
        let error = rewrite(
            &mut document,
            &[("/components/schemas/C".to_owned(), 8)],
            Dialect::OpenApi30,
            true,
        )
        .expect_err("dangling");
        assert_eq!(
            error.0.reason,
            "nothing in the spec document is at that pointer"
        );
    }
}
