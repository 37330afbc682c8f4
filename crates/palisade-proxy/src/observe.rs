//! observe: what the live API inventory learns from an exchange — query parameter names,
//! JSON field paths of the request and response bodies, their JSON types and data classes
//! ([`palisade_inventory`]) — never a value.
//!
//! The work is split so that the request path only collects: the decision to observe is a
//! counter at request start ([`Sampler`]); bodies a stage already buffered or parsed are
//! reused; streamed bodies are teed as `Bytes` handles (no copy) up to the configured
//! limit ([`BodyTap`]). Parsing and classification happen in the record stage
//! ([`Observation::finish`]), once the response's last byte was handed to hyper, in a task
//! of their own (see `PendingRecord` in `context.rs`) so the flush of that byte does not
//! wait for them. Outbound requests are not observed: the callee's sidecar sees them.
//!
//! Bounds, so a hostile exchange cannot bloat the audit log: bodies over
//! `max_body_bytes` yield no fields (`truncated`), each list keeps at most [`MAX_FIELDS`]
//! names of at most [`MAX_NAME_BYTES`] bytes (the rest is dropped, `truncated` again), and
//! a query parameter name or JSON object key that is itself a sensitive value (a map keyed
//! by e-mail addresses) is written as `*`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderMap;
use palisade_audit::{ExchangeShape, FieldShape};
use palisade_config::InventorySettings;
use palisade_inventory::{classify_json, classify_str, DataClasses, JsonType, JsonTypes};
use serde_json::Value;

/// Most names kept per list (query, request body, response body).
pub const MAX_FIELDS: usize = 256;

/// Longest name (query parameter or JSON path) kept, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// A service's observation settings: which requests to observe, and how much body to read.
#[derive(Debug)]
pub struct Observer {
    sampler: Sampler,
    max_body_bytes: usize,
}

impl Observer {
    /// The observer `[service.inventory]` asks for; `None` when observation is off.
    pub fn new(settings: &InventorySettings) -> Option<Observer> {
        (settings.observe && settings.sample_rate > 0.0).then(|| Observer {
            sampler: Sampler::new(settings.sample_rate),
            max_body_bytes: settings.max_body_bytes,
        })
    }

    /// Decides whether this request is observed; if so, starts its observation with the
    /// request's raw query (decoded only in the record stage).
    pub fn sample(&self, query: Option<&str>) -> Option<Observation> {
        self.sampler.sample().then(|| Observation {
            limit: self.max_body_bytes,
            query: query.filter(|q| !q.is_empty()).map(str::to_owned),
            request: RequestBody::None,
            truncated: false,
        })
    }
}

/// Observes `rate` of the requests, spread evenly: request `n` is observed when
/// `⌊(n+1)·rate⌋ > ⌊n·rate⌋`. A counter rather than a hash of the request id, which a
/// caller chooses and could pick so as never to be observed.
#[derive(Debug)]
pub struct Sampler {
    rate: f64,
    seen: AtomicU64,
}

impl Sampler {
    /// A sampler of `rate` (clamped to 0.0–1.0).
    pub fn new(rate: f64) -> Sampler {
        Sampler {
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
            seen: AtomicU64::new(0),
        }
    }

    /// Whether the next request is observed.
    pub fn sample(&self) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        // Exact below 2^53 requests; beyond, an occasional extra or missed sample.
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.rate).floor() > (n * self.rate).floor()
    }
}

/// What one observed request has collected for the record stage. Holds the raw query and
/// body, so it is never logged (its `Debug` shows sizes only) and never stored.
pub struct Observation {
    limit: usize,
    query: Option<String>,
    request: RequestBody,
    truncated: bool,
}

/// Where the request body's fields come from.
enum RequestBody {
    /// No body, or not JSON.
    None,
    /// Buffered by a stage (validate, inspect), parsed or not.
    Buffered { bytes: Bytes, parsed: Option<Value> },
    /// Streamed to the app; the tee deposits what it saw when the body ends.
    Streamed(Arc<OnceLock<BodyTap>>),
}

impl fmt::Debug for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = match &self.request {
            RequestBody::None => "none".to_owned(),
            RequestBody::Buffered { bytes, parsed } => {
                format!(
                    "buffered {} bytes, parsed: {}",
                    bytes.len(),
                    parsed.is_some()
                )
            }
            RequestBody::Streamed(_) => "streamed".to_owned(),
        };
        f.debug_struct("Observation")
            .field("limit", &self.limit)
            .field("query_len", &self.query.as_ref().map(String::len))
            .field("request", &request)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl Observation {
    /// A request body a stage buffered, with its JSON when a stage parsed it; otherwise
    /// `parse_later` says whether the record stage should parse it (declared JSON that no
    /// stage tried to parse).
    pub fn buffered_request(&mut self, bytes: &Bytes, parsed: Option<Value>, parse_later: bool) {
        if bytes.len() > self.limit {
            self.truncated = true;
        } else if parsed.is_some() || parse_later {
            self.request = RequestBody::Buffered {
                bytes: bytes.clone(),
                parsed,
            };
        }
    }

    /// A request body the sidecar could not buffer because it was too large for a stage.
    pub fn request_too_large(&mut self) {
        self.truncated = true;
    }

    /// The tee for a streamed JSON request body (`declared`: its `Content-Length`), or
    /// `None` when the declared length is already over the limit.
    pub fn tap_request(&mut self, declared: Option<u64>) -> Option<RequestTap> {
        if declared.is_some_and(|len| len > self.limit as u64) {
            self.truncated = true;
            return None;
        }
        let sink = Arc::new(OnceLock::new());
        self.request = RequestBody::Streamed(sink.clone());
        Some(RequestTap {
            tap: Some(BodyTap::new(self.limit)),
            sink,
        })
    }

    /// The tee for the app's response body, when it is JSON the record stage can read
    /// (`application/json` or `+json`, not content-encoded) and not declared over the limit.
    pub fn tap_response(&mut self, headers: &HeaderMap) -> Option<BodyTap> {
        let encoded = headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if !is_json(headers) || encoded {
            return None;
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.limit as u64) {
            self.truncated = true;
            return None;
        }
        Some(BodyTap::new(self.limit))
    }

    /// Whether a request body was collected (the record stage then has parsing to do).
    pub fn has_body(&self) -> bool {
        !matches!(self.request, RequestBody::None)
    }

    /// The record stage: parses and classifies what was collected. Returns the shape and
    /// the union of every data class seen (the record's `data_classes`).
    pub fn finish(self, response: Option<BodyTap>) -> (ExchangeShape, DataClasses) {
        let mut shape = ExchangeShape {
            truncated: self.truncated,
            ..ExchangeShape::default()
        };
        let mut classes = DataClasses::EMPTY;
        if let Some(query) = &self.query {
            classes |= query_fields(query, &mut shape.query, &mut shape.truncated);
        }
        let request = match self.request {
            RequestBody::None => None,
            RequestBody::Buffered {
                parsed: Some(value),
                ..
            } => Some(value),
            RequestBody::Buffered {
                bytes,
                parsed: None,
            } => parse("request", &bytes),
            // Nothing deposited: the app answered before the body ended, fields unknown.
            // (The body itself may still be held by the client connection, so the sink is
            // read, not unwrapped.)
            RequestBody::Streamed(sink) => sink
                .get()
                .and_then(|tap| body_value("request", tap, &mut shape.truncated)),
        };
        if let Some(value) = request {
            classes |= json_fields(&value, &mut shape.request, &mut shape.truncated);
        }
        if let Some(value) =
            response.and_then(|tap| body_value("response", &tap, &mut shape.truncated))
        {
            classes |= json_fields(&value, &mut shape.response, &mut shape.truncated);
        }
        (shape, classes)
    }
}

/// Whether the headers declare a JSON body (`application/json` or `…+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .is_some_and(|media| media == "application/json" || media.ends_with("+json"))
}

/// A tee of a body: clones of its chunks (reference counts, not copies) up to a limit.
#[derive(Debug)]
pub struct BodyTap {
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    state: TapState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TapState {
    /// Still receiving.
    Open,
    /// The body ended within the limit.
    Complete,
    /// The body passed the limit; nothing is kept.
    Overflowed,
}

impl BodyTap {
    /// A tee that keeps at most `limit` bytes.
    pub fn new(limit: usize) -> BodyTap {
        BodyTap {
            chunks: Vec::new(),
            len: 0,
            limit,
            state: TapState::Open,
        }
    }

    /// Keeps a chunk; past the limit, drops everything kept and stops.
    pub fn push(&mut self, data: &Bytes) {
        if self.state != TapState::Open {
            return;
        }
        self.len = self.len.saturating_add(data.len());
        if self.len > self.limit {
            self.state = TapState::Overflowed;
            self.chunks = Vec::new();
        } else if !data.is_empty() {
            self.chunks.push(data.clone());
        }
    }

    /// The body ended.
    pub fn end(&mut self) {
        if self.state == TapState::Open {
            self.state = TapState::Complete;
        }
    }

    fn overflowed(&self) -> bool {
        self.state == TapState::Overflowed
    }
}

/// The request body's tee, carried by the streaming request body; hands what it saw to
/// the observation when the body ends (or passes the limit).
#[derive(Debug)]
pub struct RequestTap {
    tap: Option<BodyTap>,
    sink: Arc<OnceLock<BodyTap>>,
}

impl RequestTap {
    /// Keeps a chunk of the request body.
    pub fn push(&mut self, data: &Bytes) {
        if let Some(tap) = self.tap.as_mut() {
            tap.push(data);
            if tap.overflowed() {
                self.deposit();
            }
        }
    }

    /// The request body ended.
    pub fn end(&mut self) {
        if let Some(tap) = self.tap.as_mut() {
            tap.end();
            self.deposit();
        }
    }

    fn deposit(&mut self) {
        if let Some(tap) = self.tap.take() {
            // Only this tee ever sets the sink, once.
            let _ = self.sink.set(tap);
        }
    }
}

/// The JSON value of a teed body: `None` when it did not end (client or app gone), was
/// over the limit (then `truncated`), was empty, or is not JSON.
fn body_value(which: &'static str, tap: &BodyTap, truncated: &mut bool) -> Option<Value> {
    match tap.state {
        TapState::Overflowed => {
            *truncated = true;
            None
        }
        TapState::Open => None,
        TapState::Complete => match tap.chunks.as_slice() {
            [] => None,
            [one] => parse(which, one),
            many => parse(which, &many.concat()),
        },
    }
}

fn parse(which: &'static str, bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            // The error names a position and category, never the content.
            tracing::debug!(body = which, error = %e, "observed body declared JSON is not; no fields");
            None
        }
    }
}

/// A field as it is being collected.
#[derive(Clone, Copy, Default)]
struct Collected {
    types: JsonTypes,
    classes: DataClasses,
}

impl Collected {
    fn add(&mut self, types: JsonTypes, classes: DataClasses) {
        for ty in types.iter() {
            self.types.insert(ty);
        }
        self.classes |= classes;
    }
}

fn field_shape(name: String, field: Collected) -> FieldShape {
    FieldShape {
        name,
        types: field.types.iter().map(|t| t.as_str().to_owned()).collect(),
        classes: field
            .classes
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }
}

/// The classes a name carries when it is itself a value (an e-mail address as a key).
fn name_classes(name: &str) -> DataClasses {
    classify_str(None, name)
}

/// Query parameters, percent-decoded (`+` is a space), in first-seen order; each value
/// classified with its name as the hint. Returns the classes seen.
fn query_fields(query: &str, out: &mut Vec<FieldShape>, truncated: &mut bool) -> DataClasses {
    let mut fields: Vec<(String, Collected)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut all = DataClasses::EMPTY;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value_classes = classify_str(Some(name.as_ref()), &value);
        let key_classes = name_classes(&name);
        all |= value_classes | key_classes;
        let name = if key_classes.is_empty() {
            name.into_owned()
        } else {
            "*".to_owned()
        };
        let at = match index.get(&name) {
            Some(&at) => at,
            None if name.len() > MAX_NAME_BYTES || fields.len() >= MAX_FIELDS => {
                *truncated = true;
                continue;
            }
            None => {
                index.insert(name.clone(), fields.len());
                fields.push((name, Collected::default()));
                fields.len() - 1
            }
        };
        if let Some((_, field)) = fields.get_mut(at) {
            field.add(JsonType::String.into(), value_classes | key_classes);
        }
    }
    out.extend(fields.into_iter().map(|(name, f)| field_shape(name, f)));
    all
}

/// The fields of a JSON document, by path (`classify_json`), in path order. Returns the
/// classes seen.
fn json_fields(value: &Value, out: &mut Vec<FieldShape>, truncated: &mut bool) -> DataClasses {
    let profile = classify_json(value);
    let mut all = profile.classes();
    // Every ancestor of a path is a path of its own, so checking each path's last
    // segment finds every key that is a value; the whole-path rewrite is then needed
    // only in that rare case.
    let keyed_by_values = profile.iter().any(|(path, _)| {
        last_segment(path).is_some_and(|key| key != "*" && !name_classes(&key).is_empty())
    });
    let mut keep = |name: String, field: Collected, out: &mut Vec<FieldShape>| {
        if name.len() > MAX_NAME_BYTES || out.len() >= MAX_FIELDS {
            *truncated = true;
        } else {
            out.push(field_shape(name, field));
        }
    };
    if !keyed_by_values {
        for (path, field) in profile.iter() {
            let collected = Collected {
                types: field.types(),
                classes: field.classes(),
            };
            keep(path.to_owned(), collected, out);
        }
        return all;
    }
    let mut merged: BTreeMap<String, Collected> = BTreeMap::new();
    for (path, field) in profile.iter() {
        let (path, key_classes) = without_value_keys(path);
        all |= key_classes;
        merged
            .entry(path)
            .or_default()
            .add(field.types(), field.classes() | key_classes);
    }
    for (path, field) in merged {
        keep(path, field, out);
    }
    all
}

/// The unescaped last segment of a JSON Pointer (`None` for the document itself).
fn last_segment(path: &str) -> Option<Cow<'_, str>> {
    path.rsplit_once('/').map(|(_, segment)| unescape(segment))
}

fn unescape(segment: &str) -> Cow<'_, str> {
    if segment.contains('~') {
        Cow::Owned(segment.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// The path with every key that is a value replaced by `*`, and the classes of the last
/// key when it was one (the member it names carries them).
fn without_value_keys(path: &str) -> (String, DataClasses) {
    let mut out = String::with_capacity(path.len());
    let mut last = DataClasses::EMPTY;
    for segment in path.split('/').skip(1) {
        out.push('/');
        let key_classes = match unescape(segment) {
            key if key == "*" => DataClasses::EMPTY,
            key => name_classes(&key),
        };
        if key_classes.is_empty() {
            out.push_str(segment);
        } else {
            out.push('*');
        }
        last = key_classes;
    }
    (out, last)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    fn observer(limit: usize) -> Observer {
        Observer::new(&InventorySettings {
            max_body_bytes: limit,
            ..InventorySettings::default()
        })
        .unwrap()
    }

    fn names(fields: &[FieldShape]) -> Vec<&str> {
        fields.iter().map(|f| f.name.as_str()).collect()
    }

    fn field<'a>(fields: &'a [FieldShape], name: &str) -> &'a FieldShape {
        fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", names(fields)))
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        headers
    }

    #[test]
    fn sampler_observes_exactly_its_share_spread_evenly() {
        let count = |rate: f64, n: usize| {
            let sampler = Sampler::new(rate);
            (0..n).filter(|_| sampler.sample()).count()
        };
        assert_eq!(count(1.0, 100), 100);
        assert_eq!(count(0.0, 100), 0);
        assert_eq!(count(0.25, 100), 25);
        assert_eq!(count(0.1, 1000), 100);
        assert_eq!(count(f64::NAN, 10), 0);
        let sampler = Sampler::new(0.5);
        let pattern: Vec<bool> = (0..6).map(|_| sampler.sample()).collect();
        assert_eq!(pattern, [false, true, false, true, false, true]);
        let off = InventorySettings {
            observe: false,
            ..InventorySettings::default()
        };
        assert!(Observer::new(&off).is_none());
        let never = InventorySettings {
            sample_rate: 0.0,
            ..InventorySettings::default()
        };
        assert!(Observer::new(&never).is_none());
    }

    #[test]
    fn query_names_are_decoded_and_their_values_classified() {
        let observation = observer(1024)
            .sample(Some(
                "e%6Dail=ada%40example.com&q=x&tag=a&tag=b&full+name=1&flag",
            ))
            .unwrap();
        let (shape, classes) = observation.finish(None);
        assert_eq!(
            names(&shape.query),
            ["email", "q", "tag", "full name", "flag"]
        );
        let email = field(&shape.query, "email");
        assert_eq!(email.types, ["string"]);
        assert_eq!(email.classes, ["email"]);
        assert!(field(&shape.query, "q").classes.is_empty());
        assert_eq!(classes.to_string(), "email");
        assert!(shape.request.is_empty() && shape.response.is_empty());
        assert!(!shape.truncated);
    }

    #[test]
    fn a_parsed_request_body_is_profiled_by_path_without_its_values() {
        let mut observation = observer(4096).sample(None).unwrap();
        let body = json!({
            "customer": {"email": "ada@example.com", "ssn": "123-45-6789", "name": "Ada Lovelace"},
            "card_number": "4111 1111 1111 1111",
            "items": [{"sku": "BOOK-1", "qty": 2}, {"sku": null, "qty": 1.5}],
        });
        let bytes = Bytes::from(body.to_string());
        observation.buffered_request(&bytes, Some(body), true);
        let (shape, classes) = observation.finish(None);
        assert_eq!(
            names(&shape.request),
            [
                "",
                "/card_number",
                "/customer",
                "/customer/email",
                "/customer/name",
                "/customer/ssn",
                "/items",
                "/items/*",
                "/items/*/qty",
                "/items/*/sku",
            ]
        );
        assert_eq!(field(&shape.request, "/customer/ssn").classes, ["us_ssn"]);
        assert_eq!(
            field(&shape.request, "/card_number").classes,
            ["payment_card"]
        );
        assert_eq!(
            field(&shape.request, "/items/*/qty").types,
            ["integer", "number"]
        );
        assert_eq!(
            field(&shape.request, "/items/*/sku").types,
            ["null", "string"]
        );
        assert_eq!(field(&shape.request, "").types, ["object"]);
        assert_eq!(
            classes.to_string(),
            "email, us_ssn, payment_card, person_name"
        );
        let text = serde_json::to_string(&shape).unwrap();
        for value in ["ada@example.com", "123-45-6789", "4111", "Ada", "BOOK-1"] {
            assert!(!text.contains(value), "{value} leaked: {text}");
        }
    }

    #[test]
    fn buffered_json_is_parsed_in_the_record_stage_and_other_media_are_ignored() {
        let mut observation = observer(4096).sample(None).unwrap();
        observation.buffered_request(
            &Bytes::from_static(br#"{"email":"a@example.com"}"#),
            None,
            true,
        );
        let (shape, classes) = observation.finish(None);
        assert_eq!(names(&shape.request), ["", "/email"]);
        assert_eq!(classes.to_string(), "email");

        let mut observation = observer(4096).sample(None).unwrap();
        observation.buffered_request(
            &Bytes::from_static(br#"{"email":"a@example.com"}"#),
            None,
            false,
        );
        let (shape, classes) = observation.finish(None);
        assert!(shape.request.is_empty() && classes.is_empty());

        let mut observation = observer(4096).sample(None).unwrap();
        observation.buffered_request(&Bytes::from_static(b"{not json"), None, true);
        let (shape, _) = observation.finish(None);
        assert!(shape.request.is_empty() && !shape.truncated);
    }

    #[test]
    fn bodies_over_the_limit_are_truncated_and_yield_no_fields() {
        let big =
            Bytes::from(json!({"email": "a@example.com", "pad": "x".repeat(100)}).to_string());
        let mut observation = observer(64).sample(None).unwrap();
        observation.buffered_request(&big, None, true);
        let (shape, classes) = observation.finish(None);
        assert!(shape.truncated && shape.request.is_empty() && classes.is_empty());

        // Streamed: over the limit on the way, without a declared length.
        let mut observation = observer(64).sample(None).unwrap();
        let mut tap = observation.tap_request(None).unwrap();
        for chunk in big.chunks(16) {
            tap.push(&Bytes::copy_from_slice(chunk));
        }
        tap.end();
        drop(tap);
        let (shape, _) = observation.finish(None);
        assert!(shape.truncated && shape.request.is_empty());

        // Declared over the limit: no tee at all.
        let mut observation = observer(64).sample(None).unwrap();
        assert!(observation.tap_request(Some(65)).is_none());
        let mut headers = json_headers();
        headers.insert(http::header::CONTENT_LENGTH, "65".parse().unwrap());
        assert!(observation.tap_response(&headers).is_none());
        assert!(observation.finish(None).0.truncated);

        // The response, over the limit on the way.
        let observation = observer(64).sample(None).unwrap();
        let mut response = BodyTap::new(64);
        response.push(&big);
        response.end();
        let (shape, _) = observation.finish(Some(response));
        assert!(shape.truncated && shape.response.is_empty());
    }

    #[test]
    fn a_streamed_request_and_a_response_are_teed_in_chunks() {
        let mut observation = observer(4096).sample(None).unwrap();
        let mut tap = observation.tap_request(None).unwrap();
        for chunk in [
            &br#"{"contact": {"ph"#[..],
            br#"one": "+44 20 7946 0958"}}"#,
        ] {
            tap.push(&Bytes::copy_from_slice(chunk));
        }
        tap.end();
        let mut response = observation.tap_response(&json_headers()).unwrap();
        response.push(&Bytes::from_static(br#"[{"ip": "#));
        response.push(&Bytes::from_static(br#""10.1.2.3"}]"#));
        response.end();
        let (shape, classes) = observation.finish(Some(response));
        assert_eq!(field(&shape.request, "/contact/phone").classes, ["phone"]);
        assert_eq!(names(&shape.response), ["", "/*", "/*/ip"]);
        assert_eq!(field(&shape.response, "/*/ip").classes, ["ipv4"]);
        assert_eq!(classes.to_string(), "phone, ipv4");
    }

    #[test]
    fn a_body_that_did_not_end_yields_no_fields() {
        let mut observation = observer(4096).sample(None).unwrap();
        let mut tap = observation.tap_request(None).unwrap();
        tap.push(&Bytes::from_static(b"{\"a\": 1}"));
        drop(tap); // the caller went away mid-body
        let mut response = BodyTap::new(4096);
        response.push(&Bytes::from_static(b"{\"b\": 2}"));
        let (shape, _) = observation.finish(Some(response));
        assert!(shape.request.is_empty() && shape.response.is_empty() && !shape.truncated);
    }

    #[test]
    fn responses_are_teed_only_when_json_and_not_content_encoded() {
        let mut observation = observer(4096).sample(None).unwrap();
        assert!(observation.tap_response(&json_headers()).is_some());
        let mut problem = HeaderMap::new();
        problem.insert(
            http::header::CONTENT_TYPE,
            "application/problem+json".parse().unwrap(),
        );
        assert!(observation.tap_response(&problem).is_some());
        let mut html = HeaderMap::new();
        html.insert(http::header::CONTENT_TYPE, "text/html".parse().unwrap());
        assert!(observation.tap_response(&html).is_none());
        assert!(observation.tap_response(&HeaderMap::new()).is_none());
        let mut gzipped = json_headers();
        gzipped.insert(http::header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert!(observation.tap_response(&gzipped).is_none());
        assert!(!observation.finish(None).0.truncated);
    }

    #[test]
    fn keys_that_are_values_are_written_as_a_star() {
        let mut observation = observer(4096)
            .sample(Some("ada%40example.com=1&x=2"))
            .unwrap();
        let body = json!({
            "by_email": {
                "ada@example.com": {"plan": "pro"},
                "grace@example.com": {"plan": "free", "seats": 3},
            },
            "a~b/c": 1,
        });
        let bytes = Bytes::from(body.to_string());
        observation.buffered_request(&bytes, Some(body), true);
        let (shape, classes) = observation.finish(None);
        assert_eq!(names(&shape.query), ["*", "x"]);
        assert_eq!(field(&shape.query, "*").classes, ["email"]);
        assert_eq!(
            names(&shape.request),
            [
                "",
                "/a~0b~1c",
                "/by_email",
                "/by_email/*",
                "/by_email/*/plan",
                "/by_email/*/seats"
            ]
        );
        assert_eq!(field(&shape.request, "/by_email/*").classes, ["email"]);
        assert!(field(&shape.request, "/by_email/*/plan").classes.is_empty());
        assert_eq!(classes.to_string(), "email");
        let text = serde_json::to_string(&shape).unwrap();
        assert!(!text.contains("example.com"), "{text}");
    }

    #[test]
    fn lists_are_bounded_in_length_and_name_size() {
        let query: Vec<String> = (0..MAX_FIELDS + 10).map(|i| format!("p{i}=1")).collect();
        let long = "k".repeat(MAX_NAME_BYTES + 1);
        let mut members = serde_json::Map::new();
        for i in 0..MAX_FIELDS + 10 {
            members.insert(format!("f{i:04}"), json!(i));
        }
        let mut observation = observer(1 << 20)
            .sample(Some(&format!("{}&{long}=1", query.join("&"))))
            .unwrap();
        let body = Value::Object(members);
        let bytes = Bytes::from(body.to_string());
        observation.buffered_request(&bytes, Some(body), true);
        let (shape, _) = observation.finish(None);
        assert_eq!(shape.query.len(), MAX_FIELDS);
        assert_eq!(shape.request.len(), MAX_FIELDS);
        assert!(shape.truncated);
        assert!(shape.query.iter().all(|f| f.name.len() <= MAX_NAME_BYTES));

        let mut observation = observer(4096)
            .sample(Some(&format!("{long}=1&ok=1")))
            .unwrap();
        let body = json!({ long.clone(): 1, "ok": 2 });
        let bytes = Bytes::from(body.to_string());
        observation.buffered_request(&bytes, Some(body), true);
        let (shape, _) = observation.finish(None);
        assert_eq!(names(&shape.query), ["ok"]);
        assert_eq!(names(&shape.request), ["", "/ok"]);
        assert!(shape.truncated);
    }

    #[test]
    fn debug_output_never_shows_the_query_or_body() {
        let mut observation = observer(4096)
            .sample(Some("email=ada%40example.com"))
            .unwrap();
        let body = Bytes::from_static(br#"{"ssn":"123-45-6789"}"#);
        observation.buffered_request(&body, None, true);
        let shown = format!("{observation:?}");
        assert!(!shown.contains("ada") && !shown.contains("6789"), "{shown}");
    }
}
