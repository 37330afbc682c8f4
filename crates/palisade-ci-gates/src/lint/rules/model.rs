//! What the checks look at, collected once per spec: operations, and every
//! parameter and schema object reachable from `paths`, `webhooks` and
//! `components` (through `$ref`s into other files too), each once.

use std::collections::HashSet;

use crate::lint::spec::{FileId, Located, Workspace};

/// The HTTP methods a path item may hold, in the order OpenAPI lists them.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation under `paths`.
#[derive(Debug, Clone)]
pub struct Operation<'a> {
    /// The path template (`/invoices/{id}`).
    pub path: &'a str,
    /// Lower-case method.
    pub method: &'static str,
    /// The operation object (after any path-item `$ref`).
    pub at: Located<'a>,
    /// The path item.
    pub path_item: Located<'a>,
    /// Effective parameters (path-level ones, overridden by operation-level
    /// ones of the same name and location), resolved.
    pub params: Vec<Located<'a>>,
}

impl Operation<'_> {
    /// `POST /payments`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.path)
    }

    /// Whether this is a write (POST, PUT, PATCH, DELETE).
    pub fn is_write(&self) -> bool {
        matches!(self.method, "post" | "put" | "patch" | "delete")
    }

    /// Whether this is a read (GET, HEAD).
    pub fn is_read(&self) -> bool {
        matches!(self.method, "get" | "head")
    }
}

/// A parameter object and how it was reached.
#[derive(Debug, Clone)]
pub struct Param<'a> {
    /// The resolved parameter object.
    pub at: Located<'a>,
    /// Whether it is used under `paths` (not only defined in `components`).
    pub under_paths: bool,
}

impl Param<'_> {
    /// `name`.
    pub fn name(&self) -> &str {
        self.at.node.get_str("name").unwrap_or("")
    }

    /// `in` (`query`, `path`, `header`, `cookie`).
    pub fn location(&self) -> &str {
        self.at.node.get_str("in").unwrap_or("")
    }
}

/// Everything the checks of one spec read.
#[derive(Debug, Default)]
pub struct Model<'a> {
    /// Operations under `paths`, in spec order.
    pub operations: Vec<Operation<'a>>,
    /// Every parameter object, once.
    pub params: Vec<Param<'a>>,
    /// Every schema object, once (including `$ref`-only ones).
    pub schemas: Vec<Located<'a>>,
    /// `components.securitySchemes` entries: (name, resolved scheme).
    pub security_schemes: Vec<(&'a str, Located<'a>)>,
    /// The top-level `servers`.
    pub root_servers: Vec<Located<'a>>,
    /// Every server object: top level, path items and operations.
    pub servers: Vec<Located<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    PathItem,
    Operation,
    Parameter,
    Header,
    RequestBody,
    Response,
    MediaType,
    Encoding,
    Callback,
    Schema,
}

struct Walker<'a> {
    ws: &'a Workspace,
    seen: HashSet<(Kind, FileId, String)>,
    phase_paths: bool,
    model: Model<'a>,
}

impl<'a> Model<'a> {
    /// Collects the model of the spec in `spec`.
    pub fn build(ws: &'a Workspace, spec: FileId) -> Model<'a> {
        let root = ws.root(spec);
        let mut w = Walker {
            ws,
            seen: HashSet::new(),
            phase_paths: true,
            model: Model::default(),
        };
        if let Some(paths) = root.get("paths") {
            for (template, item) in paths.entries() {
                if template.starts_with("x-") {
                    continue;
                }
                let Some(item) = ws.follow(item) else {
                    continue;
                };
                w.operations_of(template, item.clone());
                w.visit(Kind::PathItem, item);
            }
        }
        w.phase_paths = false;
        if let Some(webhooks) = root.get("webhooks") {
            for (_, item) in webhooks.entries() {
                w.visit(Kind::PathItem, item);
            }
        }
        if let Some(components) = root.get("components") {
            let sections = [
                ("schemas", Kind::Schema),
                ("parameters", Kind::Parameter),
                ("headers", Kind::Header),
                ("responses", Kind::Response),
                ("requestBodies", Kind::RequestBody),
                ("callbacks", Kind::Callback),
                ("pathItems", Kind::PathItem),
            ];
            for (section, kind) in sections {
                if let Some(map) = components.get(section) {
                    for (name, item) in map.entries() {
                        if !name.starts_with("x-") {
                            w.visit(kind, item);
                        }
                    }
                }
            }
            if let Some(schemes) = components.get("securitySchemes") {
                for (name, scheme) in schemes.entries() {
                    if name.starts_with("x-") {
                        continue;
                    }
                    if let Some(scheme) = ws.follow(scheme) {
                        w.model.security_schemes.push((name, scheme));
                    }
                }
            }
        }
        if let Some(servers) = root.get("servers") {
            w.model.root_servers = servers.items();
            w.model.servers.extend(servers.items());
        }
        w.model
    }
}

impl<'a> Walker<'a> {
    fn operations_of(&mut self, template: &'a str, item: crate::lint::spec::Located<'a>) {
        let path_params: Vec<Located<'a>> = item
            .get("parameters")
            .map(|p| p.items())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| self.ws.follow(p))
            .collect();
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            if !op.node.is_map() {
                continue;
            }
            let mut params: Vec<Located<'a>> = op
                .get("parameters")
                .map(|p| p.items())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| self.ws.follow(p))
                .collect();
            for inherited in &path_params {
                let key = param_key(inherited);
                if !params.iter().any(|p| param_key(p) == key) {
                    params.push(inherited.clone());
                }
            }
            if let Some(servers) = op.get("servers") {
                self.model.servers.extend(servers.items());
            }
            self.model.operations.push(Operation {
                path: template,
                method,
                at: op,
                path_item: item.clone(),
                params,
            });
        }
        if let Some(servers) = item.get("servers") {
            self.model.servers.extend(servers.items());
        }
    }

    fn visit(&mut self, kind: Kind, at: Located<'a>) {
        // Schemas keep their own keywords next to a `$ref` (3.1); every
        // other object is replaced by its target.
        let at = if kind == Kind::Schema {
            if let Some(target) = at
                .node
                .get_str("$ref")
                .and_then(|r| self.ws.resolve_ref(at.file, r).ok())
            {
                self.visit(Kind::Schema, target);
            }
            at
        } else {
            match self.ws.follow(at) {
                Some(t) => t,
                None => return,
            }
        };
        if !at.node.is_map() || !self.seen.insert((kind, at.file, at.pointer.clone())) {
            return;
        }
        match kind {
            Kind::PathItem => {
                for p in at.get("parameters").map(|p| p.items()).unwrap_or_default() {
                    self.visit(Kind::Parameter, p);
                }
                for method in METHODS {
                    if let Some(op) = at.get(method) {
                        self.visit(Kind::Operation, op);
                    }
                }
            }
            Kind::Operation => {
                for p in at.get("parameters").map(|p| p.items()).unwrap_or_default() {
                    self.visit(Kind::Parameter, p);
                }
                if let Some(body) = at.get("requestBody") {
                    self.visit(Kind::RequestBody, body);
                }
                self.each(&at, "responses", Kind::Response);
                self.each(&at, "callbacks", Kind::Callback);
            }
            Kind::Callback => {
                for (expr, item) in at.entries() {
                    if !expr.starts_with("x-") {
                        self.visit(Kind::PathItem, item);
                    }
                }
            }
            Kind::Parameter => {
                self.model.params.push(Param {
                    at: at.clone(),
                    under_paths: self.phase_paths,
                });
                if let Some(schema) = at.get("schema") {
                    self.visit(Kind::Schema, schema);
                }
                self.each(&at, "content", Kind::MediaType);
            }
            Kind::Header => {
                if let Some(schema) = at.get("schema") {
                    self.visit(Kind::Schema, schema);
                }
                self.each(&at, "content", Kind::MediaType);
            }
            Kind::RequestBody => self.each(&at, "content", Kind::MediaType),
            Kind::Response => {
                self.each(&at, "headers", Kind::Header);
                self.each(&at, "content", Kind::MediaType);
            }
            Kind::MediaType => {
                if let Some(schema) = at.get("schema") {
                    self.visit(Kind::Schema, schema);
                }
                self.each(&at, "encoding", Kind::Encoding);
            }
            Kind::Encoding => self.each(&at, "headers", Kind::Header),
            Kind::Schema => {
                self.model.schemas.push(at.clone());
                for sub in subschemas(&at) {
                    self.visit(Kind::Schema, sub);
                }
            }
        }
    }

    fn each(&mut self, at: &Located<'a>, key: &str, kind: Kind) {
        if let Some(map) = at.get(key) {
            for (name, item) in map.entries() {
                if !name.starts_with("x-") {
                    self.visit(kind, item);
                }
            }
        }
    }
}

/// (name, in) of a parameter, which identify it (OpenAPI: "A unique
/// parameter is defined by a combination of a name and location").
fn param_key<'a>(p: &Located<'a>) -> (&'a str, &'a str) {
    (
        p.node.get_str("name").unwrap_or(""),
        p.node.get_str("in").unwrap_or(""),
    )
}

/// Keywords whose value is one schema.
const ONE_SCHEMA: [&str; 11] = [
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
];

/// Keywords whose value is a list of schemas.
const LIST_OF_SCHEMAS: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];

/// Keywords whose value maps names to schemas.
const MAP_OF_SCHEMAS: [&str; 5] = [
    "properties",
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// The direct subschemas of a schema (`properties.*`, `items`, `allOf[*]`,
/// ...), not following `$ref`.
pub fn subschemas<'a>(schema: &Located<'a>) -> Vec<Located<'a>> {
    subschemas_of(schema, true)
}

fn subschemas_of<'a>(schema: &Located<'a>, with_properties: bool) -> Vec<Located<'a>> {
    let mut out = Vec::new();
    for key in ONE_SCHEMA {
        if let Some(sub) = schema.get(key) {
            if sub.node.is_map() {
                out.push(sub);
            } else if key == "items" {
                // draft-04 tuple form
                out.extend(sub.items());
            }
        }
    }
    if let Some(sub) = schema.get("contentSchema") {
        out.push(sub);
    }
    for key in LIST_OF_SCHEMAS {
        if let Some(list) = schema.get(key) {
            out.extend(list.items());
        }
    }
    for key in MAP_OF_SCHEMAS {
        if key == "properties" && !with_properties {
            continue;
        }
        if let Some(map) = schema.get(key) {
            out.extend(map.entries().into_iter().map(|(_, s)| s));
        }
    }
    out
}

/// Every schema reachable from `start` (itself, its subschemas, through
/// `$ref`s), each once, with the property name it was reached under when
/// it is the value of `properties.<name>`.
pub fn schema_tree<'a>(
    ws: &'a Workspace,
    start: Located<'a>,
) -> Vec<(Option<&'a str>, Located<'a>)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(None, start)];
    while let Some((name, at)) = stack.pop() {
        if !seen.insert(at.key()) {
            continue;
        }
        if let Some(target) = at
            .node
            .get_str("$ref")
            .and_then(|r| ws.resolve_ref(at.file, r).ok())
        {
            stack.push((name, target));
        }
        if let Some(props) = at.get("properties") {
            for (prop, schema) in props.entries() {
                stack.push((Some(prop), schema));
            }
        }
        for sub in subschemas_of(&at, false) {
            stack.push((None, sub));
        }
        out.push((name, at));
    }
    out
}

/// The JSON-ish media types of a request body or response (`content`),
/// each with its schema: `application/json`, `*/*+json`, form encodings.
pub fn body_schemas<'a>(ws: &'a Workspace, body: &Located<'a>) -> Vec<(&'a str, Located<'a>)> {
    let Some(body) = ws.follow(body.clone()) else {
        return Vec::new();
    };
    let Some(content) = body.get("content") else {
        return Vec::new();
    };
    content
        .entries()
        .into_iter()
        .filter(|(media, _)| is_structured_media_type(media))
        .filter_map(|(media, m)| m.get("schema").map(|s| (media, s)))
        .collect()
}

/// Whether a media type carries structured fields a schema describes.
pub fn is_structured_media_type(media: &str) -> bool {
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence.ends_with("+json")
        || essence == "*/*"
        || essence == "application/x-www-form-urlencoded"
        || essence == "multipart/form-data"
        || essence == "application/x-yaml"
        || essence == "application/yaml"
}
