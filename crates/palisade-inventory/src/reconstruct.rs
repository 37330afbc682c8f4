//! OpenAPI 3.1 documents reconstructed from a [`Snapshot`]: one per
//! service, with the endpoints that were called, their parameters and
//! inferred JSON schemas, and `x-palisade-*` extensions for what OpenAPI
//! has no field for. The rules are in the
//! [crate documentation](crate#reconstructed-openapi).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use crate::inventory::normalize_template;
use crate::snapshot::{EndpointSnapshot, FieldSnapshot, PathParam, ServiceSnapshot, Snapshot};

/// The OpenAPI version written.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// The methods an OpenAPI path item has fields for.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The reconstructed document of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconstructedSpec {
    /// The service.
    pub service: String,
    /// The OpenAPI 3.1 document.
    pub document: Value,
}

impl ReconstructedSpec {
    /// The document as pretty-printed JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        // A `Value` with string keys always serialises.
        let mut text = serde_json::to_string_pretty(&self.document).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// One document per service that has called endpoints, by service name.
pub fn reconstruct(snapshot: &Snapshot) -> Vec<ReconstructedSpec> {
    snapshot
        .services
        .iter()
        .filter(|service| service.endpoints.iter().any(|e| e.calls > 0))
        .map(|service| ReconstructedSpec {
            service: service.name.clone(),
            document: document(snapshot, service),
        })
        .collect()
}

fn document(snapshot: &Snapshot, service: &ServiceSnapshot) -> Value {
    // Two templates of one shape under different parameter names (routes
    // from two versions of a spec) would be an invalid document: the first
    // name wins.
    let mut canonical: HashMap<String, &str> = HashMap::new();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut calls = 0;
    for endpoint in service.endpoints.iter().filter(|e| e.calls > 0) {
        calls += endpoint.calls;
        let template = *canonical
            .entry(normalize_template(&endpoint.template))
            .or_insert(&endpoint.template);
        let method = endpoint.method.to_ascii_lowercase();
        let key = if OPENAPI_METHODS.contains(&method.as_str()) {
            method
        } else {
            // OpenAPI 3.1 has no field for other methods; keep them visible.
            format!("x-palisade-method-{}", endpoint.method)
        };
        let params = rename_params(&endpoint.params, template);
        paths
            .entry(template)
            .or_default()
            .insert(key, operation(endpoint, &params));
    }
    let mut root = Map::new();
    root.insert("openapi".into(), json!(OPENAPI_VERSION));
    root.insert(
        "info".into(),
        json!({
            "title": service.name,
            "version": snapshot.generated_at,
            "description": format!(
                "Reconstructed by palisade inventory from {calls} calls observed by the sidecar{}.",
                snapshot.since.as_ref().map(|s| format!(" since {s}")).unwrap_or_default()
            ),
        }),
    );
    root.insert(
        "paths".into(),
        Value::Object(
            paths
                .into_iter()
                .map(|(template, item)| (template.to_owned(), Value::Object(item)))
                .collect(),
        ),
    );
    root.insert("x-palisade-service".into(), json!(service.name));
    root.insert("x-palisade-owner".into(), json!(service.owner));
    root.insert("x-palisade-spec".into(), json!(service.spec));
    root.insert(
        "x-palisade-generated-at".into(),
        json!(snapshot.generated_at),
    );
    Value::Object(root)
}

/// The parameters under the names of `template` (which may be the
/// canonical spelling of the endpoint's own template).
fn rename_params(params: &[PathParam], template: &str) -> Vec<PathParam> {
    let names = crate::inventory::param_names(template);
    if names.len() != params.len() {
        return names
            .into_iter()
            .map(|name| PathParam {
                name,
                kinds: Vec::new(),
            })
            .collect();
    }
    params
        .iter()
        .zip(names)
        .map(|(param, name)| PathParam {
            name,
            kinds: param.kinds.clone(),
        })
        .collect()
}

fn operation(endpoint: &EndpointSnapshot, params: &[PathParam]) -> Value {
    let mut op = Map::new();
    if let Some(id) = &endpoint.operation_id {
        op.insert("operationId".into(), json!(id));
    }
    if endpoint.zombie.as_ref().is_some_and(|z| z.deprecated) {
        op.insert("deprecated".into(), json!(true));
    }
    let mut parameters: Vec<Value> = params.iter().map(path_parameter).collect();
    for field in &endpoint.query {
        let mut parameter = json!({
            "name": field.name,
            "in": "query",
            "required": endpoint.sampled > 0 && field.seen >= endpoint.sampled,
            "schema": leaf_schema(&field.types),
        });
        if !field.classes.is_empty() {
            parameter["x-palisade-data-classes"] = json!(field.classes);
        }
        parameters.push(parameter);
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if !endpoint.request.fields.is_empty() {
        op.insert(
            "requestBody".into(),
            json!({
                "required": endpoint.sampled > 0 && endpoint.request.samples >= endpoint.sampled,
                "content": {
                    "application/json": {
                        "schema": body_schema(&endpoint.request.fields, endpoint.request.samples),
                    }
                }
            }),
        );
    }
    let mut responses = Map::new();
    for (status, calls) in &endpoint.statuses {
        if status.parse::<u16>().is_err() {
            continue;
        }
        let mut response = Map::new();
        response.insert(
            "description".into(),
            json!(if *calls == 1 {
                "Observed once".to_owned()
            } else {
                format!("Observed {calls} times")
            }),
        );
        if let Some(body) = endpoint
            .responses
            .iter()
            .find(|r| r.status.to_string() == *status)
            .filter(|r| !r.fields.is_empty())
        {
            response.insert(
                "content".into(),
                json!({"application/json": {"schema": body_schema(&body.fields, body.samples)}}),
            );
        }
        responses.insert(status.clone(), Value::Object(response));
    }
    if responses.is_empty() {
        responses.insert(
            "default".into(),
            json!({"description": "No response was observed"}),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    op.insert("x-palisade-calls".into(), json!(endpoint.calls));
    op.insert("x-palisade-denied".into(), json!(endpoint.denied));
    op.insert("x-palisade-first-seen".into(), json!(endpoint.first_seen));
    op.insert("x-palisade-last-seen".into(), json!(endpoint.last_seen));
    op.insert("x-palisade-callers".into(), json!(endpoint.callers));
    op.insert(
        "x-palisade-data-classes".into(),
        json!(endpoint.data_classes),
    );
    op.insert("x-palisade-flags".into(), json!(endpoint.flags));
    if !endpoint.drift.is_empty() {
        op.insert("x-palisade-drift".into(), json!(endpoint.drift));
    }
    op.insert("x-palisade-risk".into(), json!(endpoint.risk));
    Value::Object(op)
}

fn path_parameter(param: &PathParam) -> Value {
    let schema = match param.kinds.as_slice() {
        [kind] if kind == "integer" => json!({"type": "integer"}),
        [kind] if kind == "uuid" => json!({"type": "string", "format": "uuid"}),
        [kind] if kind == "date" => json!({"type": "string", "format": "date"}),
        [kind] if kind == "email" => json!({"type": "string", "format": "email"}),
        _ => json!({"type": "string"}),
    };
    let mut parameter = json!({
        "name": param.name,
        "in": "path",
        "required": true,
        "schema": schema,
    });
    if !param.kinds.is_empty() {
        parameter["x-palisade-kinds"] = json!(param.kinds);
    }
    parameter
}

/// `{"type": t}` or, for several types, `{"type": [..]}` (JSON Schema 2020-12).
fn leaf_schema(types: &[String]) -> Value {
    match types {
        [] => json!({}),
        [only] => json!({"type": only}),
        many => json!({"type": many}),
    }
}

/// A node of the field-path tree.
#[derive(Debug, Default)]
struct Node {
    types: BTreeSet<String>,
    classes: BTreeSet<String>,
    /// Samples this field appeared in.
    seen: u64,
    properties: BTreeMap<String, Node>,
    items: Option<Box<Node>>,
}

/// The schema of a JSON body from its field paths: types, properties,
/// array items, and as `required` the members present in every sample
/// in which their parent was.
fn body_schema(fields: &[FieldSnapshot], samples: u64) -> Value {
    let mut root = Node {
        seen: samples,
        ..Node::default()
    };
    for field in fields {
        let mut node = &mut root;
        if !field.name.is_empty() {
            for segment in field.name.trim_start_matches('/').split('/') {
                node = if segment == "*" {
                    node.items.get_or_insert_with(Box::default)
                } else {
                    node.properties.entry(unescape(segment)).or_default()
                };
            }
        }
        node.types.extend(field.types.iter().cloned());
        node.classes.extend(field.classes.iter().cloned());
        node.seen = node.seen.max(field.seen);
    }
    infer(&mut root);
    schema(&root)
}

/// Fills in containers the shape left out (a sidecar may list only leaf
/// paths): their types and samples follow from their members. Bottom-up.
fn infer(node: &mut Node) {
    for child in node.properties.values_mut() {
        infer(child);
    }
    if let Some(items) = node.items.as_mut() {
        infer(items);
    }
    if node.types.is_empty() {
        if !node.properties.is_empty() {
            node.types.insert("object".into());
        }
        if node.items.is_some() {
            node.types.insert("array".into());
        }
    }
    if node.seen == 0 {
        node.seen = node
            .properties
            .values()
            .map(|n| n.seen)
            .chain(node.items.as_ref().map(|n| n.seen))
            .max()
            .unwrap_or(0);
    }
}

fn schema(node: &Node) -> Value {
    let types: Vec<String> = node.types.iter().cloned().collect();
    let mut out = match leaf_schema(&types) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if !node.properties.is_empty() {
        let properties: Map<String, Value> = node
            .properties
            .iter()
            .map(|(name, child)| (name.clone(), schema(child)))
            .collect();
        let required: Vec<&String> = node
            .properties
            .iter()
            .filter(|(_, child)| node.seen > 0 && child.seen >= node.seen)
            .map(|(name, _)| name)
            .collect();
        out.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            out.insert("required".into(), json!(required));
        }
    }
    if let Some(items) = &node.items {
        out.insert("items".into(), schema(items));
    }
    if !node.classes.is_empty() {
        out.insert("x-palisade-data-classes".into(), json!(node.classes));
    }
    Value::Object(out)
}

/// A JSON Pointer segment back to the member name (`~1` → `/`, `~0` → `~`).
fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, types: &[&str], seen: u64) -> FieldSnapshot {
        FieldSnapshot {
            name: name.into(),
            types: types.iter().map(|t| t.to_string()).collect(),
            classes: Vec::new(),
            seen,
        }
    }

    #[test]
    fn body_schemas_nest_objects_and_arrays_and_mark_fields_seen_every_time_required() {
        let fields = [
            field("", &["object"], 10),
            field("/id", &["integer"], 10),
            field("/note", &["null", "string"], 4),
            field("/items", &["array"], 10),
            field("/items/*", &["object"], 10),
            field("/items/*/sku", &["string"], 10),
            field("/a~1b", &["boolean"], 10),
        ];
        assert_eq!(
            body_schema(&fields, 10),
            json!({
                "type": "object",
                "properties": {
                    "a/b": {"type": "boolean"},
                    "id": {"type": "integer"},
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"sku": {"type": "string"}},
                            "required": ["sku"],
                        },
                    },
                    "note": {"type": ["null", "string"]},
                },
                "required": ["a/b", "id", "items"],
            })
        );
    }

    #[test]
    fn containers_missing_from_the_shape_are_inferred() {
        let fields = [field("/user/email", &["string"], 3)];
        assert_eq!(
            body_schema(&fields, 3),
            json!({
                "type": "object",
                "properties": {"user": {
                    "type": "object",
                    "properties": {"email": {"type": "string"}},
                    "required": ["email"],
                }},
                "required": ["user"],
            })
        );
    }
}
