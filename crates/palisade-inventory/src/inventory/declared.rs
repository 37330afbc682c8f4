//! What a service's OpenAPI spec declares for each operation, reduced to
//! what drift detection compares traffic with: query parameter names, JSON
//! field paths of the request body and of each response, the status codes,
//! and whether the operation is deprecated.
//!
//! Field paths use the audit record's `shape` syntax (JSON Pointers with
//! `*` for array items, `""` for the body itself), so an observed field is
//! declared when its path is in the set or lies below an *open* path: a
//! schema that allows any member there (`additionalProperties`, a bare
//! `type: object`, `{}`, a recursive `$ref`).

use std::collections::BTreeSet;

use palisade_openapi::{ApiSpec, Operation};
use serde_json::Value;

/// Deeper schemas are treated as open rather than walked: a spec is input
/// from a file, and recursion must stay bounded.
const MAX_SCHEMA_DEPTH: usize = 64;

/// The declarations of one operation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Declared {
    pub(crate) operation_id: Option<String>,
    pub(crate) deprecated: bool,
    /// Query parameter names (`name[...]` is accepted for each, the
    /// `deepObject` and PHP-array spellings).
    pub(crate) query: BTreeSet<String>,
    /// The JSON request body's fields; `None` without a `requestBody`.
    pub(crate) request: Option<Fields>,
    /// Each response key with its JSON body's fields (`None`: the response
    /// declares no JSON body).
    pub(crate) responses: Vec<(StatusKey, Option<Fields>)>,
}

/// A key of the `responses` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusKey {
    /// `"404"`.
    Code(u16),
    /// `"4XX"`: the first digit.
    Range(u16),
    /// `"default"`: every status not listed otherwise.
    Default,
}

impl StatusKey {
    fn parse(key: &str) -> Option<StatusKey> {
        if key == "default" {
            return Some(StatusKey::Default);
        }
        let bytes = key.as_bytes();
        if bytes.len() != 3 {
            return None;
        }
        if bytes[1..].eq_ignore_ascii_case(b"XX") && (b'1'..=b'5').contains(&bytes[0]) {
            return Some(StatusKey::Range(u16::from(bytes[0] - b'0')));
        }
        key.parse().ok().map(StatusKey::Code)
    }
}

/// The field paths a schema declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    paths: BTreeSet<String>,
    /// Paths below which every member is declared.
    open: BTreeSet<String>,
}

impl Fields {
    /// Whether an observed field path is declared.
    pub(crate) fn declares(&self, path: &str) -> bool {
        if self.paths.contains(path) {
            return true;
        }
        // Any ancestor (or the path itself) open? Walk up one segment at a time.
        let mut prefix = path;
        loop {
            if self.open.contains(prefix) {
                return true;
            }
            match prefix.rfind('/') {
                Some(at) => prefix = &prefix[..at],
                None => return false,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    #[cfg(test)]
    pub(crate) fn open(&self) -> impl Iterator<Item = &str> {
        self.open.iter().map(String::as_str)
    }
}

impl Declared {
    /// Reads `operation` of `spec`, resolving `$ref`s into `components`.
    pub(crate) fn of(spec: &ApiSpec, operation: &Operation) -> Declared {
        let refs = Refs {
            components: spec.components(),
        };
        let mut query = BTreeSet::new();
        for parameter in &operation.parameters {
            let Some(parameter) = refs.resolve(parameter) else {
                continue;
            };
            if parameter.get("in").and_then(Value::as_str) != Some("query") {
                continue;
            }
            if let Some(name) = parameter.get("name").and_then(Value::as_str) {
                query.insert(name.to_owned());
            }
            // An exploded `form` object (the default style) sends its
            // properties as parameters of their own.
            let style = parameter.get("style").and_then(Value::as_str);
            let explode = parameter
                .get("explode")
                .and_then(Value::as_bool)
                .unwrap_or(style.is_none_or(|s| s == "form"));
            if explode && style.is_none_or(|s| s == "form") {
                if let Some(properties) = parameter
                    .get("schema")
                    .and_then(|s| refs.resolve(s))
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                {
                    query.extend(properties.keys().cloned());
                }
            }
        }
        let request = operation
            .request_body
            .as_ref()
            .and_then(|body| refs.resolve(body))
            .map(|body| refs.json_content_fields(body).unwrap_or_default());
        let mut responses = Vec::new();
        if let Some(map) = operation.responses.as_ref().and_then(Value::as_object) {
            for (key, response) in map {
                let Some(status) = StatusKey::parse(key) else {
                    continue;
                };
                let fields = refs
                    .resolve(response)
                    .and_then(|response| refs.json_content_fields(response));
                responses.push((status, fields));
            }
        }
        Declared {
            operation_id: operation.operation_id.clone(),
            deprecated: operation.deprecated,
            query,
            request,
            responses,
        }
    }

    /// Whether a query parameter name is declared.
    pub(crate) fn declares_query(&self, name: &str) -> bool {
        let base = name.split_once('[').map_or(name, |(base, _)| base);
        self.query.contains(name) || self.query.contains(base)
    }

    /// The response declared for `status` (exact code, then `NXX`, then
    /// `default`), if any: `Some(None)` when it declares no JSON body.
    pub(crate) fn response(&self, status: u16) -> Option<Option<&Fields>> {
        let find = |want: StatusKey| {
            self.responses
                .iter()
                .find(|(key, _)| *key == want)
                .map(|(_, fields)| fields.as_ref())
        };
        find(StatusKey::Code(status))
            .or_else(|| find(StatusKey::Range(status / 100)))
            .or_else(|| find(StatusKey::Default))
    }
}

/// `$ref` resolution inside the spec's `components`.
struct Refs<'a> {
    components: Option<&'a Value>,
}

impl<'a> Refs<'a> {
    /// Follows `$ref`s (up to a bound) to the object they name; `None` for
    /// a reference that does not resolve or a cycle of references.
    fn resolve(&self, mut value: &'a Value) -> Option<&'a Value> {
        for _ in 0..MAX_SCHEMA_DEPTH {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => value = self.target(reference)?,
                None => return Some(value),
            }
        }
        None
    }

    /// The value a `#/components/...` reference points at.
    fn target(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix("#/components")?;
        self.components?.pointer(pointer)
    }

    /// The fields of the JSON media types of a request body or response
    /// object; `None` when it has no JSON media type.
    fn json_content_fields(&self, object: &'a Value) -> Option<Fields> {
        let content = object.get("content")?.as_object()?;
        let mut fields = None;
        for (media_type, media) in content {
            if !is_json_media_type(media_type) {
                continue;
            }
            let out = fields.get_or_insert_with(Fields::default);
            match media.get("schema") {
                Some(schema) => {
                    let mut path = String::new();
                    let mut stack = Vec::new();
                    self.walk(schema, &mut path, out, 0, &mut stack);
                }
                // A media type without a schema allows any document.
                None => {
                    out.open.insert(String::new());
                }
            }
        }
        fields
    }

    /// Adds the paths `schema` declares at `path` (and below) to `out`.
    /// `stack` holds the `$ref`s being expanded, to stop at recursion.
    fn walk(
        &self,
        schema: &'a Value,
        path: &mut String,
        out: &mut Fields,
        depth: usize,
        stack: &mut Vec<&'a str>,
    ) {
        if depth > MAX_SCHEMA_DEPTH {
            out.open.insert(path.clone());
            return;
        }
        let object = match schema {
            Value::Bool(true) => {
                out.open.insert(path.clone());
                return;
            }
            Value::Object(object) => object,
            _ => return,
        };
        out.paths.insert(path.clone());
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            if stack.contains(&reference) {
                // A recursive schema (a tree of nodes): everything below repeats.
                out.open.insert(path.clone());
                return;
            }
            match self.target(reference) {
                Some(target) => {
                    stack.push(reference);
                    self.walk(target, path, out, depth + 1, stack);
                    stack.pop();
                }
                None => {
                    out.open.insert(path.clone());
                }
            }
        }
        let mut structured = object.contains_key("$ref");
        for keyword in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = object.get(keyword).and_then(Value::as_array) {
                structured = true;
                for branch in branches {
                    self.walk(branch, path, out, depth + 1, stack);
                }
            }
        }
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            structured = true;
            let len = path.len();
            for (name, property) in properties {
                push_segment(path, name);
                self.walk(property, path, out, depth + 1, stack);
                path.truncate(len);
            }
        }
        match object.get("additionalProperties") {
            Some(Value::Bool(false)) => structured = true,
            Some(Value::Bool(true)) | Some(Value::Object(_)) => {
                structured = true;
                out.open.insert(path.clone());
            }
            _ => {}
        }
        if object.contains_key("patternProperties") {
            structured = true;
            out.open.insert(path.clone());
        }
        let len = path.len();
        if let Some(items) = object.get("items") {
            structured = true;
            path.push_str("/*");
            self.walk(items, path, out, depth + 1, stack);
            path.truncate(len);
        }
        if let Some(prefix) = object.get("prefixItems").and_then(Value::as_array) {
            structured = true;
            path.push_str("/*");
            for item in prefix {
                self.walk(item, path, out, depth + 1, stack);
            }
            path.truncate(len);
        }
        // `{}`, `{type: object}` or `{type: array}` with nothing saying what
        // they hold allow any member.
        if !structured && may_contain_members(object.get("type")) {
            out.open.insert(path.clone());
        }
    }
}

/// Whether a `type` keyword (absent, a name, or a 3.1 list) allows objects
/// or arrays.
fn may_contain_members(ty: Option<&Value>) -> bool {
    match ty {
        None => true,
        Some(Value::String(name)) => name == "object" || name == "array",
        Some(Value::Array(names)) => names
            .iter()
            .any(|n| n.as_str() == Some("object") || n.as_str() == Some("array")),
        Some(_) => false,
    }
}

/// `application/json`, `application/problem+json`, `*/*`, `application/*`.
fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "*/*"
        || essence == "application/*"
        || essence == "application/json"
        || essence.ends_with("+json")
}

/// Appends `/name` as a JSON Pointer segment (`~` → `~0`, `/` → `~1`), the
/// spelling of the audit record's field paths.
fn push_segment(path: &mut String, name: &str) {
    path.push('/');
    for c in name.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn declared(yaml: &str, method: &str, template: &str) -> Declared {
        let spec = ApiSpec::from_str(yaml, Path::new("t.yaml")).unwrap();
        let operation = spec
            .operations()
            .find(|op| op.method == method && op.template == template)
            .unwrap();
        Declared::of(&spec, operation)
    }

    const SPEC: &str = r##"
openapi: 3.1.0
info: {title: T, version: "1"}
paths:
  /orders:
    post:
      deprecated: true
      parameters:
        - $ref: '#/components/parameters/Dry'
        - {name: filter, in: query, style: deepObject, schema: {type: object}}
        - {name: page, in: query, schema: {type: object, properties: {size: {type: integer}, cursor: {type: string}}}}
        - {name: x-trace, in: header, schema: {type: string}}
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Order'}
      responses:
        '201':
          content:
            application/json:
              schema:
                allOf:
                  - $ref: '#/components/schemas/Order'
                  - {type: object, properties: {id: {type: string}}}
        4XX: {$ref: '#/components/responses/Problem'}
        '204': {description: none}
components:
  parameters:
    Dry: {name: dry_run, in: query, schema: {type: boolean}}
  responses:
    Problem:
      description: problem
      content:
        application/problem+json:
          schema: {type: object, properties: {title: {type: string}}, additionalProperties: true}
  schemas:
    Order:
      type: object
      additionalProperties: false
      properties:
        items:
          type: array
          items: {type: object, properties: {sku: {type: string}, qty: {type: integer}}}
        customer: {$ref: '#/components/schemas/Customer'}
        metadata: {type: object}
        parent: {$ref: '#/components/schemas/Order'}
    Customer:
      type: object
      properties:
        email: {type: string}
        tags: {type: object, additionalProperties: {type: string}}
"##;

    #[test]
    fn query_names_include_refs_exploded_objects_and_deep_objects() {
        let d = declared(SPEC, "POST", "/orders");
        assert!(d.deprecated);
        assert_eq!(
            d.query.iter().map(String::as_str).collect::<Vec<_>>(),
            ["cursor", "dry_run", "filter", "page", "size"]
        );
        assert!(d.declares_query("filter[status]"));
        assert!(d.declares_query("dry_run"));
        assert!(
            !d.declares_query("x-trace"),
            "headers are not query parameters"
        );
        assert!(!d.declares_query("debug"));
    }

    #[test]
    fn request_fields_follow_refs_items_and_stop_at_recursion() {
        let d = declared(SPEC, "POST", "/orders");
        let request = d.request.unwrap();
        assert_eq!(
            request.paths().collect::<Vec<_>>(),
            [
                "",
                "/customer",
                "/customer/email",
                "/customer/tags",
                "/items",
                "/items/*",
                "/items/*/qty",
                "/items/*/sku",
                "/metadata",
                "/parent"
            ]
        );
        assert_eq!(
            request.open().collect::<Vec<_>>(),
            ["/customer/tags", "/metadata", "/parent"]
        );
        assert!(request.declares("/items/*/sku"));
        assert!(request.declares("/metadata/anything/below"));
        assert!(request.declares("/parent/items/*/sku"));
        assert!(request.declares("/customer/tags/vip"));
        assert!(!request.declares("/items/*/price"));
        assert!(!request.declares("/debug"));
    }

    #[test]
    fn responses_resolve_by_code_then_range_then_default() {
        let d = declared(SPEC, "POST", "/orders");
        let created = d.response(201).unwrap().unwrap();
        assert!(created.declares("/id"));
        assert!(created.declares("/items/*/qty"));
        assert!(!created.declares("/secret"));
        let problem = d.response(404).unwrap().unwrap();
        assert!(problem.declares("/title"));
        assert!(problem.declares("/anything"), "additionalProperties: true");
        assert_eq!(d.response(204), Some(None), "declared without a body");
        assert_eq!(d.response(500), None, "not declared at all");
    }

    #[test]
    fn status_keys_parse_codes_ranges_and_default() {
        assert_eq!(StatusKey::parse("200"), Some(StatusKey::Code(200)));
        assert_eq!(StatusKey::parse("2XX"), Some(StatusKey::Range(2)));
        assert_eq!(StatusKey::parse("5xx"), Some(StatusKey::Range(5)));
        assert_eq!(StatusKey::parse("default"), Some(StatusKey::Default));
        assert_eq!(StatusKey::parse("x-extension"), None);
        assert_eq!(StatusKey::parse("6XX"), None);
    }

    #[test]
    fn an_operation_without_request_body_declares_none() {
        let yaml = "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        default: {description: any}\n";
        let d = declared(yaml, "GET", "/a");
        assert!(d.request.is_none());
        assert_eq!(d.response(418), Some(None));
    }
}
