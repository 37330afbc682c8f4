//! `[service.inventory]`: what the sidecar observes for the live API inventory, and which
//! routes the service's owner has retired.
//!
//! ```toml
//! [service.inventory]
//! observe = true                    # record the exchange's shape (default true)
//! sample_rate = 1.0                 # share of requests observed, 0.0–1.0 (default 1.0)
//! max_body_bytes = 65536            # bodies beyond this are not inspected (default 64 KiB)
//! retired = ["GET /v1/orders", "DELETE /legacy/{id}"]   # "METHOD /template"
//! ```

use serde::Deserialize;
use toml::Spanned;

use crate::guard::Report;

/// Default of `max_body_bytes`: the largest body whose fields are observed.
pub const DEFAULT_INVENTORY_MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest `max_body_bytes` accepted: an observed body is held in memory until its
/// request is recorded, so the limit bounds memory per in-flight request.
pub const MAX_INVENTORY_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Methods a retired route may name (RFC 9110 §9 and PATCH, RFC 5789).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `[service.inventory]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InventorySettings {
    /// Record the shape of exchanges (query names, JSON field paths, types, data classes).
    pub observe: bool,
    /// The share of requests observed, from 0.0 (none) to 1.0 (all).
    pub sample_rate: f64,
    /// Bodies larger than this are not inspected (the record says `truncated`).
    pub max_body_bytes: usize,
    /// Routes the owner has retired; traffic to them marks a zombie endpoint.
    pub retired: Vec<RetiredRoute>,
}

/// `sample_rate` is validated to lie in 0.0..=1.0, so it is never NaN and equality is total.
impl Eq for InventorySettings {}

impl Default for InventorySettings {
    fn default() -> Self {
        InventorySettings {
            observe: true,
            sample_rate: 1.0,
            max_body_bytes: DEFAULT_INVENTORY_MAX_BODY_BYTES,
            retired: Vec::new(),
        }
    }
}

/// One entry of `retired`: `"DELETE /legacy/{id}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetiredRoute {
    /// The upper-case HTTP method.
    pub method: String,
    /// The route template, OpenAPI syntax (`/legacy/{id}`).
    pub route: String,
}

impl std::fmt::Display for RetiredRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.route)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInventory {
    observe: Option<bool>,
    sample_rate: Option<Spanned<f64>>,
    max_body_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    retired: Vec<Spanned<String>>,
}

impl RawInventory {
    /// Checks the section; every problem is reported under `field`.
    pub(crate) fn check(self, field: &str, out: &mut impl Report) -> Option<InventorySettings> {
        let before = out.count();
        let defaults = InventorySettings::default();
        let sample_rate = match self.sample_rate {
            None => defaults.sample_rate,
            Some(rate) => {
                let value = *rate.get_ref();
                // `contains` is false for NaN too.
                if !(0.0..=1.0).contains(&value) {
                    out.report(
                        rate.span(),
                        format!("{field}.sample_rate"),
                        format!("{value} is not between 0.0 and 1.0"),
                    );
                }
                value
            }
        };
        let max_body_bytes = match self.max_body_bytes {
            None => defaults.max_body_bytes,
            Some(limit) => {
                let value = *limit.get_ref();
                match usize::try_from(value) {
                    Ok(bytes) if (1..=MAX_INVENTORY_MAX_BODY_BYTES).contains(&bytes) => bytes,
                    _ => {
                        out.report(
                            limit.span(),
                            format!("{field}.max_body_bytes"),
                            format!("{value} is not between 1 and {MAX_INVENTORY_MAX_BODY_BYTES} (an observed body is held in memory until the request is recorded)"),
                        );
                        defaults.max_body_bytes
                    }
                }
            }
        };
        let mut retired: Vec<RetiredRoute> = Vec::new();
        for (i, entry) in self.retired.iter().enumerate() {
            let at = format!("{field}.retired[{i}]");
            match parse_retired(entry.get_ref()) {
                Ok(route) => match retired.iter().position(|r| *r == route) {
                    Some(first) => out.report(
                        entry.span(),
                        at,
                        format!("\"{route}\" is already listed as retired[{first}]"),
                    ),
                    None => retired.push(route),
                },
                Err(message) => out.report(entry.span(), at, message),
            }
        }
        (out.count() == before).then_some(InventorySettings {
            observe: self.observe.unwrap_or(defaults.observe),
            sample_rate,
            max_body_bytes,
            retired,
        })
    }
}

/// `"METHOD /template"`: an upper-case HTTP method, one space, an OpenAPI path template.
fn parse_retired(text: &str) -> Result<RetiredRoute, String> {
    let Some((method, route)) = text.split_once(' ') else {
        return Err(format!(
            "{text:?} is not \"METHOD /route\" (e.g. \"DELETE /legacy/{{id}}\")"
        ));
    };
    if !METHODS.contains(&method) {
        return Err(format!(
            "{text:?}: {method:?} is not an upper-case HTTP method ({})",
            METHODS.join(", ")
        ));
    }
    check_template(route).map_err(|why| format!("{text:?}: {why}"))?;
    Ok(RetiredRoute {
        method: method.to_owned(),
        route: route.to_owned(),
    })
}

/// A route template as the route stage and the inventory write them: starts with `/`, no
/// query, fragment or whitespace, no empty segment but a trailing one, and `{name}`
/// parameters (letters, digits, `_`, `-`, `.`) that neither nest nor span a `/`.
fn check_template(route: &str) -> Result<(), String> {
    if !route.starts_with('/') {
        return Err("the route must start with '/'".into());
    }
    if let Some(c) = route
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(format!(
            "the route contains {c:?}: only the path, no query or fragment"
        ));
    }
    let segments: Vec<&str> = route[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && i != last {
            return Err("the route has an empty segment ('//')".into());
        }
        let mut rest = *segment;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err("the route has a '}' without its '{'".into());
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or("the route has a '{' without its '}'")?;
            let name = &after[..close];
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err(format!(
                    "{{{name}}} is not a parameter: name it with letters, digits, '_', '-' or '.'"
                ));
            }
            rest = &after[close + 1..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_method_and_template() {
        assert_eq!(
            parse_retired("DELETE /legacy/{id}").unwrap(),
            RetiredRoute {
                method: "DELETE".into(),
                route: "/legacy/{id}".into()
            }
        );
        for ok in [
            "GET /",
            "GET /v1/orders/",
            "PATCH /files/{name}.{ext}",
            "GET /a/{b_c-d.e}",
        ] {
            assert!(parse_retired(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_method_and_a_template() {
        for (bad, why) in [
            ("GET", "is not \"METHOD /route\""),
            ("get /v1/orders", "upper-case HTTP method"),
            ("FETCH /v1/orders", "upper-case HTTP method"),
            ("GET v1/orders", "must start with '/'"),
            ("GET  /v1/orders", "must start with '/'"),
            ("GET /v1/orders?x=1", "no query"),
            ("GET /v1/orders /x", "no query"),
            ("GET /v1//orders", "empty segment"),
            ("GET /v1/{id", "without its '}'"),
            ("GET /v1/id}", "without its '{'"),
            ("GET /v1/{}", "is not a parameter"),
            ("GET /v1/{a/b}", "without its '}'"),
            ("GET /v1/{a{b}}", "is not a parameter"),
        ] {
            let err = parse_retired(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
