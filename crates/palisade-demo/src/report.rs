//! What the demo prints: the introduction, the results table, the audit log's tail, where
//! the files are, and (when the mesh keeps running) commands to try.

use std::path::Path;

use comfy_table::{presets, ContentArrangement, Table};
use palisade_audit::{query, render_table, AuditQuery};
use palisade_config::Config;

use crate::mesh::{limited_rate, service};
use crate::oauth::REPORTING_JOB;
use crate::workspace::{Layout, DEMO_SVID_TTL};
use crate::{DemoError, ScenarioResult};

/// How many audit records the closing summary shows: enough for the guard scenarios.
const AUDIT_TAIL: usize = 20;

/// The paragraph that says what the demo shows, which runs `scenarios` scenarios.
pub(crate) fn intro(layout: &Layout, scenarios: usize) -> String {
    format!(
        "Palisade demo\n\
         \n\
         Three services of a small shop (orders, billing, customers) run on 127.0.0.1, each \
         behind its own Palisade sidecar, with a control plane. Every sidecar joined the mesh \
         with a one-time join token: it generated its private key itself and got an \
         X.509-SVID, a certificate naming its service's SPIFFE ID, from the control plane's \
         CA for the trust domain palisade.demo; it renews it at half its lifetime and \
         follows the control plane's revocation list. Sidecars talk to each other only over mutual TLS and check that the peer is the \
         service they expect. A sidecar then checks each call it receives in turn: the \
         caller's rate limit (per identity), the Cedar policies (may the calling service use \
         this endpoint? orders may read from billing and create payments there, billing may \
         read customers, a reporting job may read invoices with a token carrying the \
         invoices:read scope; everything else is denied), the request against the service's \
         OpenAPI spec, and injection payloads. The control plane also issues OAuth 2.0 access \
         tokens, which billing's sidecar accepts, even from a caller without a certificate. \
         The demo runs {scenarios} scenarios: three allowed calls, a call to an undocumented \
         debug page that customers' report-mode validation lets through (the API inventory \
         then flags it), one denied by policy, four \
         attacks on identity (no certificate, a certificate from a rogue CA, plaintext HTTP, \
         an impostor), three calls to billing by a reporting job outside the mesh with access \
         tokens (its own, allowed by a policy on the token's scope; one orders got, bound to \
         orders' certificate; one meant for customers), five calls the policies permit but a \
         guard stage refuses (a payment with an undeclared field, an \
         undocumented endpoint, SQL injection, path traversal, and a retry loop throttled by \
         identity); then billing's SVID rotates while orders keeps calling it, and orders is \
         revoked by the control plane, after which billing refuses its certificate. It checks \
         that each had the expected outcome and left exactly one audit record per call on the \
         sidecar that decided it, and ends with the API inventory built from the audit log.\n\
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
         status, problem code and, for a guard stage's refusal, where in the request) as \
         confirmed by the audit records of the sidecar named in parentheses, one per call; \
         for refused handshakes the caller only sees a TLS error, so it is what that sidecar \
         recorded.\n",
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
         OpenAPI specs  {}\n  \
         client keys    {} (the reporting job's, for its token requests)\n\
         \n\
         See every refusal:\n  \
         palisade audit query --db {db} --decision deny\n\
         \n\
         The same as JSON lines, with each guard stage's findings (\"<code>@<where>\"):\n  \
         palisade audit query --db {db} --decision deny --format json\n\
         \n\
         What {REPORTING_JOB} did: its token requests at the control plane, and its call to \
         billing (auth \"jwt\"):\n  \
         palisade audit query --db {db} --caller {REPORTING_JOB} --format json\n",
        layout.config.display(),
        layout.audit_db.display(),
        layout.root.join("policies").display(),
        layout.root.join("specs").display(),
        layout.keys_dir.display(),
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
    let customers_in = service(config, "customers")?.inbound;
    let rate = limited_rate(config)?;
    let burst = rate.burst;
    let every = (rate.per / rate.requests).as_secs_f64();
    let cert = shell_quote(&orders.svid_dir.join(palisade_identity::SVID_CERT_FILE));
    let key = shell_quote(&orders.svid_dir.join(palisade_identity::SVID_KEY_FILE));
    Ok(format!(
        "The mesh keeps running. The last scenario revoked orders: billing and customers now \
         refuse\n\
         orders in every new TLS handshake, and on connections opened before with\n\
         403 palisade.identity.revoked (sidecars recheck the list on every request). So the \
         orders\n\
         calls below now answer 403; the comments say what each showed before the revocation. \
         Try\n\
         them from another terminal:\n\
         \n  \
         # as the orders app: read an invoice through the orders sidecar (allowed; but the\n  \
         # retry-loop scenario spent orders' {burst} reads: 429 until one is back, every {every} s)\n  \
         curl -s -H 'Host: billing' http://{orders_out}/invoices/42\n\
         \n  \
         # as the orders app: delete a customer (denied by policy)\n  \
         curl -s -H 'Host: customers' -X DELETE http://{orders_out}/customers/7\n\
         \n  \
         # as the orders app: a payment with a field billing's spec does not declare\n  \
         # (400 palisade.schema.unknown_field at /approved_by)\n  \
         curl -s -H 'Host: billing' -H 'Content-Type: application/json' \
         -d '{{\"invoice\":\"42\",\"amount_cents\":1999,\"currency\":\"EUR\",\
         \"approved_by\":\"admin\"}}' http://{orders_out}/payments\n\
         \n  \
         # as the orders app: SQL injection in an invoice search (400 palisade.injection.sql \
         at query/q)\n  \
         curl -s -H 'Host: billing' -G --data-urlencode \"q=1' OR '1'='1\" \
         http://{orders_out}/invoices\n\
         \n  \
         # straight to the billing sidecar, presenting orders' (revoked) SVID over mutual \
         TLS: refused in\n  \
         # the handshake, palisade.identity.revoked\n  \
         # (-k: the sidecar's certificate names a SPIFFE ID, not a host name)\n  \
         curl -sk --cert {cert} --key {key} 'https://{billing_in}/invoices?q=42'\n\
         \n  \
         # the same without a certificate: billing accepts access tokens, so its sidecar \
         lets the\n  \
         # handshake through and answers 401 palisade.identity.missing (no certificate, no \
         token)\n  \
         # with WWW-Authenticate: Bearer realm=\"billing\"\n  \
         curl -sk -i 'https://{billing_in}/invoices?q=42'\n\
         \n  \
         # customers accepts no tokens: without a certificate, refused in the TLS handshake\n  \
         curl -sk 'https://{customers_in}/customers/7'\n\
         \n\
         The control plane issues the demo SVIDs for {ttl} s; each sidecar renews its own \
         at about half of that.\n\
         Press Ctrl-C to stop.\n",
        ttl = DEMO_SVID_TTL.as_secs(),
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
    fn the_commands_to_try_include_the_guard_refusals_and_the_invoice_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(&tmp.path().join("demo"));
        crate::workspace::create(&layout).unwrap();
        crate::workspace::write_config(&layout, "127.0.0.1:7000".parse().unwrap()).unwrap();
        let config = Config::load(&layout.config).unwrap();
        let text = try_commands(&config).unwrap();
        let orders_out = config.service("orders").unwrap().outbound.unwrap();
        let customers_in = config.service("customers").unwrap().inbound;
        for expected in [
            "palisade.schema.unknown_field at /approved_by".to_owned(),
            r#""approved_by":"admin"}' "#.to_owned(),
            format!("http://{orders_out}/payments"),
            "palisade.injection.sql at query/q".to_owned(),
            format!(r#"--data-urlencode "q=1' OR '1'='1" http://{orders_out}/invoices"#),
            "spent orders' 5 reads: 429 until one is back, every 12 s".to_owned(),
            "The last scenario revoked orders".to_owned(),
            "presenting orders' (revoked) SVID".to_owned(),
            "SVIDs for 10 s".to_owned(),
            "answers 401 palisade.identity.missing".to_owned(),
            format!("curl -sk 'https://{customers_in}/customers/7'"),
        ] {
            assert!(text.contains(&expected), "{expected} missing in\n{text}");
        }
    }

    #[test]
    fn the_intro_counts_the_scenarios_and_names_the_guard_stages() {
        let text = intro(&Layout::new(Path::new("/tmp/demo")), 18);
        for expected in [
            "runs 18 scenarios",
            "access tokens",
            "reporting job outside the mesh",
            "one-time join token",
            "revoked",
            "rate limit",
            "OpenAPI spec",
            "injection",
            "/tmp/demo",
        ] {
            assert!(text.contains(expected), "{expected} missing in\n{text}");
        }
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
