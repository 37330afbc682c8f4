//! Audit records for what is done to the state directly (the CLI), not over HTTP.
//!
//! The server audits every request it serves. Join tokens, revocations and CA rollover
//! steps are made by `palisade control join-token create` / `palisade control revoke` /
//! `palisade control ca …` through [`ControlState`](crate::ControlState) without the
//! server, so the CLI writes one of these records through its own
//! [`AuditHandle`](palisade_audit::AuditHandle) after each.

use std::time::Duration;

use palisade_audit::{AuditRecord, AuthMethod, Decision, Direction};
use palisade_identity::SpiffeId;
use time::OffsetDateTime;

use crate::server::AUDIT_SERVICE;

/// An administrative change made through [`ControlState`](crate::ControlState).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AdminAction<'a> {
    /// A join token was created (the token itself is never recorded).
    JoinTokenCreated {
        /// Who the token is for.
        spiffe_id: &'a SpiffeId,
        /// Its validity.
        ttl: Duration,
    },
    /// Every SVID of a SPIFFE ID was revoked.
    SpiffeIdRevoked {
        /// The revoked ID.
        spiffe_id: &'a SpiffeId,
        /// The operator's reason.
        reason: &'a str,
        /// The revocation list version after the change.
        version: u64,
    },
    /// One SVID was revoked by serial.
    SerialRevoked {
        /// The serial as given.
        serial: &'a str,
        /// The operator's reason.
        reason: &'a str,
        /// The revocation list version after the change.
        version: u64,
    },
    /// CA rollover step 1: a new root joined the bundle; it signs nothing yet.
    RootPrepared {
        /// SHA-256 fingerprint of the new root.
        fingerprint: &'a str,
        /// End of its validity.
        not_after: OffsetDateTime,
    },
    /// CA rollover step 2: the prepared root signs from now on.
    RootActivated {
        /// SHA-256 fingerprint of the root that signs now.
        active: &'a str,
        /// SHA-256 fingerprint of the root that signed before (still in the bundle).
        previous: &'a str,
    },
    /// CA rollover step 3: the previous root left the bundle.
    RootRetired {
        /// SHA-256 fingerprint of the retired root.
        fingerprint: &'a str,
        /// SVIDs it signed that were still in use (non-zero only when forced).
        still_in_use: u64,
    },
}

/// The audit record of an administrative change: `service = "palisade-control"`, no
/// method, path or status (no HTTP exchange happened), `decision = allow`, and what was
/// done in `detail`.
pub fn admin_audit_record(action: &AdminAction<'_>) -> AuditRecord {
    let detail = match action {
        AdminAction::JoinTokenCreated { spiffe_id, ttl } => format!(
            "join token created for {spiffe_id}, valid for {} s",
            ttl.as_secs()
        ),
        AdminAction::SpiffeIdRevoked {
            spiffe_id,
            reason,
            version,
        } => format!(
            "revoked every SVID of {spiffe_id} (reason: {reason}); revocation list version {version}"
        ),
        AdminAction::SerialRevoked {
            serial,
            reason,
            version,
        } => format!(
            "revoked the SVID with serial {serial} (reason: {reason}); revocation list version {version}"
        ),
        AdminAction::RootPrepared {
            fingerprint,
            not_after,
        } => format!(
            "CA rollover: prepared root {fingerprint} (valid until {}); in the bundle, not signing",
            not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| not_after.to_string())
        ),
        AdminAction::RootActivated { active, previous } => format!(
            "CA rollover: activated root {active}; it signs from now on; previous root {previous} stays in the bundle"
        ),
        AdminAction::RootRetired {
            fingerprint,
            still_in_use,
        } => {
            let forced = if *still_in_use > 0 {
                format!(" (forced: {still_in_use} SVID(s) it signed were still in use)")
            } else {
                String::new()
            };
            format!("CA rollover: retired root {fingerprint}; no longer in the bundle{forced}")
        }
    };
    AuditRecord {
        ts: OffsetDateTime::now_utc(),
        request_id: uuid::Uuid::now_v7().to_string(),
        caller: None,
        auth: AuthMethod::None,
        service: AUDIT_SERVICE.to_owned(),
        method: None,
        path: None,
        route: None,
        decision: Decision::Allow,
        code: None,
        policies: Vec::new(),
        status: None,
        latency_us: 0,
        bytes_in: 0,
        bytes_out: 0,
        data_classes: Vec::new(),
        peer: None,
        direction: Direction::Inbound,
        detail: Some(detail),
        findings: Vec::new(),
        ratelimit_degraded: false,
        shape: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn admin_records_say_what_was_done_without_http_fields() {
        let id: SpiffeId = "spiffe://example.org/ns/a/sa/b".parse().unwrap();
        let record = admin_audit_record(&AdminAction::SpiffeIdRevoked {
            spiffe_id: &id,
            reason: "decommissioned",
            version: 4,
        });
        assert_eq!(record.service, "palisade-control");
        assert_eq!(record.method, None);
        let detail = record.detail.unwrap();
        assert!(detail.contains("spiffe://example.org/ns/a/sa/b"));
        assert!(detail.contains("decommissioned"));
        assert!(detail.contains("version 4"));
    }

    #[test]
    fn rollover_records_name_the_roots_by_fingerprint() {
        let record = admin_audit_record(&AdminAction::RootActivated {
            active: "bb01",
            previous: "aa01",
        });
        let detail = record.detail.unwrap();
        assert!(detail.contains("activated root bb01") && detail.contains("previous root aa01"));
        let forced = admin_audit_record(&AdminAction::RootRetired {
            fingerprint: "aa01",
            still_in_use: 2,
        });
        assert!(forced.detail.unwrap().contains("forced: 2 SVID(s)"));
    }
}
