//! Matching requests to route templates.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use palisade_openapi::{ApiSpec, RouteMatch};

fn customers() -> ApiSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/customers.json");
    ApiSpec::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn billing() -> ApiSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/billing.yaml");
    ApiSpec::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A spec whose paths each have a single GET operation.
fn spec_with_gets(templates: &[&str]) -> ApiSpec {
    let mut text = String::from("openapi: 3.1.0\ninfo:\n  title: T\npaths:\n");
    for template in templates {
        text.push_str(&format!("  '{template}':\n    get: {{}}\n"));
    }
    ApiSpec::from_str(&text, Path::new("inline.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The matched template and parameters, or panics.
fn found(spec: &ApiSpec, method: &str, path: &str) -> (String, Vec<(String, String)>) {
    match spec.match_route(method, path) {
        RouteMatch::Found { operation, params } => {
            assert_eq!(operation.method, method);
            (operation.template.clone(), params)
        }
        other => panic!("{method} {path}: {other:?}"),
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn template_match_extracts_path_params() {
    let spec = customers();
    assert_eq!(
        found(&spec, "GET", "/customers/42"),
        ("/customers/{id}".into(), params(&[("id", "42")]))
    );
    assert_eq!(
        found(&spec, "PUT", "/customers/42/address"),
        ("/customers/{id}/address".into(), params(&[("id", "42")]))
    );
    let RouteMatch::Found { operation, .. } = spec.match_route("DELETE", "/customers/7") else {
        panic!("DELETE /customers/7 should match");
    };
    assert_eq!(operation.operation_id.as_deref(), Some("deleteCustomer"));
}

#[test]
fn literal_segment_beats_parameter_segment() {
    let spec = customers();
    let RouteMatch::Found { operation, params } = spec.match_route("GET", "/customers/me") else {
        panic!("GET /customers/me should match");
    };
    assert_eq!(operation.template, "/customers/me");
    assert_eq!(
        operation.operation_id.as_deref(),
        Some("getCurrentCustomer")
    );
    assert!(params.is_empty());
}

#[test]
fn literal_segment_that_leads_nowhere_falls_back_to_the_parameter() {
    let spec = customers();
    assert_eq!(
        found(&spec, "PUT", "/customers/me/address"),
        ("/customers/{id}/address".into(), params(&[("id", "me")]))
    );
}

#[test]
fn method_not_allowed_lists_the_allowed_methods_in_spec_order() {
    let spec = customers();
    assert_eq!(
        spec.match_route("POST", "/customers/42"),
        RouteMatch::MethodNotAllowed {
            template: "/customers/{id}",
            allowed: vec!["GET", "DELETE"],
        }
    );
}

#[test]
fn path_picks_the_template_before_the_method_is_checked() {
    // `/customers/{id}` has DELETE, but the path names `/customers/me`.
    assert_eq!(
        customers().match_route("DELETE", "/customers/me"),
        RouteMatch::MethodNotAllowed {
            template: "/customers/me",
            allowed: vec!["GET"],
        }
    );
}

#[test]
fn method_is_compared_case_sensitively() {
    assert_eq!(
        billing().match_route("get", "/health"),
        RouteMatch::MethodNotAllowed {
            template: "/health",
            allowed: vec!["GET"],
        }
    );
}

#[test]
fn unknown_paths_are_not_found() {
    let spec = billing();
    for path in [
        "/",
        "/invoice",
        "/invoices/1/lines",
        "/payments/1",
        "",
        "invoices",
        "*",
        "/a/b/c/d/e/f/g",
    ] {
        assert_eq!(
            spec.match_route("GET", path),
            RouteMatch::NotFound,
            "{path:?}"
        );
    }
}

#[test]
fn trailing_slash_is_significant() {
    let spec = billing();
    assert_eq!(spec.match_route("GET", "/invoices/"), RouteMatch::NotFound);
    assert_eq!(spec.match_route("GET", "/health/"), RouteMatch::NotFound);
    assert_eq!(found(&spec, "GET", "/invoices").0, "/invoices");

    let spec = spec_with_gets(&["/a/", "/b"]);
    assert_eq!(found(&spec, "GET", "/a/").0, "/a/");
    assert_eq!(spec.match_route("GET", "/a"), RouteMatch::NotFound);
    assert_eq!(spec.match_route("GET", "/b/"), RouteMatch::NotFound);
}

#[test]
fn empty_segment_does_not_match_a_parameter() {
    let spec = customers();
    assert_eq!(spec.match_route("GET", "/customers/"), RouteMatch::NotFound);
    assert_eq!(
        spec.match_route("PUT", "/customers//address"),
        RouteMatch::NotFound
    );
}

#[test]
fn percent_encoded_slash_does_not_split_a_segment() {
    let spec = customers();
    assert_eq!(
        found(&spec, "GET", "/customers/a%2Fb"),
        ("/customers/{id}".into(), params(&[("id", "a%2Fb")]))
    );
    assert_eq!(
        found(&spec, "PUT", "/customers/x%2fy%20z/address").1,
        params(&[("id", "x%2Fy%20z")])
    );
}

#[test]
fn percent_encoded_unreserved_characters_match_their_literal() {
    let spec = customers();
    assert_eq!(found(&spec, "GET", "/customers/%6De").0, "/customers/me");
    assert_eq!(
        found(&spec, "GET", "/%63ustomers/%34%32").1,
        params(&[("id", "42")])
    );
}

#[test]
fn dot_segments_never_match() {
    let spec = customers();
    for path in [
        "/customers/..",
        "/customers/./address",
        "/customers/../customers/me",
        "/customers/%2E%2E/address",
        "/customers/.%2e",
    ] {
        assert_eq!(
            spec.match_route("GET", path),
            RouteMatch::NotFound,
            "{path}"
        );
        assert_eq!(
            spec.match_route("PUT", path),
            RouteMatch::NotFound,
            "{path}"
        );
    }
}

#[test]
fn mixed_segment_name_dot_ext_extracts_both_parameters() {
    let spec = spec_with_gets(&["/files/{name}.{ext}", "/files/{name}"]);
    assert_eq!(
        found(&spec, "GET", "/files/report.pdf"),
        (
            "/files/{name}.{ext}".into(),
            params(&[("name", "report"), ("ext", "pdf")])
        )
    );
    assert_eq!(
        found(&spec, "GET", "/files/report.tar.gz").1,
        params(&[("name", "report.tar"), ("ext", "gz")])
    );
    // No dot, or nothing on one side of it: only the plain parameter fits.
    for path in ["/files/README", "/files/.profile", "/files/archive."] {
        assert_eq!(found(&spec, "GET", path).0, "/files/{name}", "{path}");
    }
}

#[test]
fn literal_segment_beats_mixed_which_beats_parameter() {
    let spec = spec_with_gets(&[
        "/v/{any}",
        "/v/{major}.{minor}",
        "/v/latest.json",
        "/v/{major}.{minor}.json",
    ]);
    assert_eq!(found(&spec, "GET", "/v/latest.json").0, "/v/latest.json");
    assert_eq!(
        found(&spec, "GET", "/v/1.2.json"),
        (
            "/v/{major}.{minor}.json".into(),
            params(&[("major", "1"), ("minor", "2")])
        )
    );
    assert_eq!(found(&spec, "GET", "/v/1.2").0, "/v/{major}.{minor}");
    assert_eq!(found(&spec, "GET", "/v/12").0, "/v/{any}");
}

#[test]
fn parameters_of_several_segments_are_extracted_in_template_order() {
    let spec = spec_with_gets(&["/orgs/{org}/repos/{repo}/v{version}"]);
    assert_eq!(
        found(&spec, "GET", "/orgs/acme/repos/sidecar/v2"),
        (
            "/orgs/{org}/repos/{repo}/v{version}".into(),
            params(&[("org", "acme"), ("repo", "sidecar"), ("version", "2")])
        )
    );
    assert_eq!(
        spec.match_route("GET", "/orgs/acme/repos/sidecar/2"),
        RouteMatch::NotFound
    );
}

#[test]
fn root_path_matches_only_the_root_template() {
    let spec = spec_with_gets(&["/", "/{page}"]);
    assert_eq!(found(&spec, "GET", "/").0, "/");
    assert_eq!(found(&spec, "GET", "/about").0, "/{page}");
    assert_eq!(spec.match_route("GET", "//"), RouteMatch::NotFound);
}
