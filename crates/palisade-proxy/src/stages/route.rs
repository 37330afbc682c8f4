//! route: name the endpoint a request hits.
//!
//! With an OpenAPI spec the endpoint is the matching route template (`/customers/{id}`),
//! so policies speak of endpoints, not of every concrete path. Without a spec, or for a
//! path the spec does not know, it is the literal path. (Refusing routes the spec does not
//! know is the validation stage's decision, not this one's.)

use palisade_openapi::{ApiSpec, RouteMatch};

/// The route template for `method path`, if the service's spec has one.
pub fn route(spec: Option<&ApiSpec>, method: &str, path: &str) -> Option<String> {
    match spec?.match_route(method, path) {
        RouteMatch::Found { operation, .. } => Some(operation.template.clone()),
        RouteMatch::MethodNotAllowed { template, .. } => Some(template.to_owned()),
        RouteMatch::NotFound => None,
    }
}

/// The endpoint name policies see: the template when there is one, else the literal path.
pub fn endpoint<'a>(route: Option<&'a str>, path: &'a str) -> &'a str {
    route.unwrap_or(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    const SPEC: &str = r#"
openapi: 3.0.3
info: { title: customers, version: "1" }
paths:
  /customers/{id}:
    get: { responses: { "200": { description: ok } } }
  /customers/me:
    get: { responses: { "200": { description: ok } } }
"#;

    #[test]
    fn names_the_template_and_prefers_literal_segments() {
        let spec = ApiSpec::from_str(SPEC, Path::new("c.yaml")).unwrap();
        assert_eq!(
            route(Some(&spec), "GET", "/customers/42").as_deref(),
            Some("/customers/{id}")
        );
        assert_eq!(
            route(Some(&spec), "GET", "/customers/me").as_deref(),
            Some("/customers/me")
        );
        assert_eq!(
            route(Some(&spec), "DELETE", "/customers/42").as_deref(),
            Some("/customers/{id}")
        );
        assert_eq!(route(Some(&spec), "GET", "/admin"), None);
    }

    #[test]
    fn without_a_spec_the_endpoint_is_the_literal_path() {
        assert_eq!(route(None, "GET", "/x/1"), None);
        assert_eq!(endpoint(None, "/x/1"), "/x/1");
        assert_eq!(endpoint(Some("/x/{id}"), "/x/1"), "/x/{id}");
    }
}
