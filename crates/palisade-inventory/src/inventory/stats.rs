//! What is accumulated per endpoint while records stream in. Everything
//! here grows with the number of distinct callers, statuses and field
//! names, never with the number of records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use palisade_audit::{AuditRecord, Decision, FieldShape};
use time::OffsetDateTime;

/// The fields seen in one part of an exchange (query, request body, the
/// response body of one status) across the samples that had it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSet {
    /// Complete samples of this part (not truncated): the denominator of
    /// "seen in every sample".
    pub(crate) samples: u64,
    pub(crate) fields: HashMap<String, FieldStats>,
}

/// One query parameter or body field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldStats {
    pub(crate) types: BTreeSet<String>,
    pub(crate) classes: BTreeSet<String>,
    /// Complete samples it appeared in.
    pub(crate) seen: u64,
}

impl FieldSet {
    /// Adds one sample's fields. A truncated sample adds types and classes
    /// but is not counted: its missing fields say nothing about
    /// requiredness.
    fn add(&mut self, fields: &[FieldShape], complete: bool) {
        if complete {
            self.samples += 1;
        }
        for field in fields {
            let stats = match self.fields.get_mut(field.name.as_str()) {
                Some(stats) => stats,
                None => self.fields.entry(field.name.clone()).or_default(),
            };
            if complete {
                stats.seen += 1;
            }
            for ty in &field.types {
                if !stats.types.contains(ty.as_str()) {
                    stats.types.insert(ty.clone());
                }
            }
            for class in &field.classes {
                if !stats.classes.contains(class.as_str()) {
                    stats.classes.insert(class.clone());
                }
            }
        }
    }

    fn merge(&mut self, other: &FieldSet) {
        self.samples += other.samples;
        for (name, theirs) in &other.fields {
            let ours = self.fields.entry(name.clone()).or_default();
            ours.seen += theirs.seen;
            ours.types.extend(theirs.types.iter().cloned());
            ours.classes.extend(theirs.classes.iter().cloned());
        }
    }
}

/// Everything known about one endpoint (service, method, template) from
/// the records counted so far.
#[derive(Debug, Clone)]
pub(crate) struct EndpointStats {
    pub(crate) first_seen: OffsetDateTime,
    pub(crate) last_seen: OffsetDateTime,
    pub(crate) calls: u64,
    pub(crate) denied: u64,
    /// Calls by caller (`None`: no authenticated caller).
    pub(crate) callers: HashMap<Option<String>, u64>,
    /// Calls by HTTP status (`None`: no response was sent).
    pub(crate) statuses: BTreeMap<Option<u16>, u64>,
    /// Statuses of allowed calls: what the application answered, which
    /// the spec is compared with (refusals are the sidecar's answers).
    pub(crate) app_statuses: BTreeMap<u16, u64>,
    /// Exchanges that carried a shape.
    pub(crate) sampled: u64,
    pub(crate) query: FieldSet,
    pub(crate) request: FieldSet,
    pub(crate) responses: BTreeMap<u16, FieldSet>,
    pub(crate) data_classes: BTreeSet<String>,
    /// One concrete path that was counted here: where a pending path key
    /// ends up once the templates are known.
    pub(crate) sample_path: String,
}

impl EndpointStats {
    pub(crate) fn new(record: &AuditRecord, path: &str) -> EndpointStats {
        EndpointStats {
            first_seen: record.ts,
            last_seen: record.ts,
            calls: 0,
            denied: 0,
            callers: HashMap::new(),
            statuses: BTreeMap::new(),
            app_statuses: BTreeMap::new(),
            sampled: 0,
            query: FieldSet::default(),
            request: FieldSet::default(),
            responses: BTreeMap::new(),
            data_classes: BTreeSet::new(),
            sample_path: path.to_owned(),
        }
    }

    /// Counts one record.
    pub(crate) fn add(&mut self, record: &AuditRecord) {
        self.first_seen = self.first_seen.min(record.ts);
        self.last_seen = self.last_seen.max(record.ts);
        self.calls += 1;
        match self.callers.get_mut(&record.caller) {
            Some(calls) => *calls += 1,
            None => {
                self.callers.insert(record.caller.clone(), 1);
            }
        }
        *self.statuses.entry(record.status).or_default() += 1;
        match record.decision {
            Decision::Deny => self.denied += 1,
            Decision::Allow => {
                if let Some(status) = record.status {
                    *self.app_statuses.entry(status).or_default() += 1;
                }
            }
        }
        for class in &record.data_classes {
            if !self.data_classes.contains(class.as_str()) {
                self.data_classes.insert(class.clone());
            }
        }
        if let Some(shape) = &record.shape {
            self.sampled += 1;
            self.query.add(&shape.query, true);
            let complete = !shape.truncated;
            if !shape.request.is_empty() {
                self.request.add(&shape.request, complete);
            }
            if let (Some(status), false) = (record.status, shape.response.is_empty()) {
                self.responses
                    .entry(status)
                    .or_default()
                    .add(&shape.response, complete);
            }
            for field in shape
                .query
                .iter()
                .chain(&shape.request)
                .chain(&shape.response)
            {
                for class in &field.classes {
                    if !self.data_classes.contains(class.as_str()) {
                        self.data_classes.insert(class.clone());
                    }
                }
            }
        }
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: &EndpointStats) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.calls += other.calls;
        self.denied += other.denied;
        for (caller, calls) in &other.callers {
            *self.callers.entry(caller.clone()).or_default() += calls;
        }
        for (status, calls) in &other.statuses {
            *self.statuses.entry(*status).or_default() += calls;
        }
        for (status, calls) in &other.app_statuses {
            *self.app_statuses.entry(*status).or_default() += calls;
        }
        self.sampled += other.sampled;
        self.query.merge(&other.query);
        self.request.merge(&other.request);
        for (status, fields) in &other.responses {
            self.responses.entry(*status).or_default().merge(fields);
        }
        self.data_classes.extend(other.data_classes.iter().cloned());
        // Keep the smallest sample path so a merge result does not depend
        // on merge order.
        if other.sample_path < self.sample_path {
            self.sample_path.clone_from(&other.sample_path);
        }
    }
}
