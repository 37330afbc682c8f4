//! Request validation: routes, parameters, content types and JSON bodies.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue};
use palisade_openapi::{
    ApiSpec, BodyExpectation, RequestValidator, SpecError, ValidatedRoute, ValidationOptions,
    Violation,
};
use serde_json::{json, Value};

fn load(name: &str) -> ApiSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    ApiSpec::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn validator(name: &str, options: ValidationOptions) -> RequestValidator {
    load(name)
        .compile_validator(options)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn orders() -> RequestValidator {
    validator("orders.yaml", ValidationOptions::default())
}

fn inventory() -> RequestValidator {
    validator("inventory.json", ValidationOptions::default())
}

fn route<'v>(validator: &'v RequestValidator, method: &str, path: &str) -> ValidatedRoute<'v> {
    validator
        .check_route(method, path)
        .unwrap_or_else(|v| panic!("{method} {path}: {v:?}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The headers every `/orders` operation requires.
fn tenant() -> HeaderMap {
    headers(&[("x-tenant-id", "7")])
}

/// Checks the parameters of `GET /orders?<query>` with a valid tenant header.
fn list_orders(validator: &RequestValidator, query: &str) -> Result<(), Violation> {
    let route = route(validator, "GET", "/orders");
    validator.check_parameters(&route, Some(query), &tenant())
}

/// (code, pointer, rule) of a violation, for compact assertions.
fn summary(violation: &Violation) -> (&'static str, Option<&str>, Option<&str>) {
    (
        violation.code,
        violation.pointer.as_deref(),
        violation.rule.as_deref(),
    )
}

fn body_error(validator: &RequestValidator, method: &str, path: &str, body: &Value) -> Violation {
    let route = route(validator, method, path);
    validator
        .check_body(&route, body.to_string().as_bytes())
        .expect_err("the body should be refused")
}

fn body_ok(validator: &RequestValidator, method: &str, path: &str, body: &Value) {
    let route = route(validator, method, path);
    let parsed = validator
        .check_body(&route, body.to_string().as_bytes())
        .unwrap_or_else(|v| panic!("{method} {path} {body}: {v:?}"));
    assert_eq!(&parsed, body);
}

/// A complete, valid `POST /orders` body using both parts of the `allOf`.
fn new_order() -> Value {
    json!({
        "note": "leave at the door",
        "customer": {
            "email": "ada@example.com",
            "name": "Ada",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"}
        },
        "items": [
            {"sku": "BOOK-1", "quantity": 1},
            {"sku": "PEN-22", "quantity": 3, "color": "blue"},
            {"sku": "MUG-7", "quantity": 2, "unit_price": {"amount_cents": 1250, "currency": "EUR"}}
        ],
        "priority": "express",
        "metadata": {"campaign": "spring", "channel": "web"}
    })
}

// --- routes ---------------------------------------------------------------

#[test]
fn unknown_route_is_404_unknown_route() {
    let v = orders();
    for path in ["/invoices", "/orders/ord_0a1b2c3d/lines", "/"] {
        let violation = v.check_route("GET", path).expect_err(path);
        assert_eq!(violation.code, "palisade.schema.unknown_route");
        assert_eq!(violation.status, 404);
    }
}

#[test]
fn known_path_with_another_method_is_405_listing_the_allowed_methods() {
    let v = orders();
    let violation = v
        .check_route("PUT", "/orders/ord_0a1b2c3d")
        .expect_err("PUT");
    assert_eq!(violation.code, "palisade.schema.method_not_allowed");
    assert_eq!(violation.status, 405);
    assert!(
        violation.message.contains("GET, PATCH, DELETE"),
        "{violation:?}"
    );
}

#[test]
fn head_is_checked_as_the_get_of_its_template() {
    let v = orders();
    let head = route(&v, "HEAD", "/orders/ord_0a1b2c3d");
    assert_eq!(head.operation.operation_id.as_deref(), Some("getOrder"));
    let violation = v
        .check_route("HEAD", "/orders/ord_0a1b2c3d/payments")
        .expect_err("no GET there");
    assert_eq!(violation.status, 405);
}

#[test]
fn matched_route_names_the_template_operation_and_path_parameters() {
    let v = orders();
    let route = route(&v, "POST", "/orders/ord_0a1b2c3d/payments");
    assert_eq!(route.template, "/orders/{orderId}/payments");
    assert_eq!(route.operation.operation_id.as_deref(), Some("payOrder"));
    assert_eq!(
        route.path_params,
        [("orderId".to_owned(), "ord_0a1b2c3d".to_owned())]
    );
}

// --- parameters -----------------------------------------------------------

#[test]
fn valid_query_header_and_path_parameters_pass() {
    let v = orders();
    list_orders(
        &v,
        "status=paid&limit=50&cursor=abcdefgh_12&tag=a&tag=b&ids=1,2,3&include_archived=true",
    )
    .expect("valid query");
    list_orders(&v, "").expect("no query");
    let get = route(&v, "GET", "/orders/ord_0a1b2c3d");
    v.check_parameters(&get, None, &HeaderMap::new())
        .expect("valid path parameter");
}

#[test]
fn integer_query_parameter_is_checked_against_minimum_and_maximum() {
    let v = orders();
    let low = list_orders(&v, "limit=0").expect_err("below minimum");
    assert_eq!(
        summary(&low),
        (
            "palisade.schema.invalid_parameter",
            Some("query/limit"),
            Some("minimum")
        )
    );
    assert_eq!(low.status, 400);
    let high = list_orders(&v, "limit=101").expect_err("above maximum");
    assert_eq!(high.rule.as_deref(), Some("maximum"));
    list_orders(&v, "limit=100").expect("at the maximum");
}

#[test]
fn non_numeric_value_of_an_integer_parameter_breaks_rule_type() {
    let v = orders();
    for query in ["limit=ten", "limit=1.5", "limit=", "limit=%201"] {
        let violation = list_orders(&v, query).expect_err(query);
        assert_eq!(
            summary(&violation),
            (
                "palisade.schema.invalid_parameter",
                Some("query/limit"),
                Some("type")
            ),
            "{query}"
        );
    }
}

#[test]
fn enum_query_parameter_refuses_other_values() {
    let v = orders();
    let violation = list_orders(&v, "status=lost").expect_err("not in the enum");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_parameter",
            Some("query/status"),
            Some("enum")
        )
    );
}

#[test]
fn pattern_is_enforced_on_query_and_path_parameters() {
    let v = orders();
    let query = list_orders(&v, "cursor=short").expect_err("pattern");
    assert_eq!(query.rule.as_deref(), Some("pattern"));
    let get = route(&v, "GET", "/orders/42");
    let path = v
        .check_parameters(&get, None, &HeaderMap::new())
        .expect_err("path pattern");
    assert_eq!(
        summary(&path),
        (
            "palisade.schema.invalid_parameter",
            Some("path/orderId"),
            Some("pattern")
        )
    );
}

#[test]
fn percent_encoded_path_parameter_is_decoded_before_validation() {
    let v = orders();
    // `%5F` is `_`: the decoded value matches the pattern.
    let get = route(&v, "GET", "/orders/ord%5F0a1b2c3d");
    v.check_parameters(&get, None, &HeaderMap::new())
        .expect("decoded value matches");
    let get = route(&v, "GET", "/orders/ord_%FF");
    let violation = v
        .check_parameters(&get, None, &HeaderMap::new())
        .expect_err("not UTF-8");
    assert_eq!(violation.rule.as_deref(), Some("encoding"));
}

#[test]
fn missing_required_header_parameter_breaks_rule_required() {
    let v = orders();
    let list = route(&v, "GET", "/orders");
    let violation = v
        .check_parameters(&list, None, &HeaderMap::new())
        .expect_err("missing header");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_parameter",
            Some("header/X-Tenant-Id"),
            Some("required")
        )
    );
    let zero = v
        .check_parameters(&list, None, &headers(&[("X-Tenant-Id", "0")]))
        .expect_err("below minimum");
    assert_eq!(zero.rule.as_deref(), Some("minimum"));
}

#[test]
fn header_format_is_enforced_and_the_value_is_never_echoed() {
    let v = orders();
    let create = route(&v, "POST", "/orders");
    v.check_parameters(
        &create,
        None,
        &headers(&[
            ("x-tenant-id", "7"),
            ("idempotency-key", "0193a3f0-5c1e-7d35-b0a4-3f5c2b8e9d10"),
        ]),
    )
    .expect("valid uuid");
    let violation = v
        .check_parameters(
            &create,
            None,
            &headers(&[("x-tenant-id", "7"), ("idempotency-key", "hunter2-secret")]),
        )
        .expect_err("not a uuid");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_parameter",
            Some("header/Idempotency-Key"),
            Some("format")
        )
    );
    assert!(!violation.message.contains("hunter2"), "{violation:?}");
}

#[test]
fn unknown_query_parameter_is_rejected_in_strict_mode_only() {
    let strict = orders();
    let violation = list_orders(&strict, "limit=5&debug=1").expect_err("unknown parameter");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.unknown_parameter",
            Some("query/debug"),
            Some("unknownParameter")
        )
    );
    assert_eq!(violation.status, 400);
    let lax = validator(
        "orders.yaml",
        ValidationOptions {
            strict: false,
            ..ValidationOptions::default()
        },
    );
    list_orders(&lax, "limit=5&debug=1").expect("allowed when not strict");
    list_orders(&lax, "limit=500").expect_err("declared parameters are still checked");
}

#[test]
fn exploded_array_query_parameter_takes_repeated_keys() {
    let v = orders();
    list_orders(&v, "tag=a&tag=b&tag=c").expect("three tags");
    let violation = list_orders(&v, "tag=1&tag=2&tag=3&tag=4&tag=5&tag=6").expect_err("maxItems");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_parameter",
            Some("query/tag"),
            Some("maxItems")
        )
    );
    let long = list_orders(&v, "tag=ok&tag=this-tag-is-far-too-long").expect_err("maxLength");
    assert_eq!(long.rule.as_deref(), Some("maxLength"));
}

#[test]
fn non_exploded_array_query_parameter_is_comma_separated() {
    let v = orders();
    list_orders(&v, "ids=1,2,3").expect("three ids");
    let violation = list_orders(&v, "ids=1,x,3").expect_err("item type");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_parameter",
            Some("query/ids"),
            Some("type")
        )
    );
    assert!(violation.message.contains("/1"), "{violation:?}");
    let repeated = list_orders(&v, "ids=1&ids=2").expect_err("not exploded");
    assert_eq!(repeated.rule.as_deref(), Some("duplicate"));
}

#[test]
fn boolean_query_parameter_accepts_only_true_and_false() {
    let v = orders();
    list_orders(&v, "include_archived=false").expect("false");
    let violation = list_orders(&v, "include_archived=yes").expect_err("yes");
    assert_eq!(violation.rule.as_deref(), Some("type"));
}

#[test]
fn repeated_scalar_query_parameter_is_refused() {
    let v = orders();
    let violation = list_orders(&v, "limit=5&limit=500").expect_err("repeated");
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_parameter",
            Some("query/limit"),
            Some("duplicate")
        )
    );
}

#[test]
fn pipe_delimited_array_and_nullable_enum_parameters_in_3_1() {
    let v = inventory();
    let list = route(&v, "GET", "/products");
    let check = |query| v.check_parameters(&list, Some(query), &HeaderMap::new());
    check("sizes=S|M&sort=-price&page=2").expect("valid");
    assert_eq!(
        check("sizes=S|XL").expect_err("enum").pointer.as_deref(),
        Some("query/sizes")
    );
    assert_eq!(
        check("sort=colour").expect_err("enum").rule.as_deref(),
        Some("enum")
    );
    assert_eq!(
        check("page=0").expect_err("minimum").rule.as_deref(),
        Some("minimum")
    );
}

#[test]
fn unsupported_parameter_styles_are_refused_at_compile_time() {
    let cases = [
        (
            "{name: filter, in: query, style: deepObject, schema: {type: object}}",
            "is an object",
        ),
        (
            "{name: f, in: query, content: {application/json: {schema: {type: object}}}}",
            "described with `content`",
        ),
        (
            "{name: ids, in: query, style: spaceDelimited, explode: true, schema: {type: array, items: {type: integer}}}",
            "style `spaceDelimited` and explode true",
        ),
        (
            "{name: v, in: header, style: form, schema: {type: string}}",
            "style `form`",
        ),
        (
            "{name: other, in: path, required: true, schema: {type: string}}",
            "not a parameter of the template",
        ),
    ];
    for (parameter, expected) in cases {
        let text = format!(
            "openapi: 3.0.3\ninfo:\n  title: T\npaths:\n  /things/{{id}}:\n    get:\n      parameters:\n        - {parameter}\n"
        );
        let spec = ApiSpec::from_str(&text, Path::new("things.yaml")).unwrap();
        let err = spec
            .compile_validator(ValidationOptions::default())
            .expect_err(parameter);
        assert!(
            matches!(&err, SpecError::UnsupportedOperation { operation, .. } if operation == "GET /things/{id}"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(
                "things.yaml: GET /things/{id}: /paths/~1things~1{id}/get/parameters/0: "
            ),
            "{message}"
        );
        assert!(message.contains(expected), "{parameter}: {message}");
    }
}

// --- content types and presence --------------------------------------------

#[test]
fn content_type_not_in_the_spec_is_415() {
    let v = orders();
    let create = route(&v, "POST", "/orders");
    v.check_content_type(&create, Some("application/json; charset=utf-8"), true)
        .expect("json");
    for content_type in [
        Some("text/plain"),
        Some("application/xml"),
        Some("not a media type"),
        None,
    ] {
        let violation = v
            .check_content_type(&create, content_type, true)
            .expect_err("unsupported");
        assert_eq!(
            summary(&violation),
            (
                "palisade.schema.unsupported_media_type",
                None,
                Some("contentType")
            ),
            "{content_type:?}"
        );
        assert_eq!(violation.status, 415);
    }
    let latin1 = v
        .check_content_type(&create, Some("application/json; charset=iso-8859-1"), true)
        .expect_err("JSON must be UTF-8");
    assert_eq!(latin1.status, 415);
}

#[test]
fn merge_patch_json_is_accepted_where_the_spec_says_so() {
    let v = orders();
    let patch = route(&v, "PATCH", "/orders/ord_0a1b2c3d");
    v.check_content_type(&patch, Some("application/merge-patch+json"), true)
        .expect("merge patch");
    assert_eq!(
        v.check_content_type(&patch, Some("application/json"), true)
            .expect_err("plain JSON is not declared")
            .status,
        415
    );
    assert_eq!(
        v.body_expectation(&patch),
        BodyExpectation::Json { required: true }
    );
    body_ok(&v, "PATCH", "/orders/ord_0a1b2c3d", &json!({"note": null}));
    let empty = body_error(&v, "PATCH", "/orders/ord_0a1b2c3d", &json!({}));
    assert_eq!(
        summary(&empty),
        (
            "palisade.schema.invalid_body",
            Some(""),
            Some("minProperties")
        )
    );
}

#[test]
fn several_json_media_types_are_checked_against_their_own_schema() {
    let v = inventory();
    let patch = route(&v, "PATCH", "/products/LAMP-1");
    let merge = br#"{"price": 21.0}"#;
    let json_patch = br#"[{"op": "replace", "path": "/price", "value": 21.0}]"#;
    v.check_body_for(&patch, Some("application/merge-patch+json"), merge)
        .expect("merge patch");
    v.check_body_for(&patch, Some("application/json-patch+json"), json_patch)
        .expect("json patch");
    let wrong = v
        .check_body_for(&patch, Some("application/merge-patch+json"), json_patch)
        .expect_err("an array is not a merge patch");
    assert_eq!(
        summary(&wrong),
        ("palisade.schema.invalid_body", Some(""), Some("type"))
    );
    let op = v
        .check_body_for(
            &patch,
            Some("application/json-patch+json"),
            br#"[{"op": "move", "path": "/a"}]"#,
        )
        .expect_err("unknown op");
    assert_eq!(op.pointer.as_deref(), Some("/0/op"));
}

#[test]
fn required_body_that_is_missing_is_missing_body() {
    let v = orders();
    let create = route(&v, "POST", "/orders");
    let violation = v
        .check_content_type(&create, None, false)
        .expect_err("missing body");
    assert_eq!(
        summary(&violation),
        ("palisade.schema.missing_body", None, Some("required"))
    );
    assert_eq!(violation.status, 400);
    let empty = v.check_body(&create, b"  \n").expect_err("empty body");
    assert_eq!(empty.code, "palisade.schema.missing_body");
    // An optional body may be left out.
    let notes = route(&v, "PUT", "/orders/ord_0a1b2c3d/notes");
    v.check_content_type(&notes, None, false)
        .expect("optional body");
}

#[test]
fn body_on_an_operation_without_request_body_is_unexpected_body() {
    let v = orders();
    let get = route(&v, "GET", "/orders/ord_0a1b2c3d");
    let violation = v
        .check_content_type(&get, Some("application/json"), true)
        .expect_err("unexpected body");
    assert_eq!(
        summary(&violation),
        ("palisade.schema.unexpected_body", None, Some("requestBody"))
    );
    assert_eq!(violation.status, 400);
    v.check_content_type(&get, None, false).expect("no body");
    assert_eq!(v.body_expectation(&get), BodyExpectation::None);
    assert_eq!(
        v.check_body(&get, b"{}").expect_err("body").code,
        "palisade.schema.unexpected_body"
    );
}

#[test]
fn body_expectation_says_json_other_or_none() {
    let v = orders();
    let create = route(&v, "POST", "/orders");
    assert_eq!(
        v.body_expectation(&create),
        BodyExpectation::Json { required: true }
    );
    let notes = route(&v, "PUT", "/orders/ord_0a1b2c3d/notes");
    assert_eq!(
        v.body_expectation(&notes),
        BodyExpectation::Other { required: false }
    );
    assert_eq!(
        v.body_expectation_for(&notes, Some("text/plain")),
        BodyExpectation::Other { required: false }
    );
    v.check_content_type(&notes, Some("text/plain; charset=utf-8"), true)
        .expect("text");
    assert_eq!(v.options().max_body_bytes, 1024 * 1024);
}

// --- bodies: schema ---------------------------------------------------------

#[test]
fn valid_body_passes_and_is_returned_parsed() {
    let v = orders();
    body_ok(&v, "POST", "/orders", &new_order());
}

#[test]
fn unknown_field_is_rejected_with_its_exact_pointer_and_rule() {
    let v = orders();
    let mut body = new_order();
    body["customer"]["emial"] = json!("ada@example.org");
    let violation = body_error(&v, "POST", "/orders", &body);
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.unknown_field",
            Some("/customer/emial"),
            Some("unevaluatedProperties")
        )
    );
    assert_eq!(violation.status, 400);
    assert!(!violation.message.contains("ada@"), "{violation:?}");
}

#[test]
fn unknown_field_inside_an_array_item_names_the_item() {
    let v = orders();
    let mut body = new_order();
    body["items"][2]["colour"] = json!("red");
    let violation = body_error(&v, "POST", "/orders", &body);
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.unknown_field",
            Some("/items/2/colour"),
            Some("unevaluatedProperties")
        )
    );
}

#[test]
fn unknown_top_level_field_of_an_all_of_composition_is_rejected() {
    let v = orders();
    let mut body = new_order();
    body["coupon"] = json!("FREE");
    let violation = body_error(&v, "POST", "/orders", &body);
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.unknown_field",
            Some("/coupon"),
            Some("unevaluatedProperties")
        )
    );
}

#[test]
fn unknown_fields_are_accepted_when_strict_is_false() {
    let lax = validator(
        "orders.yaml",
        ValidationOptions {
            strict: false,
            ..ValidationOptions::default()
        },
    );
    let mut body = new_order();
    body["coupon"] = json!("FREE");
    body["customer"]["emial"] = json!("x");
    body["items"][2]["colour"] = json!("red");
    body_ok(&lax, "POST", "/orders", &body);
    // Everything else is still checked.
    body["items"][0]["quantity"] = json!(0);
    assert_eq!(
        body_error(&lax, "POST", "/orders", &body).rule.as_deref(),
        Some("minimum")
    );
}

#[test]
fn all_of_composition_accepts_members_of_every_part_in_strict_mode() {
    let v = orders();
    // `note` comes from OrderBase, the rest from the second part; OrderBase
    // requires the read-only `id`, which a request must not (and need not) send.
    body_ok(
        &v,
        "POST",
        "/orders",
        &json!({"note": "hi", "customer": {"email": "a@example.com"}, "items": [{"sku": "ABC", "quantity": 1}]}),
    );
    let inventory = inventory();
    body_ok(
        &inventory,
        "POST",
        "/products",
        &json!({"name": "Lamp", "price": 19.5, "initial_stock": 4, "dimensions": {"width_mm": 10, "height_mm": 20}}),
    );
    let violation = body_error(
        &inventory,
        "POST",
        "/products",
        &json!({"name": "Lamp", "price": 19.5, "dimensions": {"width_mm": 10, "height_mm": 20, "weight_g": 5}}),
    );
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.unknown_field",
            Some("/dimensions/weight_g"),
            Some("unevaluatedProperties")
        )
    );
}

#[test]
fn one_of_composition_accepts_each_branch_and_rejects_unknown_fields_in_strict_mode() {
    let v = orders();
    let path = "/orders/ord_0a1b2c3d/payments";
    let amount = json!({"amount_cents": 1999, "currency": "EUR"});
    body_ok(
        &v,
        "POST",
        path,
        &json!({"method": "card", "card_token": "tok_abcdefgh", "amount": amount, "save_card": true}),
    );
    body_ok(
        &v,
        "POST",
        path,
        &json!({"method": "bank_transfer", "iban": "DE89370400440532013000", "amount": amount, "reference": "INV-1"}),
    );
    let extra = body_error(
        &v,
        "POST",
        path,
        &json!({"method": "card", "card_token": "tok_abcdefgh", "amount": amount, "cvv": "123"}),
    );
    assert_eq!(
        summary(&extra),
        (
            "palisade.schema.unknown_field",
            Some("/cvv"),
            Some("unevaluatedProperties")
        )
    );
    assert!(!extra.message.contains("123"), "{extra:?}");
    // A mistake deep inside one branch is reported there, not as "oneOf".
    let nested = body_error(
        &v,
        "POST",
        path,
        &json!({"method": "card", "card_token": "tok_abcdefgh", "amount": {"amount_cents": 5, "currency": "JPY"}}),
    );
    assert_eq!(
        summary(&nested),
        (
            "palisade.schema.invalid_body",
            Some("/amount/currency"),
            Some("enum")
        )
    );
    let neither = body_error(&v, "POST", path, &json!({"method": "cash"}));
    assert_eq!(neither.rule.as_deref(), Some("oneOf"));
}

#[test]
fn nullable_accepts_null_in_3_0_and_other_fields_do_not() {
    let v = orders();
    let mut body = new_order();
    body["note"] = Value::Null;
    body["discount_code"] = Value::Null;
    body["gift_wrap"] = Value::Null;
    body["customer"]["address"]["line2"] = Value::Null;
    body_ok(&v, "POST", "/orders", &body);
    body["gift_wrap"] = json!({"message": "Happy birthday", "paper": "gold"});
    body_ok(&v, "POST", "/orders", &body);

    body["gift_wrap"] = json!({"message": "Hi", "ribbon": true});
    assert_eq!(
        summary(&body_error(&v, "POST", "/orders", &body)),
        (
            "palisade.schema.unknown_field",
            Some("/gift_wrap/ribbon"),
            Some("unevaluatedProperties")
        )
    );
    body["gift_wrap"] = Value::Null;
    body["customer"]["name"] = Value::Null;
    assert_eq!(
        summary(&body_error(&v, "POST", "/orders", &body)),
        (
            "palisade.schema.invalid_body",
            Some("/customer/name"),
            Some("type")
        )
    );
}

#[test]
fn read_only_property_in_a_request_is_rejected() {
    let v = orders();
    let mut body = new_order();
    body["customer"]["id"] = json!("cus_1");
    let violation = body_error(&v, "POST", "/orders", &body);
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_body",
            Some("/customer/id"),
            Some("readOnly")
        )
    );
    let mut body = new_order();
    body["id"] = json!("ord_0a1b2c3d");
    assert_eq!(
        body_error(&v, "POST", "/orders", &body).pointer.as_deref(),
        Some("/id")
    );
    // 3.1: the read-only `sku` is required by the schema, but only in responses.
    let inventory = inventory();
    body_ok(
        &inventory,
        "PUT",
        "/products/LAMP-1",
        &json!({"name": "Lamp", "price": 1, "description": null}),
    );
    let sku = body_error(
        &inventory,
        "PUT",
        "/products/LAMP-1",
        &json!({"sku": "LAMP-1", "name": "Lamp", "price": 1}),
    );
    assert_eq!(
        summary(&sku),
        (
            "palisade.schema.invalid_body",
            Some("/sku"),
            Some("readOnly")
        )
    );
}

#[test]
fn read_only_schema_reused_for_a_path_parameter_accepts_values_there() {
    let text = r##"{"openapi": "3.1.0", "info": {"title": "T"},
      "paths": {"/things/{id}": {"put": {
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Id"}}],
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}}},
      "components": {"schemas": {
        "Id": {"type": "string", "pattern": "^t[0-9]+$", "readOnly": true},
        "Thing": {"type": "object", "properties": {"id": {"$ref": "#/components/schemas/Id"}, "name": {"type": "string"}}}}}}"##;
    let v = ApiSpec::from_str(text, Path::new("things.json"))
        .unwrap()
        .compile_validator(ValidationOptions::default())
        .unwrap();
    let put = route(&v, "PUT", "/things/t1");
    v.check_parameters(&put, None, &HeaderMap::new())
        .expect("the path parameter is not a read-only property");
    let bad = route(&v, "PUT", "/things/x1");
    assert_eq!(
        v.check_parameters(&bad, None, &HeaderMap::new())
            .expect_err("pattern")
            .rule
            .as_deref(),
        Some("pattern")
    );
    v.check_body(&put, br#"{"name": "n"}"#).expect("no id");
    assert_eq!(
        v.check_body(&put, br#"{"id": "t1", "name": "n"}"#)
            .expect_err("read-only")
            .pointer
            .as_deref(),
        Some("/id")
    );
}

#[test]
fn wrong_type_names_the_pointer_and_rule_but_not_the_value() {
    let v = orders();
    let mut body = new_order();
    body["items"][1]["quantity"] = json!("three-secret");
    let violation = body_error(&v, "POST", "/orders", &body);
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_body",
            Some("/items/1/quantity"),
            Some("type")
        )
    );
    assert!(!violation.message.contains("three-secret"), "{violation:?}");
    assert!(
        violation.message.contains("/items/1/quantity"),
        "{violation:?}"
    );
}

#[test]
fn missing_required_field_names_the_parent_and_rule_required() {
    let v = orders();
    let mut body = new_order();
    body["customer"].as_object_mut().unwrap().remove("email");
    let violation = body_error(&v, "POST", "/orders", &body);
    assert_eq!(
        summary(&violation),
        (
            "palisade.schema.invalid_body",
            Some("/customer"),
            Some("required")
        )
    );
    assert!(violation.message.contains("`email`"), "{violation:?}");

    let root = body_error(
        &v,
        "POST",
        "/orders",
        &json!({"customer": {"email": "a@example.com"}}),
    );
    assert_eq!(
        summary(&root),
        ("palisade.schema.invalid_body", Some(""), Some("required"))
    );
    assert!(root.message.contains("`items`"), "{root:?}");
}

#[test]
fn boolean_exclusive_minimum_of_3_0_is_enforced() {
    let v = orders();
    let mut body = new_order();
    body["items"][2]["unit_price"]["amount_cents"] = json!(0);
    assert_eq!(
        summary(&body_error(&v, "POST", "/orders", &body)),
        (
            "palisade.schema.invalid_body",
            Some("/items/2/unit_price/amount_cents"),
            Some("exclusiveMinimum")
        )
    );
}

#[test]
fn formats_patterns_and_enums_are_enforced_in_bodies() {
    let v = orders();
    let cases = [
        ("/customer/email", json!("not-an-email"), "format"),
        ("/items/0/sku", json!("lower-case"), "pattern"),
        ("/priority", json!("overnight"), "enum"),
        ("/metadata/channel", json!(7), "type"),
        ("/customer/address/country", json!("USA"), "pattern"),
    ];
    for (pointer, value, rule) in cases {
        let mut body = new_order();
        *body.pointer_mut(pointer).unwrap() = value;
        let violation = body_error(&v, "POST", "/orders", &body);
        assert_eq!(
            summary(&violation),
            ("palisade.schema.invalid_body", Some(pointer), Some(rule)),
            "{pointer}"
        );
    }
}

// --- bodies: limits and syntax -------------------------------------------------

#[test]
fn deeply_nested_body_is_rejected_before_parsing_without_overflowing_the_stack() {
    let v = orders();
    let create = route(&v, "POST", "/orders");
    let nested = "[".repeat(100_000);
    let violation = v
        .check_body(&create, nested.as_bytes())
        .expect_err("too deep");
    assert_eq!(
        summary(&violation),
        ("palisade.schema.too_deep", None, Some("maxDepth"))
    );
    assert_eq!(violation.status, 400);

    // 33 levels of objects are one too many; 32 are parsed (and then fail the schema:
    // the required `customer` is missing).
    let object = |levels: usize| format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
    assert_eq!(
        v.check_body(&create, object(33).as_bytes())
            .expect_err("33 levels")
            .code,
        "palisade.schema.too_deep"
    );
    assert_eq!(
        v.check_body(&create, object(32).as_bytes())
            .expect_err("32 levels")
            .code,
        "palisade.schema.invalid_body"
    );
}

#[test]
fn the_depth_check_needs_little_stack() {
    let v = orders();
    let handle = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let create = route(&v, "POST", "/orders");
            let body = vec![b'['; 1 << 20];
            v.check_body(&create, &body).expect_err("too deep").code
        })
        .unwrap();
    assert_eq!(handle.join().unwrap(), "palisade.schema.too_deep");
}

#[test]
fn objects_with_too_many_keys_and_arrays_with_too_many_items_are_too_large() {
    let v = validator(
        "orders.yaml",
        ValidationOptions {
            max_object_keys: 3,
            max_array_items: 2,
            ..ValidationOptions::default()
        },
    );
    let create = route(&v, "POST", "/orders");
    let keys = br#"{"customer": {"email": "a@example.com", "name": "A", "address": {}, "x": 1}}"#;
    let violation = v.check_body(&create, keys).expect_err("four keys");
    assert_eq!(
        summary(&violation),
        ("palisade.schema.too_large", None, Some("maxObjectKeys"))
    );
    let items = br#"{"items": [{}, {}, {}]}"#;
    let violation = v.check_body(&create, items).expect_err("three items");
    assert_eq!(
        summary(&violation),
        ("palisade.schema.too_large", None, Some("maxArrayItems"))
    );
    assert_eq!(violation.status, 400);

    let defaults = orders();
    let create = route(&defaults, "POST", "/orders");
    let many = format!("[{}0]", "0,".repeat(10_000));
    assert_eq!(
        defaults
            .check_body(&create, many.as_bytes())
            .expect_err("10 001 items")
            .code,
        "palisade.schema.too_large"
    );
}

#[test]
fn malformed_json_is_rejected() {
    let v = orders();
    let create = route(&v, "POST", "/orders");
    for body in [
        &b"{\"customer\": "[..],
        b"{\"items\": [1,]}",
        b"{'single': 'quotes'}",
        b"{} trailing",
        b"\xff\xfe{}",
    ] {
        let violation = v.check_body(&create, body).expect_err("malformed");
        assert_eq!(violation.code, "palisade.schema.malformed_json", "{body:?}");
        assert_eq!(violation.status, 400);
    }
    let duplicate = v
        .check_body(&create, br#"{"note": "a", "note": "b"}"#)
        .expect_err("duplicate key");
    assert_eq!(
        summary(&duplicate),
        ("palisade.schema.malformed_json", None, Some("uniqueKeys"))
    );
}

#[test]
fn body_larger_than_the_limit_is_413() {
    let v = validator(
        "orders.yaml",
        ValidationOptions {
            max_body_bytes: 64,
            ..ValidationOptions::default()
        },
    );
    let create = route(&v, "POST", "/orders");
    let violation = v
        .check_body(&create, new_order().to_string().as_bytes())
        .expect_err("too large");
    assert_eq!(violation, Violation::body_too_large(64));
    assert_eq!(violation.status, 413);
    assert_eq!(violation.code, "palisade.schema.body_too_large");
}

// --- compiling --------------------------------------------------------------

fn compile_error(schema: &str) -> SpecError {
    let text = format!(
        "openapi: 3.0.3\ninfo:\n  title: T\npaths:\n  /things:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {schema}\ncomponents:\n  schemas:\n    Thing: {{type: object, properties: {{code: {{type: string, pattern: '(('}}}}}}\n"
    );
    ApiSpec::from_str(&text, Path::new("things.yaml"))
        .unwrap()
        .compile_validator(ValidationOptions::default())
        .expect_err("the schema should be refused")
}

#[test]
fn invalid_schema_is_a_compile_error_naming_the_operation_and_pointer() {
    let err = compile_error("{type: object, properties: {n: {type: integr}}}");
    assert!(
        matches!(&err, SpecError::InvalidSchema { operation, pointer, .. }
            if operation == "POST /things"
                && pointer == "/paths/~1things/post/requestBody/content/application~1json/schema/properties/n/type"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("things.yaml: POST /things: invalid schema at /paths/~1things/post/requestBody/content/application~1json/schema/properties/n/type: "),
        "{err}"
    );
    let err = compile_error("{$ref: '#/components/schemas/Thing'}");
    assert!(
        matches!(&err, SpecError::InvalidSchema { operation, pointer, .. }
            if operation == "POST /things"
                && pointer == "/components/schemas/Thing/properties/code/pattern"),
        "{err:?}"
    );
}

#[test]
fn unresolvable_references_are_compile_errors() {
    let err = compile_error("{$ref: 'common.yaml#/components/schemas/Thing'}");
    assert!(
        matches!(&err, SpecError::InvalidReference { operation, reference, .. }
            if operation == "POST /things" && reference == "common.yaml#/components/schemas/Thing"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("only references within the spec document"),
        "{err}"
    );
    let err = compile_error("{properties: {a: {$ref: '#/components/schemas/Nope'}}}");
    assert!(
        matches!(&err, SpecError::InvalidReference { pointer, .. }
            if pointer == "/paths/~1things/post/requestBody/content/application~1json/schema/properties/a"),
        "{err:?}"
    );
}

#[test]
fn existing_fixtures_compile() {
    for name in ["billing.yaml", "customers.json"] {
        for strict in [true, false] {
            load(name)
                .compile_validator(ValidationOptions {
                    strict,
                    ..ValidationOptions::default()
                })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    let customers = validator("customers.json", ValidationOptions::default());
    let put = route(&customers, "PUT", "/customers/42/address");
    customers
        .check_parameters(&put, None, &headers(&[("if-match", "\"v1\"")]))
        .expect("valid");
    customers
        .check_body(
            &put,
            br#"{"line1": "1 Main St", "city": "Paris", "country": "FR"}"#,
        )
        .expect("valid address");
    assert_eq!(
        customers
            .check_body(
                &put,
                br#"{"line1": "1 Main St", "city": "Paris", "country": "FRA"}"#
            )
            .expect_err("maxLength")
            .rule
            .as_deref(),
        Some("maxLength")
    );
}

// --- strict mode and composition ---------------------------------------------

/// A validator for one `POST /x` operation whose JSON body has `schema`,
/// with `components` (both JSON, written into a spec of `version`).
fn composed(version: &str, schema: Value, components: Value) -> RequestValidator {
    let spec = json!({
        "openapi": version,
        "info": {"title": "Composition"},
        "paths": {"/x": {"post": {"requestBody": {"required": true, "content": {
            "application/json": {"schema": schema}
        }}}}},
        "components": {"schemas": components},
    });
    ApiSpec::from_str(&spec.to_string(), Path::new("composition.json"))
        .unwrap()
        .compile_validator(ValidationOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn strict_mode_never_rejects_a_valid_composed_body() {
    let components = json!({
        "Named": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "Aged": {"type": "object", "properties": {"age": {"type": "integer"}}},
        "Person": {"allOf": [{"$ref": "#/components/schemas/Named"}, {"$ref": "#/components/schemas/Aged"}]},
        "Free": {"type": "object"},
    });
    // (schema, valid bodies, invalid bodies with the pointer of their unknown field)
    type Case = (Value, Vec<Value>, Vec<(Value, &'static str)>);
    let cases: Vec<Case> = vec![
        // Nested allOf of references, plus a field of its own.
        (
            json!({"allOf": [{"$ref": "#/components/schemas/Person"}, {"properties": {"email": {"type": "string"}}}]}),
            vec![
                json!({"name": "a", "age": 3, "email": "e"}),
                json!({"name": "a"}),
            ],
            vec![(json!({"name": "a", "nick": "n"}), "/nick")],
        ),
        // anyOf: fields of every branch that matches are known.
        (
            json!({"anyOf": [{"$ref": "#/components/schemas/Named"}, {"$ref": "#/components/schemas/Aged"}]}),
            vec![json!({"name": "a", "age": 3}), json!({"age": 3})],
            vec![(json!({"age": 3, "x": 1}), "/x")],
        ),
        // oneOf of inline branches inside a property, and a free-form branch.
        (
            json!({"type": "object", "properties": {"pet": {"oneOf": [
                {"type": "object", "required": ["barks"], "properties": {"barks": {"type": "boolean"}}},
                {"type": "object", "required": ["meows"], "properties": {"meows": {"type": "boolean"}}}
            ]}, "extra": {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/Free"}]}}}),
            vec![
                json!({"pet": {"barks": true}}),
                json!({"pet": {"meows": false}, "extra": {"anything": [1, 2]}}),
                json!({"extra": "text"}),
            ],
            vec![(json!({"pet": {"barks": true, "wags": true}}), "/pet/wags")],
        ),
        // Properties with required-only oneOf branches stay closed.
        (
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}),
            vec![json!({"a": "x"}), json!({"b": "y"})],
            vec![(json!({"a": "x", "c": 1}), "/c")],
        ),
        // if/then/else contribute their fields.
        (
            json!({"type": "object", "required": ["kind"], "properties": {"kind": {"enum": ["card", "cash"]}},
                   "if": {"properties": {"kind": {"const": "card"}}},
                   "then": {"properties": {"last4": {"type": "string"}}},
                   "else": {"properties": {"change": {"type": "integer"}}}}),
            vec![
                json!({"kind": "card", "last4": "4242"}),
                json!({"kind": "cash", "change": 5}),
            ],
            vec![(json!({"kind": "cash", "last4": "4242"}), "/last4")],
        ),
        // Declared fields plus a typed map of the rest; and a free-form object.
        (
            json!({"type": "object", "properties": {"id": {"type": "string"},
                   "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                   "blob": {"type": "object"},
                   "tagged": {"type": "object", "properties": {"v": {"type": "integer"}}, "additionalProperties": {"type": "string"}}}}),
            vec![
                json!({"id": "1", "labels": {"k": "v"}, "blob": {"any": {"thing": 1}}, "tagged": {"v": 1, "w": "x"}}),
            ],
            vec![(json!({"id": "1", "blob": {}, "zzz": 1}), "/zzz")],
        ),
        // Arrays of composed items.
        (
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Person"}}),
            vec![json!([{"name": "a"}, {"name": "b", "age": 2}])],
            vec![(json!([{"name": "a"}, {"name": "b", "agee": 2}]), "/1/agee")],
        ),
    ];
    for version in ["3.1.0", "3.0.3"] {
        for (schema, valid, invalid) in &cases {
            // 3.0 has no if/then/else; the other schemas mean the same in both.
            if version == "3.0.3" && schema.get("if").is_some() {
                continue;
            }
            let v = composed(version, schema.clone(), components.clone());
            for body in valid {
                body_ok(&v, "POST", "/x", body);
            }
            for (body, pointer) in invalid {
                let violation = body_error(&v, "POST", "/x", body);
                assert_eq!(
                    summary(&violation),
                    (
                        "palisade.schema.unknown_field",
                        Some(*pointer),
                        Some("unevaluatedProperties")
                    ),
                    "{version} {schema} {body}"
                );
            }
        }
    }
}

#[test]
fn nullable_reference_with_siblings_in_3_0() {
    let v = composed(
        "3.0.3",
        json!({"type": "object", "properties": {
            "owner": {"$ref": "#/components/schemas/Named", "nullable": true, "description": "who"},
            "count": {"type": "integer", "nullable": true, "enum": [1, 2]}
        }}),
        json!({"Named": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}),
    );
    body_ok(&v, "POST", "/x", &json!({"owner": null, "count": null}));
    body_ok(
        &v,
        "POST",
        "/x",
        &json!({"owner": {"name": "a"}, "count": 2}),
    );
    assert_eq!(
        summary(&body_error(
            &v,
            "POST",
            "/x",
            &json!({"owner": {"name": "a", "x": 1}})
        )),
        (
            "palisade.schema.unknown_field",
            Some("/owner/x"),
            Some("unevaluatedProperties")
        )
    );
    assert_eq!(
        body_error(&v, "POST", "/x", &json!({"count": 3}))
            .rule
            .as_deref(),
        Some("enum")
    );
}
