//! The inventory builder: audit records in, per-endpoint facts, flags and
//! risk out. The rules are in the [crate documentation](crate#the-inventory).

mod declared;
mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::Path;

use palisade_audit::{AuditQuery, AuditRecord, Direction};
use palisade_openapi::{ApiSpec, RouteMatch};
use time::{OffsetDateTime, UtcOffset};

use crate::error::{InventoryError, ObserveError, OptionsError};
use crate::risk;
use crate::snapshot::{
    BodySnapshot, CallerCount, Drift, DriftLocation, EndpointSnapshot, EndpointSource,
    FieldSnapshot, Flag, PathParam, RecordCounts, ResponseSnapshot, Risk, ServiceSnapshot,
    Snapshot, Zombie, SNAPSHOT_FORMAT,
};
use crate::template::{PathTemplater, SegmentKind, Template, TemplateSet, TemplaterOptions};
use declared::Declared;
use stats::{EndpointStats, FieldSet};

/// Default [`InventoryOptions::compact_after`].
pub const DEFAULT_COMPACT_AFTER: usize = 20_000;

/// What the inventory knows about the services besides their traffic:
/// owners, specs and retired routes (from `palisade.toml`, `--spec`, or the
/// control plane's own registry).
#[derive(Debug, Clone, Default)]
pub struct InventoryInputs {
    /// Per service name. Services that appear only in traffic have no
    /// owner, no spec and nothing retired.
    pub services: BTreeMap<String, ServiceInputs>,
    /// Only records at or after this instant count (`--since`); the
    /// inventory ignores older ones it is given.
    pub since: Option<OffsetDateTime>,
}

/// What is known about one service.
#[derive(Debug, Clone, Default)]
pub struct ServiceInputs {
    /// The owning team; a service without one is an orphan.
    pub owner: Option<String>,
    /// The spec traffic is compared with (shadow, unused, drift, zombie).
    pub spec: Option<SpecInput>,
    /// Routes retired by configuration: still-called ones are zombies.
    pub retired: Vec<RetiredRoute>,
}

/// A service's OpenAPI spec and where it came from.
#[derive(Debug, Clone)]
pub struct SpecInput {
    /// Shown in the snapshot (`spec`): the file it was loaded from.
    pub source: String,
    /// The spec.
    pub spec: ApiSpec,
}

/// A route taken out of service by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredRoute {
    /// The method (any case), or `*` for every method.
    pub method: String,
    /// The route template; parameter names do not matter
    /// (`/v1/users/{id}` retires `/v1/users/{userId}`).
    pub route: String,
}

impl RetiredRoute {
    fn covers(&self, method: &str, template: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && normalize_template(&self.route) == normalize_template(template)
    }
}

/// Tuning of the builder.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InventoryOptions {
    /// How paths outside a spec fold into templates; valid by construction
    /// (see [`with_templater`](InventoryOptions::with_templater)).
    templater: TemplaterOptions,
    /// Distinct pending path keys per service (paths outside any spec,
    /// with typed segments such as integers and UUIDs already folded)
    /// before they are merged into the templates learned so far. Bounds
    /// memory on services with many free-form paths; does not change the
    /// result.
    pub compact_after: usize,
}

impl InventoryOptions {
    /// These options with `templater` deciding how paths outside a spec
    /// fold into templates, if those are valid.
    pub fn with_templater(
        mut self,
        templater: TemplaterOptions,
    ) -> Result<InventoryOptions, OptionsError> {
        PathTemplater::with_options(templater.clone())?;
        self.templater = templater;
        Ok(self)
    }

    /// The templater options in force.
    pub fn templater(&self) -> &TemplaterOptions {
        &self.templater
    }
}

impl Default for InventoryOptions {
    fn default() -> Self {
        InventoryOptions {
            templater: TemplaterOptions::default(),
            compact_after: DEFAULT_COMPACT_AFTER,
        }
    }
}

/// The live API inventory, built incrementally from audit records.
///
/// Feed records with [`observe`](Inventory::observe) (in any order, from a
/// stream: nothing per record is kept) or [`read_sqlite`](Inventory::read_sqlite),
/// and take a [`Snapshot`] whenever one is wanted; the control plane keeps
/// one `Inventory` and observes records as they are written.
///
/// ```
/// use palisade_audit::{AuditRecord, AuthMethod, Decision, Direction};
/// use palisade_inventory::{Flag, Inventory, InventoryInputs, InventoryOptions};
/// use time::macros::datetime;
///
/// let mut inventory = Inventory::new(InventoryInputs::default(), InventoryOptions::default());
/// for (n, id) in [17, 42, 99].into_iter().enumerate() {
///     inventory.observe(&AuditRecord {
///         ts: datetime!(2026-05-01 12:00 UTC) + time::Duration::seconds(n as i64),
///         request_id: format!("r{n}"),
///         caller: Some("spiffe://example.org/ns/prod/sa/orders".into()),
///         auth: AuthMethod::Mtls,
///         service: "billing".into(),
///         method: Some("GET".into()),
///         path: Some(format!("/invoices/{id}")),
///         route: None,
///         decision: Decision::Allow,
///         code: None,
///         policies: vec![],
///         status: Some(200),
///         latency_us: 800,
///         bytes_in: 0,
///         bytes_out: 120,
///         data_classes: vec![],
///         peer: None,
///         direction: Direction::Inbound,
///         detail: None,
///         findings: vec![],
///         ratelimit_degraded: false,
///         shape: None,
///     });
/// }
/// let snapshot = inventory.snapshot(datetime!(2026-05-01 13:00 UTC));
/// let endpoint = snapshot.endpoint("billing", "GET", "/invoices/{invoiceId}").unwrap();
/// assert_eq!(endpoint.calls, 3);
/// assert_eq!(endpoint.flags, [Flag::Orphan], "billing has no owner");
/// ```
#[derive(Debug)]
pub struct Inventory {
    services: BTreeMap<String, Service>,
    options: InventoryOptions,
    since: Option<OffsetDateTime>,
    counts: RecordCounts,
}

impl Inventory {
    /// An empty inventory of the services in `inputs` (more appear as
    /// their records arrive).
    pub fn new(inputs: InventoryInputs, options: InventoryOptions) -> Inventory {
        let services = inputs
            .services
            .into_iter()
            .map(|(name, service)| (name, Service::new(service, &options)))
            .collect();
        Inventory {
            services,
            options,
            since: inputs.since,
            counts: RecordCounts::default(),
        }
    }

    /// Counts one record. Only inbound records that reached routing (with
    /// a method and a path) inside the window name an endpoint; the others
    /// are only counted in [`RecordCounts`].
    pub fn observe(&mut self, record: &AuditRecord) {
        self.counts.read += 1;
        if record.direction != Direction::Inbound {
            self.counts.outbound += 1;
            return;
        }
        if self.since.is_some_and(|since| record.ts < since) {
            self.counts.outside_window += 1;
            return;
        }
        let (Some(method), Some(path)) = (record.method.as_deref(), record.path.as_deref()) else {
            self.counts.before_routing += 1;
            return;
        };
        let service = match self.services.get_mut(record.service.as_str()) {
            Some(service) => service,
            None => self
                .services
                .entry(record.service.clone())
                .or_insert_with(|| Service::new(ServiceInputs::default(), &self.options)),
        };
        if service.observe(record, method, path, &self.options) {
            self.counts.counted += 1;
        } else {
            self.counts.unparseable += 1;
        }
    }

    /// Streams the records of a SQLite audit database (those at or after
    /// `since`, oldest first) into the inventory. Returns how many were
    /// read.
    pub fn read_sqlite(&mut self, db: &Path) -> Result<u64, InventoryError> {
        let query = AuditQuery {
            since: self.since,
            ..AuditQuery::default()
        };
        Ok(palisade_audit::for_each_record(db, &query, |record| {
            self.observe(&record);
            ControlFlow::Continue(())
        })?)
    }

    /// What happened to the records observed so far.
    pub fn counts(&self) -> &RecordCounts {
        &self.counts
    }

    /// The inventory now: every service (by name) with its endpoints,
    /// flags, drift and risk. `generated_at` is the snapshot's timestamp
    /// (the builder has no clock).
    pub fn snapshot(&self, generated_at: OffsetDateTime) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            generated_at: rfc3339(generated_at),
            since: self.since.map(rfc3339),
            records: self.counts.clone(),
            services: self
                .services
                .iter()
                .map(|(name, service)| ServiceSnapshot {
                    name: name.clone(),
                    owner: service.owner.clone(),
                    spec: service.spec.as_ref().map(|spec| spec.source.clone()),
                    endpoints: service.endpoints(),
                })
                .collect(),
        }
    }
}

/// A spec with its operations' declarations.
#[derive(Debug)]
struct SpecModel {
    source: String,
    spec: ApiSpec,
    /// By (method, template).
    declared: BTreeMap<(String, String), Declared>,
}

/// Endpoint stats by template, then method.
type ByTemplate = HashMap<String, HashMap<String, EndpointStats>>;

/// One service's state.
#[derive(Debug)]
struct Service {
    owner: Option<String>,
    spec: Option<SpecModel>,
    retired: Vec<RetiredRoute>,
    /// Calls whose template is known: the sidecar's route, or the spec's.
    routed: ByTemplate,
    /// Calls outside any known route, by pending key (see [`pending_key`])
    /// or, after a compaction, by the template they matched then.
    pending: ByTemplate,
    templater: PathTemplater,
    /// The templates of the last compaction, which later paths are keyed by.
    compacted: Option<TemplateSet>,
    next_compaction: usize,
    /// Route templates the sidecar named in records.
    known_routes: HashSet<String>,
}

impl Service {
    fn new(inputs: ServiceInputs, options: &InventoryOptions) -> Service {
        let spec = inputs.spec.map(|input| {
            let declared = input
                .spec
                .operations()
                .map(|op| {
                    (
                        (op.method.clone(), op.template.clone()),
                        Declared::of(&input.spec, op),
                    )
                })
                .collect();
            SpecModel {
                source: input.source,
                spec: input.spec,
                declared,
            }
        });
        Service {
            owner: inputs.owner,
            spec,
            retired: inputs.retired,
            routed: HashMap::new(),
            pending: HashMap::new(),
            // `InventoryOptions` only holds templater options that
            // `with_templater` checked, so this never falls back.
            templater: PathTemplater::with_options(options.templater.clone()).unwrap_or_default(),
            compacted: None,
            next_compaction: options.compact_after.max(1),
            known_routes: HashSet::new(),
        }
    }

    /// Counts `record`; `false` when its path cannot be templated.
    fn observe(
        &mut self,
        record: &AuditRecord,
        method: &str,
        path: &str,
        options: &InventoryOptions,
    ) -> bool {
        // Audit paths carry no query; strip one defensively all the same.
        let path = path.split(['?', '#']).next().unwrap_or(path);
        if let Some(route) = &record.route {
            if !self.known_routes.contains(route.as_str()) {
                self.known_routes.insert(route.clone());
            }
            bump(&mut self.routed, route, method, record, path);
            return true;
        }
        if let Some(spec) = &self.spec {
            // A record without a route but inside the spec: the sidecar had
            // no spec (it is given to the inventory only), or the template
            // lacks the method (shadow method on a documented path).
            let template = match spec.spec.match_route(method, path) {
                RouteMatch::Found { operation, .. } => Some(operation.template.as_str()),
                RouteMatch::MethodNotAllowed { template, .. } => Some(template),
                RouteMatch::NotFound => None,
            };
            if let Some(template) = template {
                bump(&mut self.routed, template, method, record, path);
                return true;
            }
        }
        match self.templater.observe(Some(method), path) {
            // A full templater still leaves the pending key to count by.
            Ok(()) | Err(ObserveError::Full { .. }) => {}
            Err(_) => return false,
        }
        let key = match self
            .compacted
            .as_ref()
            .and_then(|set| set.match_template(path))
        {
            Some(template) => template.as_str().to_owned(),
            None => pending_key(path),
        };
        bump(&mut self.pending, &key, method, record, path);
        if self.pending.len() >= self.next_compaction {
            self.compact(options);
        }
        true
    }

    /// Merges pending keys that fall under one template learned so far.
    /// Templates only ever get coarser as paths are observed (a folded
    /// position stays folded), so what is merged now stays together.
    fn compact(&mut self, options: &InventoryOptions) {
        let set = self.templater.templates();
        let pending = std::mem::take(&mut self.pending);
        for (key, methods) in pending {
            for (method, stats) in methods {
                let key = set
                    .match_template(&stats.sample_path)
                    .map_or_else(|| key.clone(), |t| t.as_str().to_owned());
                merge_into(&mut self.pending, key, method, &stats);
            }
        }
        self.compacted = Some(set);
        // Keys that do not fold (a full templater) must not make every
        // record compact again.
        self.next_compaction = options.compact_after.max(1).max(self.pending.len() * 2);
    }

    /// The endpoints, by template then method.
    fn endpoints(&self) -> Vec<EndpointSnapshot> {
        let templates = self.templater.templates();

        // Templates folded from paths are renamed to a known route with the
        // same shape, so `/users/{userId}` does not stand beside the
        // spec's `/users/{id}`. The spec wins, then routes in byte order.
        let mut known: HashMap<String, &str> = HashMap::new();
        if let Some(spec) = &self.spec {
            for template in spec.spec.route_templates() {
                known
                    .entry(normalize_template(template))
                    .or_insert(template);
            }
        }
        let routes: BTreeSet<&str> = self.known_routes.iter().map(String::as_str).collect();
        for route in routes {
            known.entry(normalize_template(route)).or_insert(route);
        }

        let mut merged: BTreeMap<(String, String), Merged> = BTreeMap::new();
        for (template, methods) in &self.routed {
            for (method, stats) in methods {
                merged
                    .entry((template.clone(), method.clone()))
                    .or_default()
                    .add(stats, None);
            }
        }
        for (key, methods) in &self.pending {
            for (method, stats) in methods {
                let learned = templates.match_template(&stats.sample_path);
                let template = learned.map_or(key.as_str(), Template::as_str);
                let kinds = learned.map(param_kinds);
                let template = known
                    .get(&normalize_template(template))
                    .copied()
                    .unwrap_or(template);
                merged
                    .entry((template.to_owned(), method.clone()))
                    .or_default()
                    .add(stats, kinds);
            }
        }
        if let Some(spec) = &self.spec {
            for (method, template) in spec.declared.keys() {
                merged
                    .entry((template.clone(), method.clone()))
                    .or_default();
            }
        }
        merged
            .into_iter()
            .map(|((template, method), merged)| self.endpoint(template, method, merged))
            .collect()
    }

    fn endpoint(&self, template: String, method: String, merged: Merged) -> EndpointSnapshot {
        let declared = self
            .spec
            .as_ref()
            .and_then(|spec| spec.declared.get(&(method.clone(), template.clone())));
        let stats = merged.stats;
        let calls = stats.as_ref().map_or(0, |s| s.calls);

        let zombie = if calls > 0 {
            let deprecated = declared.is_some_and(|d| d.deprecated);
            let retired = self.retired.iter().any(|r| r.covers(&method, &template));
            (deprecated || retired).then(|| Zombie {
                deprecated,
                retired,
                answered_2xx: stats
                    .as_ref()
                    .map_or(0, |s| s.app_statuses.range(200..300).map(|(_, n)| n).sum()),
            })
        } else {
            None
        };
        let drift = match (declared, &stats) {
            (Some(declared), Some(stats)) => drift(declared, stats),
            _ => Vec::new(),
        };

        let mut flags = Vec::new();
        if self.spec.is_some() && declared.is_none() && calls > 0 {
            flags.push(Flag::Shadow);
        }
        if zombie.is_some() {
            flags.push(Flag::Zombie);
        }
        if declared.is_some() && calls == 0 {
            flags.push(Flag::Unused);
        }
        if self.owner.is_none() {
            flags.push(Flag::Orphan);
        }
        if !drift.is_empty() {
            flags.push(Flag::Drift);
        }

        let params = template_params(&template, merged.kinds.as_deref());
        let mut endpoint = EndpointSnapshot {
            source: if declared.is_some() {
                EndpointSource::Spec
            } else {
                EndpointSource::Traffic
            },
            operation_id: declared.and_then(|d| d.operation_id.clone()),
            params,
            first_seen: stats.as_ref().map(|s| rfc3339(s.first_seen)),
            last_seen: stats.as_ref().map(|s| rfc3339(s.last_seen)),
            calls,
            denied: stats.as_ref().map_or(0, |s| s.denied),
            callers: stats.as_ref().map_or_else(Vec::new, |s| {
                let mut callers: Vec<CallerCount> = s
                    .callers
                    .iter()
                    .map(|(caller, calls)| CallerCount {
                        caller: caller.clone(),
                        calls: *calls,
                    })
                    .collect();
                callers.sort_by(|a, b| a.caller.cmp(&b.caller));
                callers
            }),
            statuses: stats.as_ref().map_or_else(BTreeMap::new, |s| {
                s.statuses
                    .iter()
                    .map(|(status, n)| {
                        (
                            status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                            *n,
                        )
                    })
                    .collect()
            }),
            sampled: stats.as_ref().map_or(0, |s| s.sampled),
            query: stats.as_ref().map_or_else(Vec::new, |s| fields(&s.query)),
            request: stats
                .as_ref()
                .map_or_else(BodySnapshot::default, |s| BodySnapshot {
                    samples: s.request.samples,
                    fields: fields(&s.request),
                }),
            responses: stats.as_ref().map_or_else(Vec::new, |s| {
                s.responses
                    .iter()
                    .map(|(status, set)| ResponseSnapshot {
                        status: *status,
                        samples: set.samples,
                        fields: fields(set),
                    })
                    .collect()
            }),
            data_classes: stats
                .as_ref()
                .map_or_else(Vec::new, |s| s.data_classes.iter().cloned().collect()),
            owner: self.owner.clone(),
            flags,
            zombie,
            drift,
            method,
            template,
            risk: Risk::default(),
        };
        endpoint.risk = risk::assess(&endpoint);
        endpoint
    }
}

/// Stats merged into one endpoint, with the parameter kinds learned by the
/// templater when the template was folded from paths.
#[derive(Debug, Default)]
struct Merged {
    stats: Option<EndpointStats>,
    kinds: Option<Vec<Vec<String>>>,
}

impl Merged {
    fn add(&mut self, stats: &EndpointStats, kinds: Option<Vec<Vec<String>>>) {
        match &mut self.stats {
            Some(ours) => ours.merge(stats),
            None => self.stats = Some(stats.clone()),
        }
        if self.kinds.is_none() {
            self.kinds = kinds;
        }
    }
}

/// Counts `record` under (`template`, `method`).
fn bump(map: &mut ByTemplate, template: &str, method: &str, record: &AuditRecord, path: &str) {
    let methods = match map.get_mut(template) {
        Some(methods) => methods,
        None => map.entry(template.to_owned()).or_default(),
    };
    match methods.get_mut(method) {
        Some(stats) => stats.add(record),
        None => {
            let mut stats = EndpointStats::new(record, path);
            stats.add(record);
            methods.insert(method.to_owned(), stats);
        }
    }
}

fn merge_into(map: &mut ByTemplate, template: String, method: String, stats: &EndpointStats) {
    let methods = map.entry(template).or_default();
    match methods.get_mut(&method) {
        Some(ours) => ours.merge(stats),
        None => {
            methods.insert(method, stats.clone());
        }
    }
}

/// A path's key until templates are known: typed segments (integers,
/// UUIDs, dates, hashes, e-mails, tokens), which are parameters from the
/// first sample, replaced by `{<kind><n>}`; other segments kept. All paths
/// of one key fall under one template whatever is observed later, so their
/// stats can be kept together.
fn pending_key(path: &str) -> String {
    let mut key = String::with_capacity(path.len());
    let mut params = 0;
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        key.push('/');
        match SegmentKind::of(segment) {
            Some(kind) => {
                params += 1;
                key.push('{');
                key.push_str(kind.as_str());
                key.push_str(&params.to_string());
                key.push('}');
            }
            None => key.push_str(segment),
        }
    }
    key
}

/// `/users/{id}/files/{name}.{ext}` → `/users/{}/files/{}.{}`: the shape
/// of a template regardless of parameter names.
pub(crate) fn normalize_template(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match (c, in_param) {
            ('{', false) => {
                in_param = true;
                out.push('{');
            }
            ('}', true) => {
                in_param = false;
                out.push('}');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// The names of a template's parameters, in order.
pub(crate) fn param_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        names.push(after[..close].to_owned());
        rest = &after[close + 1..];
    }
    names
}

/// What each parameter of a learned template accepts.
fn param_kinds(template: &Template) -> Vec<Vec<String>> {
    template
        .params()
        .map(|param| {
            let accepts = param.accepts();
            let mut kinds: Vec<String> = accepts.kinds().map(|k| k.as_str().to_owned()).collect();
            kinds.extend(accepts.shapes().map(|shape| format!("shape:{shape}")));
            if accepts.is_free_form() {
                kinds.push("free_form".to_owned());
            }
            kinds
        })
        .collect()
}

fn template_params(template: &str, kinds: Option<&[Vec<String>]>) -> Vec<PathParam> {
    let names = param_names(template);
    let kinds = kinds.filter(|kinds| kinds.len() == names.len());
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| PathParam {
            name,
            kinds: kinds
                .and_then(|kinds| kinds.get(i))
                .cloned()
                .unwrap_or_default(),
        })
        .collect()
}

fn fields(set: &FieldSet) -> Vec<FieldSnapshot> {
    let mut fields: Vec<FieldSnapshot> = set
        .fields
        .iter()
        .map(|(name, field)| FieldSnapshot {
            name: name.clone(),
            types: field.types.iter().cloned().collect(),
            classes: field.classes.iter().cloned().collect(),
            seen: field.seen,
        })
        .collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    fields
}

/// What the calls used that `declared` does not declare.
fn drift(declared: &Declared, stats: &EndpointStats) -> Vec<Drift> {
    let mut out = Vec::new();
    let item = |location, name: &str, status, seen| Drift {
        location,
        name: name.to_owned(),
        status,
        seen,
    };
    for field in fields(&stats.query) {
        if !declared.declares_query(&field.name) {
            out.push(item(DriftLocation::Query, &field.name, None, field.seen));
        }
    }
    if !stats.request.fields.is_empty() {
        match &declared.request {
            // One item for a whole body where none is declared.
            None => out.push(item(
                DriftLocation::Request,
                "",
                None,
                stats.request.samples,
            )),
            Some(declared) => {
                for field in fields(&stats.request) {
                    if !declared.declares(&field.name) {
                        out.push(item(DriftLocation::Request, &field.name, None, field.seen));
                    }
                }
            }
        }
    }
    for (status, calls) in &stats.app_statuses {
        if declared.response(*status).is_none() {
            out.push(item(
                DriftLocation::Status,
                &status.to_string(),
                None,
                *calls,
            ));
        }
    }
    for (status, set) in &stats.responses {
        match declared.response(*status) {
            // The undeclared status is the drift; its fields follow from it.
            None => {}
            Some(None) => out.push(item(
                DriftLocation::Response,
                "",
                Some(*status),
                set.samples,
            )),
            Some(Some(declared)) => {
                for field in fields(set) {
                    if !declared.declares(&field.name) {
                        out.push(item(
                            DriftLocation::Response,
                            &field.name,
                            Some(*status),
                            field.seen,
                        ));
                    }
                }
            }
        }
    }
    out
}

/// RFC 3339 in UTC with six fractional digits, as audit records write `ts`.
pub(crate) fn rfc3339(ts: OffsetDateTime) -> String {
    let utc = ts.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.microsecond(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_templater_options_are_refused() {
        let templater = TemplaterOptions {
            word_threshold: 1,
            ..TemplaterOptions::default()
        };
        assert_eq!(
            InventoryOptions::default()
                .with_templater(templater)
                .unwrap_err(),
            OptionsError::WordThreshold(1)
        );
        let templater = TemplaterOptions {
            shape_threshold: 3,
            ..TemplaterOptions::default()
        };
        let options = InventoryOptions::default()
            .with_templater(templater)
            .unwrap();
        assert_eq!(options.templater().shape_threshold, 3);
    }

    #[test]
    fn pending_keys_fold_typed_segments_only() {
        assert_eq!(
            pending_key("/users/42/orders/0b7e1a52-3f0c-4d0e-9c64-2f1d8a7b6c5e"),
            "/users/{integer1}/orders/{uuid2}"
        );
        assert_eq!(pending_key("/products/AB-1234"), "/products/AB-1234");
        assert_eq!(pending_key("/"), "/");
    }

    #[test]
    fn templates_normalize_without_parameter_names() {
        assert_eq!(
            normalize_template("/users/{id}/files/{name}.{ext}"),
            "/users/{}/files/{}.{}"
        );
        assert_eq!(
            param_names("/users/{id}/files/{name}.{ext}"),
            ["id", "name", "ext"]
        );
        assert!(RetiredRoute {
            method: "get".into(),
            route: "/v1/users/{id}".into()
        }
        .covers("GET", "/v1/users/{userId}"));
        assert!(RetiredRoute {
            method: "*".into(),
            route: "/v1/users/{id}".into()
        }
        .covers("DELETE", "/v1/users/{userId}"));
        assert!(!RetiredRoute {
            method: "GET".into(),
            route: "/v1/users/{id}".into()
        }
        .covers("GET", "/v1/users/me"));
    }
}
