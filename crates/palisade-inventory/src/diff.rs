//! What changed between two snapshots: endpoints that appeared or
//! disappeared, and for those in both, the sets that grew or shrank
//! (flags, callers, data classes, fields, statuses, drift) and the values
//! that moved (called or not, risk, owner, source). Call counts alone are
//! not a change: they always differ.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::snapshot::{EndpointSnapshot, Flag, Snapshot, SNAPSHOT_FORMAT};

/// The differences between an older and a newer snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiff {
    /// The snapshot format both were read as.
    pub format: u32,
    /// `generated_at` of the older snapshot.
    pub old: String,
    /// `generated_at` of the newer snapshot.
    pub new: String,
    /// Endpoints only in the newer snapshot.
    pub appeared: Vec<EndpointRef>,
    /// Endpoints only in the older snapshot.
    pub disappeared: Vec<EndpointRef>,
    /// Endpoints in both that changed.
    pub changed: Vec<EndpointChange>,
}

impl SnapshotDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.appeared.is_empty() && self.disappeared.is_empty() && self.changed.is_empty()
    }
}

/// An endpoint that appeared or disappeared, as it was where it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRef {
    /// The service.
    pub service: String,
    /// The method.
    pub method: String,
    /// The template.
    pub template: String,
    /// Its calls.
    pub calls: u64,
    /// Its flags.
    pub flags: Vec<Flag>,
    /// Its risk score.
    pub risk: u32,
}

/// An endpoint in both snapshots, and what changed about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointChange {
    /// The service.
    pub service: String,
    /// The method.
    pub method: String,
    /// The template.
    pub template: String,
    /// Each change, in a fixed order of `what`.
    pub changes: Vec<Change>,
}

/// One changed aspect of an endpoint: a set (`added`/`removed`) or a value
/// (`before`/`after`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `called`, `source`, `owner`, `risk`, `flags`, `callers`,
    /// `data_classes`, `query`, `request`, `response`, `statuses`, `drift`.
    pub what: String,
    /// The old value, for a value change.
    pub before: Option<String>,
    /// The new value, for a value change.
    pub after: Option<String>,
    /// Set members only in the newer snapshot.
    pub added: Vec<String>,
    /// Set members only in the older snapshot.
    pub removed: Vec<String>,
}

type Key<'a> = (&'a str, &'a str, &'a str);

/// The members of one set-valued aspect of an endpoint.
type Members = fn(&EndpointSnapshot) -> BTreeSet<String>;

fn index(snapshot: &Snapshot) -> BTreeMap<Key<'_>, &EndpointSnapshot> {
    snapshot
        .endpoints()
        .map(|(service, e)| ((service, e.template.as_str(), e.method.as_str()), e))
        .collect()
}

fn reference(service: &str, endpoint: &EndpointSnapshot) -> EndpointRef {
    EndpointRef {
        service: service.to_owned(),
        method: endpoint.method.clone(),
        template: endpoint.template.clone(),
        calls: endpoint.calls,
        flags: endpoint.flags.clone(),
        risk: endpoint.risk.score,
    }
}

/// Compares `old` with `new`, endpoint by (service, template, method).
pub fn diff(old: &Snapshot, new: &Snapshot) -> SnapshotDiff {
    let before = index(old);
    let after = index(new);
    let mut out = SnapshotDiff {
        format: SNAPSHOT_FORMAT,
        old: old.generated_at.clone(),
        new: new.generated_at.clone(),
        appeared: Vec::new(),
        disappeared: Vec::new(),
        changed: Vec::new(),
    };
    for (key, endpoint) in &after {
        match before.get(key) {
            None => out.appeared.push(reference(key.0, endpoint)),
            Some(previous) => {
                let changes = changes(previous, endpoint);
                if !changes.is_empty() {
                    out.changed.push(EndpointChange {
                        service: key.0.to_owned(),
                        method: endpoint.method.clone(),
                        template: endpoint.template.clone(),
                        changes,
                    });
                }
            }
        }
    }
    for (key, endpoint) in &before {
        if !after.contains_key(key) {
            out.disappeared.push(reference(key.0, endpoint));
        }
    }
    out
}

fn changes(old: &EndpointSnapshot, new: &EndpointSnapshot) -> Vec<Change> {
    let mut out = Vec::new();
    let mut value = |what: &str, before: String, after: String| {
        if before != after {
            out.push(Change {
                what: what.to_owned(),
                before: Some(before),
                after: Some(after),
                added: Vec::new(),
                removed: Vec::new(),
            });
        }
    };
    let called = |e: &EndpointSnapshot| if e.calls > 0 { "yes" } else { "no" }.to_owned();
    value("called", called(old), called(new));
    let source = |e: &EndpointSnapshot| e.source.as_str().to_owned();
    value("source", source(old), source(new));
    let owner = |e: &EndpointSnapshot| e.owner.clone().unwrap_or_else(|| "(none)".to_owned());
    value("owner", owner(old), owner(new));
    let risk = |e: &EndpointSnapshot| format!("{} {}", e.risk.score, e.risk.level);
    value("risk", risk(old), risk(new));

    let sets: [(&str, Members); 8] = [
        ("flags", |e| {
            e.flags.iter().map(|f| f.as_str().to_owned()).collect()
        }),
        ("callers", |e| {
            e.callers
                .iter()
                .map(|c| c.caller.clone().unwrap_or_else(|| "(anonymous)".to_owned()))
                .collect()
        }),
        ("data_classes", |e| e.data_classes.iter().cloned().collect()),
        ("query", |e| {
            e.query.iter().map(|f| f.name.clone()).collect()
        }),
        ("request", |e| {
            e.request.fields.iter().map(|f| f.name.clone()).collect()
        }),
        ("response", |e| {
            e.responses
                .iter()
                .flat_map(|r| {
                    r.fields
                        .iter()
                        .map(move |f| format!("{} {}", r.status, f.name))
                })
                .collect()
        }),
        ("statuses", |e| e.statuses.keys().cloned().collect()),
        ("drift", |e| {
            e.drift.iter().map(ToString::to_string).collect()
        }),
    ];
    for (what, members) in sets {
        let (before, after) = (members(old), members(new));
        let added: Vec<String> = after.difference(&before).cloned().collect();
        let removed: Vec<String> = before.difference(&after).cloned().collect();
        if !added.is_empty() || !removed.is_empty() {
            out.push(Change {
                what: what.to_owned(),
                before: None,
                after: None,
                added,
                removed,
            });
        }
    }
    out
}
