//! Loading specs: versions, errors, operations and parameter merging.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use palisade_openapi::{ApiSpec, SpecError, TemplateError};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> ApiSpec {
    ApiSpec::load(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn yaml_error(text: &str) -> SpecError {
    ApiSpec::from_str(text, Path::new("specs/orders.yaml")).expect_err("the spec should be refused")
}

fn yaml_spec(paths: &str) -> String {
    format!("openapi: 3.0.3\ninfo:\n  title: T\n  version: '1'\npaths:\n{paths}")
}

#[test]
fn billing_yaml_fixture_loads_with_version_title_and_templates_in_spec_order() {
    let spec = load("billing.yaml");
    assert_eq!(spec.openapi_version(), "3.0.3");
    assert_eq!(spec.title(), "Billing API");
    assert_eq!(
        spec.route_templates(),
        ["/invoices", "/invoices/{id}", "/payments", "/health"]
    );
    let operations: Vec<_> = spec
        .operations()
        .map(|op| (op.method.as_str(), op.operation_id.as_deref()))
        .collect();
    assert_eq!(
        operations,
        [
            ("GET", Some("listInvoices")),
            ("GET", Some("getInvoice")),
            ("POST", Some("createPayment")),
            ("GET", Some("health")),
        ]
    );
}

#[test]
fn customers_json_fixture_loads_with_methods_in_spec_order() {
    let spec = load("customers.json");
    assert_eq!(spec.openapi_version(), "3.1.0");
    assert_eq!(spec.title(), "Customers API");
    assert_eq!(
        spec.route_templates(),
        [
            "/customers/{id}",
            "/customers/me",
            "/customers/{id}/address"
        ]
    );
    let operations: Vec<_> = spec
        .operations()
        .map(|op| format!("{} {}", op.method, op.template))
        .collect();
    assert_eq!(
        operations,
        [
            "GET /customers/{id}",
            "DELETE /customers/{id}",
            "GET /customers/me",
            "PUT /customers/{id}/address",
        ]
    );
}

#[test]
fn operations_keep_request_body_and_unresolved_refs() {
    let billing = load("billing.yaml");
    let payment = billing
        .operations()
        .find(|op| op.operation_id.as_deref() == Some("createPayment"))
        .expect("createPayment");
    let body = payment.request_body.as_ref().expect("request body");
    assert_eq!(body["required"], json!(true));
    let schema = &body["content"]["application/json"]["schema"];
    assert_eq!(
        schema["required"],
        json!(["invoice_id", "amount_cents", "currency"])
    );
    assert_eq!(schema["properties"]["amount_cents"]["minimum"], json!(1));
    assert!(payment.parameters.is_empty());

    let list = billing.operations().next().expect("listInvoices");
    assert_eq!(list.request_body, None);
    assert_eq!(
        list.parameters[1],
        json!({ "$ref": "#/components/parameters/PageSize" })
    );
    let components = billing.components().expect("components");
    assert_eq!(
        components["parameters"]["PageSize"]["name"],
        json!("page_size")
    );

    let customers = load("customers.json");
    let get = customers.operations().next().expect("getCustomer");
    assert_eq!(
        get.parameters,
        [json!({ "$ref": "#/components/parameters/CustomerId" })]
    );
}

#[test]
fn path_level_parameters_are_merged_and_operation_level_wins_by_name_and_in() {
    let spec = load("billing.yaml");
    let get = spec
        .operations()
        .find(|op| op.operation_id.as_deref() == Some("getInvoice"))
        .expect("getInvoice");
    let described: Vec<_> = get
        .parameters
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    // The path-level `id` is overridden; the path-level header is inherited.
    assert_eq!(
        described,
        [
            ("X-Request-Id", "header"),
            ("id", "path"),
            ("expand", "query")
        ]
    );
    let id = &get.parameters[1];
    assert_eq!(id["description"], json!("Invoice id, e.g. inv_0042"));
    assert_eq!(id["schema"]["pattern"], json!("^inv_[0-9]+$"));
}

#[test]
fn same_name_in_another_location_does_not_override_a_path_level_parameter() {
    let text = yaml_spec(
        "  /a:\n    parameters:\n      - {name: id, in: query}\n      - {name: v, in: header}\n    get:\n      parameters:\n        - {name: id, in: header}\n        - {name: v, in: header, required: true}\n",
    );
    let spec = ApiSpec::from_str(&text, Path::new("a.yaml")).unwrap();
    let get = spec.operations().next().unwrap();
    assert_eq!(
        get.parameters,
        [
            json!({"name": "id", "in": "query"}),
            json!({"name": "id", "in": "header"}),
            json!({"name": "v", "in": "header", "required": true}),
        ]
    );
}

#[test]
fn swagger_2_0_spec_is_refused_with_a_clear_error() {
    let err = yaml_error(
        "swagger: '2.0'\ninfo:\n  title: Old\n  version: '1'\npaths:\n  /a:\n    get:\n      responses: {200: {description: ok}}\n",
    );
    assert!(
        matches!(&err, SpecError::Swagger2 { version, .. } if version == "2.0"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.starts_with("specs/orders.yaml: "), "{message}");
    assert!(
        message.contains("Swagger 2.0 specs are not supported"),
        "{message}"
    );
    assert!(message.contains("OpenAPI 3.0 or 3.1"), "{message}");
}

#[test]
fn missing_or_unsupported_openapi_version_is_refused() {
    let err = yaml_error("info:\n  title: T\npaths: {}\n");
    assert!(matches!(err, SpecError::MissingVersion { .. }), "{err:?}");
    assert!(err
        .to_string()
        .contains("`openapi` version field is missing"));

    for (written, reported) in [
        ("3.2.0", "3.2.0"),
        ("'3.0'", "3.0"),
        ("3.0", "3.0"),
        ("'2.0'", "2.0"),
    ] {
        let err = yaml_error(&format!("openapi: {written}\ninfo:\n  title: T\n"));
        assert!(
            matches!(&err, SpecError::UnsupportedVersion { version, .. } if version == reported),
            "{written}: {err:?}"
        );
        assert!(err
            .to_string()
            .contains("expected a \"3.0.x\" or \"3.1.x\" string"));
    }
}

#[test]
fn missing_title_is_refused() {
    let err = yaml_error("openapi: 3.1.0\ninfo:\n  version: '1'\n");
    assert!(matches!(err, SpecError::MissingTitle { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "specs/orders.yaml: the required field `info.title` is missing"
    );
}

#[test]
fn yaml_syntax_error_names_the_file_and_line() {
    let err = yaml_error(
        "openapi: 3.0.3\ninfo:\n  title: T\npaths:\n  /a:\n    get: [unclosed\n  /b: {}\n",
    );
    let SpecError::Parse {
        path, format, line, ..
    } = &err
    else {
        panic!("not a parse error: {err:?}");
    };
    assert_eq!(path, Path::new("specs/orders.yaml"));
    assert_eq!(*format, "YAML");
    assert_eq!(*line, Some(7));
    let message = err.to_string();
    assert!(
        message.starts_with("specs/orders.yaml: invalid YAML: "),
        "{message}"
    );
    assert!(message.contains("line 7"), "{message}");
}

#[test]
fn json_syntax_error_names_the_file_line_and_column() {
    let err = ApiSpec::from_str(
        "{\n  \"openapi\": \"3.1.0\",\n  \"info\": {\"title\": \"T\",}\n}",
        Path::new("customers.json"),
    )
    .expect_err("trailing comma");
    assert!(
        matches!(
            &err,
            SpecError::Parse {
                format: "JSON",
                line: Some(3),
                column: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("customers.json: invalid JSON: "),
        "{message}"
    );
    assert!(message.contains("line 3 column"), "{message}");
}

#[test]
fn wrongly_typed_field_error_names_the_line() {
    let err = yaml_error(&yaml_spec("  /a:\n    get:\n      parameters: 5\n"));
    assert!(
        matches!(&err, SpecError::Parse { line: Some(8), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("expected a sequence"), "{err}");
}

#[test]
fn document_that_is_not_a_mapping_is_refused_in_plain_words() {
    let err = yaml_error("- openapi: 3.0.3\n");
    assert!(
        matches!(err, SpecError::Parse { line: Some(1), .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("expected an OpenAPI document (a mapping)"),
        "{err}"
    );
    let err = yaml_error(&yaml_spec("  /a:\n    get: 3\n"));
    assert!(
        err.to_string().contains("expected an operation object"),
        "{err}"
    );
}

#[test]
fn missing_file_error_names_the_file() {
    let path = fixture("no-such-spec.yaml");
    let err = ApiSpec::load(&path).expect_err("missing file");
    assert!(matches!(err, SpecError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-spec.yaml"), "{err}");
}

#[test]
fn duplicate_parameter_names_in_a_template_are_rejected_naming_the_template() {
    let err = yaml_error(&yaml_spec("  /orgs/{id}/members/{id}:\n    get: {}\n"));
    assert!(
        matches!(
            &err,
            SpecError::InvalidTemplate { template, reason: TemplateError::DuplicateParameter(name), .. }
                if template == "/orgs/{id}/members/{id}" && name == "id"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "specs/orders.yaml: invalid path template `/orgs/{id}/members/{id}`: duplicate parameter name `id`"
    );
}

#[test]
fn unbalanced_braces_are_rejected_naming_the_template() {
    for template in [
        "/orders/{id",
        "/orders/id}",
        "/orders/{{id}}",
        "/orders/{a/b}",
    ] {
        let err = yaml_error(&yaml_spec(&format!("  '{template}':\n    get: {{}}\n")));
        assert!(
            matches!(
                &err,
                SpecError::InvalidTemplate { template: t, reason: TemplateError::UnbalancedBraces(_), .. }
                    if t == template
            ),
            "{template}: {err:?}"
        );
        assert!(err.to_string().contains(template), "{err}");
    }
}

#[test]
fn equivalent_templates_are_rejected() {
    let err = yaml_error(&yaml_spec(
        "  /orders/{id}:\n    get: {}\n  /orders/{orderId}:\n    delete: {}\n",
    ));
    assert!(
        matches!(err, SpecError::ConflictingTemplates { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "specs/orders.yaml: path templates `/orders/{id}` and `/orders/{orderId}` are equivalent"
    );
}

#[test]
fn ref_path_items_are_an_explicit_unsupported_error() {
    let err = yaml_error(&yaml_spec(
        "  /orders:\n    $ref: 'shared.yaml#/paths/~1orders'\n",
    ));
    assert!(
        matches!(&err, SpecError::UnsupportedPathItemRef { template, .. } if template == "/orders"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[test]
fn parameter_without_name_or_in_is_rejected_naming_its_operation() {
    let err = yaml_error(&yaml_spec(
        "  /orders/{id}:\n    post:\n      parameters:\n        - {name: id, in: path}\n        - {name: q}\n",
    ));
    assert_eq!(
        err.to_string(),
        "specs/orders.yaml: parameter #1 of POST /orders/{id} has no string `in`"
    );
    let err = yaml_error(&yaml_spec("  /orders:\n    parameters: [7]\n    get: {}\n"));
    assert_eq!(
        err.to_string(),
        "specs/orders.yaml: parameter #0 of /orders (path item) is not an object"
    );
}

#[test]
fn non_method_keys_are_ignored_and_items_without_operations_are_not_routed() {
    let text = yaml_spec(
        "  /a:\n    summary: A\n    description: d\n    servers: [{url: 'https://x'}]\n    x-owner: team\n    GET: {}\n    get: {operationId: a}\n  /b:\n    parameters: []\n  x-extension: {}\n",
    );
    let spec = ApiSpec::from_str(&text, Path::new("a.yml")).unwrap();
    assert_eq!(spec.route_templates(), ["/a"]);
    let methods: Vec<_> = spec.operations().map(|op| op.method.as_str()).collect();
    assert_eq!(methods, ["GET"]);
}

#[test]
fn json_text_with_a_yaml_extension_is_parsed_as_yaml() {
    let text = r#"{"openapi": "3.1.0", "info": {"title": "J"}, "paths": {"/x": {"get": {}}}}"#;
    let spec = ApiSpec::from_str(text, Path::new("spec.yml")).unwrap();
    assert_eq!(spec.title(), "J");
    assert_eq!(spec.route_templates(), ["/x"]);
}

#[test]
fn operations_keep_deprecated_and_the_responses_object() {
    let spec = load("billing.yaml");
    let get_invoice = spec
        .operations()
        .find(|op| op.operation_id.as_deref() == Some("getInvoice"))
        .unwrap();
    assert!(!get_invoice.deprecated);
    let responses = get_invoice.responses.as_ref().unwrap();
    assert_eq!(
        responses["200"]["content"]["application/json"]["schema"]["$ref"],
        json!("#/components/schemas/Invoice")
    );
    assert_eq!(
        responses["404"],
        json!({"$ref": "#/components/responses/NotFound"})
    );

    let text = yaml_spec(
        "  /old:\n    get:\n      deprecated: true\n      responses:\n        '200': {description: ok}\n  /bare:\n    get: {}\n",
    );
    let spec = ApiSpec::from_str(&text, Path::new("t.yaml")).unwrap();
    let ops: Vec<_> = spec
        .operations()
        .map(|op| (op.template.as_str(), op.deprecated, op.responses.clone()))
        .collect();
    assert_eq!(
        ops,
        [
            ("/old", true, Some(json!({"200": {"description": "ok"}}))),
            ("/bare", false, None),
        ]
    );
}

#[test]
fn wrongly_typed_deprecated_names_the_line() {
    let err = yaml_error(&yaml_spec("  /old:\n    get:\n      deprecated: maybe\n"));
    assert!(
        matches!(&err, SpecError::Parse { line: Some(8), .. }),
        "{err:?}"
    );
}
