//! Decisions of a loaded engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::*;
use palisade_policy::{
    AuthzRequest, PolicyEngine, CODE_DENIED, CODE_POLICY_UNAVAILABLE, CODE_UNKNOWN_ACTION,
};

const ORDERS_READS_INVOICES: &str = r#"
@id("orders-read-invoice")
permit (
  principal == Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/orders",
  action == Palisade::Action::"GET",
  resource == Palisade::Endpoint::"billing:/invoices/{id}"
);
"#;

#[test]
fn permit_by_spiffe_id_method_and_endpoint_allows_and_reports_annotated_id() {
    let dir = policy_dir(&[("billing.cedar", ORDERS_READS_INVOICES)]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}");
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.code, None);
    assert_eq!(decision.policies, vec!["orders-read-invoice".to_owned()]);
    assert_eq!(decision.reason, "permitted by policy orders-read-invoice");
}

#[test]
fn policy_without_id_annotation_is_named_after_file_stem_and_index() {
    let dir = policy_dir(&[(
        "billing.cedar",
        r#"
permit (principal, action == Palisade::Action::"HEAD", resource);
permit (
  principal == Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/orders",
  action == Palisade::Action::"GET",
  resource == Palisade::Endpoint::"billing:/invoices/{id}"
);
"#,
    )]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}");
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.policies, vec!["billing.1".to_owned()]);
    assert_eq!(
        engine.current().unwrap().policy_ids(),
        vec!["billing.0".to_owned(), "billing.1".to_owned()]
    );
}

#[test]
fn same_caller_with_other_method_is_denied_by_default_without_policies() {
    let dir = policy_dir(&[("billing.cedar", ORDERS_READS_INVOICES)]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "DELETE", "billing", "/invoices/{id}");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_DENIED));
    assert!(decision.policies.is_empty());
    assert_eq!(
        decision.reason,
        format!("no policy permits {ORDERS} to DELETE billing:/invoices/{{id}} (default deny)")
    );
}

#[test]
fn forbid_overrides_permit_and_is_reported() {
    let dir = policy_dir(&[
        ("billing.cedar", ORDERS_READS_INVOICES),
        (
            "lockdown.cedar",
            r#"
@id("no-orders-in-billing")
forbid (
  principal == Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/orders",
  action,
  resource in Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/billing"
);
"#,
        ),
    ]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_DENIED));
    assert_eq!(decision.policies, vec!["no-orders-in-billing".to_owned()]);
    assert_eq!(decision.reason, "forbidden by policy no-orders-in-billing");
}

#[test]
fn resource_in_called_service_matches_all_its_endpoints() {
    let dir = policy_dir(&[(
        "billing.cedar",
        r#"
permit (
  principal == Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/orders",
  action in [Palisade::Action::"GET", Palisade::Action::"POST"],
  resource in Palisade::Service::"spiffe://palisade.demo/ns/demo/sa/billing"
);
"#,
    )]);
    let engine = loaded_engine(dir.path());
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}").allowed);
    assert!(decide(&engine, ORDERS, "POST", "billing", "/invoices").allowed);
    // Not an endpoint of billing.
    assert!(!decide(&engine, ORDERS, "GET", "orders", "/orders").allowed);
}

#[test]
fn owner_attribute_policy_allows_only_that_team() {
    let dir = policy_dir(&[(
        "team.cedar",
        r#"
@id("team-a-reads-billing")
permit (principal, action == Palisade::Action::"GET", resource)
when {
  principal has owner && principal.owner == "team-a" &&
  resource.service == "billing"
};
"#,
    )]);
    let engine = loaded_engine(dir.path());
    let allowed = decide(&engine, ORDERS, "GET", "billing", "/invoices");
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(allowed.policies, vec!["team-a-reads-billing".to_owned()]);
    // billing is owned by team-b; legacy has no owner at all.
    assert!(!decide(&engine, BILLING, "GET", "billing", "/invoices").allowed);
    assert!(!decide(&engine, LEGACY, "GET", "billing", "/invoices").allowed);
}

#[test]
fn context_and_path_attributes_are_available() {
    let dir = policy_dir(&[(
        "legacy.cedar",
        r#"
permit (principal, action == Palisade::Action::"GET", resource == Palisade::Endpoint::"legacy:/reports/2024")
when { context.auth == "mtls" && context.time > 1600000000 && resource.path == "/reports/2024" };
"#,
    )]);
    let engine = loaded_engine(dir.path());
    assert!(decide(&engine, ORDERS, "GET", "legacy", "/reports/2024").allowed);
    let jwt = AuthzRequest {
        auth: "jwt",
        ..request(ORDERS, "GET", "legacy", "/reports/2024")
    };
    assert!(!engine.authorize(&jwt).allowed);
}

#[test]
fn token_scopes_reach_policies_as_context() {
    let dir = policy_dir(&[(
        "scoped.cedar",
        r#"
@id("reporting-reads-with-scope")
permit (principal == Palisade::Service::"reporting", action == Palisade::Action::"GET", resource == Palisade::Endpoint::"legacy:/reports/2024")
when { context.auth == "jwt" && context.scopes.contains("reports:read") };
"#,
    )]);
    let engine = loaded_engine(dir.path());
    let scopes = ["reports:read".to_owned(), "other".to_owned()];
    let scoped = AuthzRequest {
        auth: "jwt",
        scopes: &scopes,
        ..request("reporting", "GET", "legacy", "/reports/2024")
    };
    let decision = engine.authorize(&scoped);
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(
        decision.policies,
        vec!["reporting-reads-with-scope".to_owned()]
    );
    let unscoped = AuthzRequest {
        auth: "jwt",
        ..request("reporting", "GET", "legacy", "/reports/2024")
    };
    assert!(!engine.authorize(&unscoped).allowed);
}

#[test]
fn caller_unknown_to_config_is_evaluated_with_only_trust_domain() {
    let dir = policy_dir(&[(
        "partners.cedar",
        r#"
@id("partner-reads-orders")
permit (principal, action == Palisade::Action::"GET", resource == Palisade::Endpoint::"orders:/orders")
when { principal.trust_domain == "partner.example" && !(principal has name) };
"#,
    )]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, STRANGER, "GET", "orders", "/orders");
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.policies, vec!["partner-reads-orders".to_owned()]);
    // A configured caller has a name, so the policy does not apply.
    assert!(!decide(&engine, BILLING, "GET", "orders", "/orders").allowed);
}

#[test]
fn service_calling_itself_is_evaluated() {
    let dir = policy_dir(&[(
        "self.cedar",
        r#"
permit (principal, action, resource)
when { resource in principal };
"#,
    )]);
    let engine = loaded_engine(dir.path());
    assert!(decide(&engine, BILLING, "PUT", "billing", "/invoices/{id}").allowed);
    assert!(!decide(&engine, ORDERS, "PUT", "billing", "/invoices/{id}").allowed);
}

#[test]
fn no_policy_set_loaded_denies_as_unavailable() {
    let dir = policy_dir(&[("billing.cedar", ORDERS_READS_INVOICES)]);
    let engine = PolicyEngine::new(services(), PathBuf::from(dir.path())).unwrap();
    assert_eq!(engine.generation(), 0);
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_POLICY_UNAVAILABLE));
    assert!(
        decision.reason.contains("no valid policy set"),
        "{}",
        decision.reason
    );
}

#[test]
fn empty_directory_loads_and_denies_everything() {
    let dir = policy_dir(&[("README.txt", "not a policy")]);
    let engine = loaded_engine(dir.path());
    assert_eq!(engine.generation(), 1);
    assert!(engine.current().unwrap().is_empty());
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_DENIED));
    assert!(
        decision.reason.ends_with("(default deny)"),
        "{}",
        decision.reason
    );
}

#[test]
fn method_that_is_not_an_action_is_denied_as_unknown_action() {
    let dir = policy_dir(&[("all.cedar", "permit (principal, action, resource);")]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "TRACE", "billing", "/invoices");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_UNKNOWN_ACTION));
}

#[test]
fn unknown_called_service_is_denied_even_with_permit_all() {
    let dir = policy_dir(&[("all.cedar", "permit (principal, action, resource);")]);
    let engine = loaded_engine(dir.path());
    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices").allowed);
    let decision = decide(&engine, ORDERS, "GET", "shipping", "/parcels");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_DENIED));
    assert!(decision.reason.contains("shipping"), "{}", decision.reason);
}

const OVERFLOWING: &str = r#"
@id("overflowing")
permit (principal, action, resource)
when { context.time * 10000000000000 > 0 };
"#;

#[test]
fn evaluation_error_never_allows_and_is_reported() {
    // Type-checks, but the multiplication overflows at evaluation time.
    let dir = policy_dir(&[("risky.cedar", OVERFLOWING)]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices");
    assert!(!decision.allowed);
    assert_eq!(decision.code, Some(CODE_DENIED));
    assert!(decision.policies.is_empty());
    assert!(
        decision.reason.contains("(default deny)"),
        "{}",
        decision.reason
    );
    assert!(
        decision.reason.contains("overflowing:"),
        "{}",
        decision.reason
    );
}

#[test]
fn evaluation_error_in_one_policy_does_not_block_another_permit() {
    let dir = policy_dir(&[
        ("billing.cedar", ORDERS_READS_INVOICES),
        ("risky.cedar", OVERFLOWING),
    ]);
    let engine = loaded_engine(dir.path());
    let decision = decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}");
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.policies, vec!["orders-read-invoice".to_owned()]);
    assert!(decision
        .reason
        .starts_with("permitted by policy orders-read-invoice"));
    assert!(
        decision.reason.contains("overflowing:"),
        "{}",
        decision.reason
    );
}

#[test]
fn authorize_is_consistent_across_threads() {
    let dir = policy_dir(&[("billing.cedar", ORDERS_READS_INVOICES)]);
    let engine = loaded_engine(dir.path());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..200 {
                    assert!(decide(&engine, ORDERS, "GET", "billing", "/invoices/{id}").allowed);
                    assert!(!decide(&engine, BILLING, "GET", "billing", "/invoices/{id}").allowed);
                }
            });
        }
        for _ in 0..5 {
            engine.reload().unwrap();
        }
    });
    assert_eq!(engine.generation(), 6);
}
