//! What the demo prints: the introduction, the results table, the audit log's tail, where
//! the files are, and (when the mesh keeps running) commands to try.

use std::path::Path;

use comfy_table::{presets, ContentArrangement, Table};
use palisade_audit::{query, render_table, AuditQuery};
use palisade_config::Config;

use crate::mesh::service;
use crate::workspace::Layout;
use crate::{DemoError, ScenarioResult};

/// How many audit records the closing summary shows.
const AUDIT_TAIL: usize = 12;

/// The paragraph that says what the demo shows.
pub(crate) fn intro(layout: &Layout) -> String {
    format!(
        "Palisade demo\n\
         \n\
         Three services of a small shop (orders, billing, customers) run on 127.0.0.1, each \
         behind its own Palisade sidecar. Every sidecar holds an X.509-SVID, a certificate \
         naming its service's SPIFFE ID, from a demo CA for the trust domain palisade.demo. \
         Sidecars talk to each other only over mutual TLS and check that the peer is the \
         service they expect; each sidecar then asks Cedar policies whether the calling \
         service may use the endpoint. The policies allow exactly three calls (orders may \
         read invoices and create payments at billing, billing may read customers) and \
         deny everything else. The demo makes eight calls (three allowed, one denied by \
         policy, and four attacks: no certificate, a certificate from a rogue CA, plaintext \
         HTTP, and an impostor) and checks that each had the expected outcome and left \
         exactly one audit record on the sidecar that decided it.\n\
         \n\
         Working directory: {}\n",
        layout.root.display()
    )
}

/// The SCENARIO / EXPECTED / OBSERVED / RESULT table and a pass count.
pub(crate) fn results_table(results: &[ScenarioResult]) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["SCENARIO", "EXPECTED", "OBSERVED", "RESULT"]);
    for result in results {
        table.add_row([
            result.name.as_str(),
            result.expected.as_str(),
            result.observed.as_str(),
            if result.passed { "PASS" } else { "FAIL" },
        ]);
    }
    let passed = results.iter().filter(|r| r.passed).count();
    format!(
        "{table}\n{passed} of {} scenarios passed. OBSERVED is what the caller got (HTTP \
         status and problem code) as confirmed by the audit record of the sidecar named in \
         parentheses; for refused handshakes the caller only sees a TLS error, so it is what \
         that sidecar recorded.\n",
        results.len()
    )
}

/// The most recent audit records, as `palisade audit query` shows them.
pub(crate) fn audit_tail(db: &Path, written: u64) -> Result<String, DemoError> {
    let records = query(
        db,
        &AuditQuery {
            limit: Some(AUDIT_TAIL),
            ..AuditQuery::default()
        },
    )?;
    Ok(format!(
        "The audit log holds {written} records, one per request on each sidecar it \
         crossed: a call between two services is recorded going out by the caller's \
         sidecar (\"allow\" there means it was forwarded) and coming in by the callee's, \
         which makes the decision. The last {}:\n{}",
        records.len(),
        render_table(&records)
    ))
}

/// Where the files are, and a query to try.
pub(crate) fn files(layout: &Layout) -> String {
    let db = shell_quote(&layout.audit_db);
    format!(
        "Files:\n  \
         configuration  {}\n  \
         audit log      {}\n  \
         policies       {}\n  \
         OpenAPI specs  {}\n\
         \n\
         See every refusal:\n  \
         palisade audit query --db {db} --decision deny\n",
        layout.config.display(),
        layout.audit_db.display(),
        layout.root.join("policies").display(),
        layout.root.join("specs").display(),
    )
}

/// Commands to try against the running mesh.
pub(crate) fn try_commands(config: &Config) -> Result<String, DemoError> {
    let orders = service(config, "orders")?;
    let orders_out = orders.outbound.ok_or_else(|| DemoError::MissingListener {
        service: "orders".into(),
        listener: "outbound",
    })?;
    let billing_in = service(config, "billing")?.inbound;
    let cert = shell_quote(&orders.svid_dir.join(palisade_identity::SVID_CERT_FILE));
    let key = shell_quote(&orders.svid_dir.join(palisade_identity::SVID_KEY_FILE));
    Ok(format!(
        "The mesh keeps running. Try these from another terminal:\n\
         \n  \
         # as the orders app: read an invoice through the orders sidecar (allowed)\n  \
         curl -s -H 'Host: billing' http://{orders_out}/invoices/42\n\
         \n  \
         # as the orders app: delete a customer (denied by policy)\n  \
         curl -s -H 'Host: customers' -X DELETE http://{orders_out}/customers/7\n\
         \n  \
         # straight to the billing sidecar, presenting orders' SVID over mutual TLS\n  \
         # (-k: the sidecar's certificate names a SPIFFE ID, not a host name)\n  \
         curl -sk --cert {cert} --key {key} https://{billing_in}/invoices/42\n\
         \n  \
         # the same without a certificate: refused in the TLS handshake\n  \
         curl -sk https://{billing_in}/invoices/42\n\
         \n\
         The demo SVIDs are valid for {minutes} minutes; after that the sidecars refuse \
         each other (palisade.identity.expired).\n\
         Press Ctrl-C to stop.\n",
        minutes = palisade_identity::DEFAULT_SVID_TTL.as_secs() / 60,
    ))
}

/// `path` as one shell word: as is when it needs no quoting, else in single quotes.
pub(crate) fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn quotes_paths_only_when_needed() {
        assert_eq!(
            shell_quote(Path::new("/tmp/demo/audit.db")),
            "/tmp/demo/audit.db"
        );
        assert_eq!(
            shell_quote(Path::new("/tmp/my demo/a.db")),
            "'/tmp/my demo/a.db'"
        );
        assert_eq!(shell_quote(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
        assert_eq!(shell_quote(Path::new("")), "''");
    }

    #[test]
    fn the_results_table_has_the_columns_and_a_verdict_per_row() {
        let results = [
            ScenarioResult {
                name: "orders → billing: GET /invoices/42".into(),
                expected: "200 allowed".into(),
                observed: "200 allowed by orders-read-invoices (billing sidecar)".into(),
                passed: true,
            },
            ScenarioResult {
                name: "plaintext HTTP → billing inbound".into(),
                expected: "400 palisade.identity.plaintext".into(),
                observed: "200 allowed".into(),
                passed: false,
            },
        ];
        let text = results_table(&results);
        for word in ["SCENARIO", "EXPECTED", "OBSERVED", "RESULT", "PASS", "FAIL"] {
            assert!(text.contains(word), "{word} missing in\n{text}");
        }
        assert!(text.contains("1 of 2 scenarios passed"), "{text}");
    }
}
