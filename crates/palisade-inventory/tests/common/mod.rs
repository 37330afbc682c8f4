//! Test traffic: audit records generated from an OpenAPI spec (paths with
//! realistic identifiers, query parameters, JSON bodies profiled like the
//! sidecar profiles them), a record builder, and writing records to a real
//! SQLite audit database with `AuditWriter`. Shared by the integration
//! tests, the criterion bench and the `inventory_1m` example.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use palisade_audit::{
    AuditRecord, AuditWriter, AuthMethod, Decision, Direction, ExchangeShape, FieldShape,
    SinkConfig,
};
use palisade_inventory::{classify_json, classify_str, SegmentKind, RESERVED_WORDS};
use palisade_openapi::{ApiSpec, Operation};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

/// When generated traffic starts.
pub const START: OffsetDateTime = time::macros::datetime!(2026-05-04 09:00:00 UTC);

pub const CALLERS: [&str; 4] = [
    "spiffe://example.org/ns/shop/sa/web",
    "spiffe://example.org/ns/shop/sa/checkout",
    "spiffe://example.org/ns/ops/sa/reporting",
    "spiffe://example.org/ns/shop/sa/mobile-bff",
];

/// Knuth's MMIX LCG; the high bits are good enough for test data.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }
}

const HEX: &[u8] = b"0123456789abcdef";
const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "ba", "de", "fo", "gu", "ha", "jo", "pe", "so",
    "wu", "xa", "yo", "qui", "bri", "clo", "dra", "fle", "gro", "pla", "sti", "tru",
];

/// A path value for a parameter of `schema`'s type and format, checked to
/// have the segment kind the templater is documented to give it (or none,
/// for shaped and free-form values), so a fixture cannot pass by luck.
pub fn path_value(schema: &Value, rng: &mut Lcg) -> String {
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    loop {
        let (v, expected) = match (ty, format) {
            ("integer", _) => (
                format!("{}", 1 + rng.below(5_000_000)),
                Some(SegmentKind::Integer),
            ),
            (_, "uuid") => (uuid(rng), Some(SegmentKind::Uuid)),
            (_, "date") => (date(rng), Some(SegmentKind::Date)),
            (_, "sha256") => (rng.chars(HEX, 64), Some(SegmentKind::HexHash)),
            (_, "sha1") => (rng.chars(HEX, 40), Some(SegmentKind::HexHash)),
            (_, "md5") => (rng.chars(HEX, 32), Some(SegmentKind::HexHash)),
            (_, "token") => {
                let prefix = rng.pick(&["cus_", "cart_", "tok_"]);
                (
                    format!("{prefix}{}", rng.chars(BASE62, 20)),
                    Some(SegmentKind::Token),
                )
            }
            (_, "email") => (email(rng), Some(SegmentKind::Email)),
            (_, "sku") => {
                let letters = rng.chars(b"ABCDEFGHJKLMNPRSTUVWXYZ", 2);
                (format!("{letters}-{:04}", rng.below(10_000)), None)
            }
            (_, "invoice-number") => (
                format!("INV-{}-{:06}", 2020 + rng.below(6), rng.below(1_000_000)),
                None,
            ),
            (_, "semver") => (
                format!("v{}.{}.{}", rng.below(4), rng.below(20), rng.below(30)),
                None,
            ),
            (_, "slug") => {
                let mut name: String = (0..2 + rng.below(2)).map(|_| rng.pick(SYLLABLES)).collect();
                match rng.below(6) {
                    0 => name = format!("{name}-{}", rng.pick(SYLLABLES)),
                    1 => name = format!("{name}{}", rng.below(100)),
                    2 => name = format!("{name}_{}{}", rng.pick(SYLLABLES), rng.pick(SYLLABLES)),
                    _ => {}
                }
                (name, None)
            }
            other => panic!("no path value generator for {other:?}"),
        };
        let reserved = RESERVED_WORDS.iter().any(|r| v.eq_ignore_ascii_case(r));
        if SegmentKind::of(&v) == expected && !reserved {
            return v;
        }
    }
}

fn uuid(rng: &mut Lcg) -> String {
    let h = rng.chars(HEX, 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

fn date(rng: &mut Lcg) -> String {
    format!(
        "20{:02}-{:02}-{:02}",
        10 + rng.below(16),
        1 + rng.below(12),
        1 + rng.below(28)
    )
}

fn email(rng: &mut Lcg) -> String {
    let name = format!("{}{}", rng.pick(SYLLABLES), rng.pick(SYLLABLES));
    let domain = rng.pick(&["example.com", "example.org", "mail.example.net"]);
    format!("{name}.{}@{domain}", rng.pick(SYLLABLES))
}

/// Resolves `$ref`s into the spec's components.
pub struct Components<'a>(pub Option<&'a Value>);

impl<'a> Components<'a> {
    pub fn resolve(&self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference
                .strip_prefix("#/components")
                .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
            value = self
                .0
                .and_then(|c| c.pointer(pointer))
                .unwrap_or_else(|| panic!("unresolved $ref {reference}"));
        }
        value
    }

    /// A JSON document that conforms to `schema`: the schema's `example`
    /// where it has one, every required property and each optional one
    /// half of the time.
    pub fn example(&self, schema: &Value, rng: &mut Lcg, depth: usize) -> Value {
        let schema = self.resolve(schema);
        if depth > 8 {
            return Value::Null;
        }
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for branch in branches {
                if let Value::Object(members) = self.example(branch, rng, depth + 1) {
                    merged.extend(members);
                }
            }
            return Value::Object(merged);
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(first) = schema.get(keyword).and_then(|b| b.get(0)) {
                return self.example(first, rng, depth + 1);
            }
        }
        let ty = match schema.get("type") {
            Some(Value::String(ty)) => ty.as_str(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ if schema.get("properties").is_some() => "object",
            _ => "string",
        };
        match ty {
            "object" => {
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut out = Map::new();
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, property) in properties {
                        if required.contains(&name.as_str()) || rng.below(2) == 0 {
                            out.insert(name.clone(), self.example(property, rng, depth + 1));
                        }
                    }
                }
                if let Some(additional @ Value::Object(_)) = schema.get("additionalProperties") {
                    for _ in 0..1 + rng.below(2) {
                        let key = rng.pick(&["EUR", "USD", "GBP", "order_ref", "channel"]);
                        out.insert(key.to_owned(), self.example(additional, rng, depth + 1));
                    }
                }
                Value::Object(out)
            }
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                Value::Array(
                    (0..1 + rng.below(3))
                        .map(|_| self.example(&items, rng, depth + 1))
                        .collect(),
                )
            }
            "integer" => json!(1 + rng.below(10_000)),
            "number" => json!(rng.below(100_000) as f64 / 100.0 + 0.25),
            "boolean" => json!(rng.below(2) == 0),
            "null" => Value::Null,
            _ => {
                if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
                    return first.clone();
                }
                match schema.get("format").and_then(Value::as_str) {
                    Some("email") => json!(email(rng)),
                    Some("uuid") => json!(uuid(rng)),
                    Some("date") => json!(date(rng)),
                    _ => json!(format!("{} {}", rng.pick(SYLLABLES), rng.pick(SYLLABLES))),
                }
            }
        }
    }
}

/// The shape the sidecar records for a JSON document.
pub fn json_fields(value: &Value) -> Vec<FieldShape> {
    classify_json(value)
        .iter()
        .map(|(path, field)| FieldShape {
            name: path.to_owned(),
            types: field
                .types()
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            classes: field
                .classes()
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        })
        .collect()
}

/// A query parameter's shape.
pub fn query_field(name: &str, value: &str) -> FieldShape {
    FieldShape {
        name: name.to_owned(),
        types: vec!["string".to_owned()],
        classes: classify_str(Some(name), value)
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }
}

/// A plain allowed inbound record: `n` milliseconds after [`START`], from
/// one of [`CALLERS`], status 200, no shape.
pub fn record(n: u64, service: &str, method: &str, path: &str) -> AuditRecord {
    AuditRecord {
        ts: START + time::Duration::milliseconds(n as i64),
        request_id: format!("req-{n:08}"),
        caller: Some(CALLERS[(n % CALLERS.len() as u64) as usize].to_owned()),
        auth: AuthMethod::Mtls,
        service: service.to_owned(),
        method: Some(method.to_owned()),
        path: Some(path.to_owned()),
        route: None,
        decision: Decision::Allow,
        code: None,
        policies: vec!["allow-shop".to_owned()],
        status: Some(200),
        latency_us: 900,
        bytes_in: 0,
        bytes_out: 0,
        data_classes: Vec::new(),
        peer: Some("127.0.0.1:50000".to_owned()),
        direction: Direction::Inbound,
        detail: None,
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
    }
}

/// Sets `record.data_classes` to the union of its shape's classes, as the
/// sidecar does.
pub fn with_shape(mut record: AuditRecord, shape: ExchangeShape) -> AuditRecord {
    let mut classes: Vec<String> = shape
        .query
        .iter()
        .chain(&shape.request)
        .chain(&shape.response)
        .flat_map(|f| f.classes.iter().cloned())
        .collect();
    classes.sort();
    classes.dedup();
    record.data_classes = classes;
    record.shape = Some(shape);
    record
}

/// Requests generated from a spec. Path values are drawn from
/// per-parameter pools (ids repeat, as in real traffic); pools are shared
/// by parameters of the same name and grow to 300 values.
pub struct Traffic<'a> {
    spec: &'a ApiSpec,
    operations: Vec<&'a Operation>,
    service: String,
    rng: Lcg,
    pools: BTreeMap<String, Vec<String>>,
    n: u64,
    routed: bool,
}

impl<'a> Traffic<'a> {
    pub fn new(spec: &'a ApiSpec, service: &str, seed: u64) -> Traffic<'a> {
        Traffic {
            spec,
            operations: spec.operations().collect(),
            service: service.to_owned(),
            rng: Lcg(seed),
            pools: BTreeMap::new(),
            n: 0,
            routed: false,
        }
    }

    /// Records carry the operation's template as `route`, as a sidecar
    /// with the spec writes them.
    pub fn routed(mut self) -> Traffic<'a> {
        self.routed = true;
        self
    }

    fn components(&self) -> Components<'a> {
        Components(self.spec.components())
    }

    /// The operation's parameters, resolved.
    fn parameters(&self, op: &'a Operation) -> Vec<&'a Value> {
        let components = self.components();
        op.parameters
            .iter()
            .map(|p| components.resolve(p))
            .collect()
    }

    fn path(&mut self, op: &'a Operation) -> String {
        let parameters = self.parameters(op);
        let mut out = String::new();
        for segment in op.template.split('/').skip(1) {
            out.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let parameter = parameters
                        .iter()
                        .find(|p| p["name"] == name && p["in"] == "path")
                        .unwrap_or_else(|| panic!("{} has no path parameter {name}", op.template));
                    let schema = self.components().resolve(&parameter["schema"]);
                    let pool = self.pools.entry(name.to_owned()).or_default();
                    let fresh = pool.is_empty() || pool.len() < 300 && self.rng.below(3) > 0;
                    let value = if fresh {
                        let v = path_value(schema, &mut self.rng);
                        pool.push(v.clone());
                        v
                    } else {
                        pool[self.rng.below(pool.len() as u64) as usize].clone()
                    };
                    out.push_str(&value);
                }
                None => out.push_str(segment),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// One call of `op`, answered with its first 2xx response.
    pub fn call(&mut self, op: &'a Operation) -> AuditRecord {
        let path = self.path(op);
        let components = self.components();
        let mut shape = ExchangeShape::default();
        for parameter in self.parameters(op) {
            if parameter["in"] != "query" {
                continue;
            }
            let required = parameter["required"].as_bool().unwrap_or(false);
            if required || self.rng.below(2) == 0 {
                let value = components.example(&parameter["schema"], &mut self.rng, 0);
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                shape
                    .query
                    .push(query_field(parameter["name"].as_str().unwrap(), &text));
            }
        }
        if let Some(body) = &op.request_body {
            let body = components.resolve(body);
            let media = body["content"]
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap();
            let value = components.example(&media["schema"], &mut self.rng, 0);
            shape.request = json_fields(&value);
        }
        let responses = op.responses.as_ref().unwrap().as_object().unwrap();
        let (status, response) = responses
            .iter()
            .find(|(key, _)| key.starts_with('2'))
            .unwrap_or_else(|| panic!("{} {} has no 2xx response", op.method, op.template));
        let response = components.resolve(response);
        if let Some(media) = response
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.values().next())
        {
            let value = components.example(&media["schema"], &mut self.rng, 0);
            shape.response = json_fields(&value);
        }
        let mut record = record(self.n, &self.service, &op.method, &path);
        record.status = Some(status.parse().unwrap());
        if self.routed {
            record.route = Some(op.template.clone());
        }
        self.n += 1;
        with_shape(record, shape)
    }

    /// One call of an operation picked at random.
    pub fn next_record(&mut self) -> AuditRecord {
        let op = self.operations[self.rng.below(self.operations.len() as u64) as usize];
        self.call(op)
    }

    /// `n` calls spread over the spec's operations.
    pub fn records(&mut self, n: usize) -> Vec<AuditRecord> {
        (0..n).map(|_| self.next_record()).collect()
    }
}

/// Writes `records` to the SQLite audit database at `db` through a real
/// `AuditWriter`, then shuts it down (everything is on disk).
pub fn write_db(db: &Path, records: impl IntoIterator<Item = AuditRecord>) {
    let writer = AuditWriter::start(
        SinkConfig::Sqlite {
            path: db.to_path_buf(),
        },
        4096,
    )
    .unwrap();
    let handle = writer.handle();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async move {
            for record in records {
                handle.record(record).await.unwrap();
            }
        });
    writer.shutdown().unwrap();
}

/// Mixed traffic of three services, written to `db` as it is generated:
/// `shop` recorded by a sidecar with its spec (records carry the route),
/// `payments` by one without a spec (paths must be templated),
/// `code-hosting` without routes but compared with its spec by the
/// inventory ([`mixed_inputs`]).
pub fn write_mixed_traffic(db: &Path, n: usize) {
    let shop = fixture("shop.yaml");
    let payments = fixture("payments.yaml");
    let code = fixture("code-hosting.yaml");
    let mut generators = [
        Traffic::new(&shop, "shop", 1).routed(),
        Traffic::new(&payments, "payments", 2),
        Traffic::new(&code, "code-hosting", 3),
    ];
    write_db(db, (0..n).map(|i| generators[i % 3].next_record()));
}

/// The inventory inputs for [`write_mixed_traffic`]: owners for shop and
/// code-hosting, and their specs.
pub fn mixed_inputs() -> palisade_inventory::InventoryInputs {
    let mut inputs = palisade_inventory::InventoryInputs::default();
    for (name, file) in [("shop", "shop.yaml"), ("code-hosting", "code-hosting.yaml")] {
        inputs.services.insert(
            name.to_owned(),
            palisade_inventory::ServiceInputs {
                owner: Some(format!("team-{name}")),
                spec: Some(palisade_inventory::SpecInput {
                    source: file.to_owned(),
                    spec: fixture(file),
                }),
                retired: Vec::new(),
            },
        );
    }
    inputs
}

/// A fixture spec from `testdata/specs`.
pub fn fixture(name: &str) -> ApiSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/specs")
        .join(name);
    ApiSpec::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// `/users/{id}/files/{name}` → `/users/{}/files/{}`.
pub fn normalised(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}
