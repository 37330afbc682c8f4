//! Authentication and authorization (OWASP API2 and API5): security schemes
//! and the `security` requirements of operations.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Operation};
use crate::lint::pointer;
use crate::lint::spec::Located;

pub(super) fn check(ctx: &mut Ctx<'_>) {
    schemes(ctx);
    protection(ctx);
    admin_unique(ctx);
    undefined_schemes(ctx);
}

/// Checks on `components.securitySchemes`.
fn schemes(ctx: &mut Ctx<'_>) {
    let schemes = ctx.model.security_schemes.clone();
    for (name, scheme) in schemes {
        let kind = scheme.node.get_str("type").unwrap_or("");
        let http_scheme = scheme.node.get_str("scheme").unwrap_or("");
        if kind.eq_ignore_ascii_case("http") && http_scheme.eq_ignore_ascii_case("basic") {
            ctx.hit(
                "owasp-no-http-basic",
                scheme.file,
                pointer::push(&scheme.pointer, "scheme"),
                format!("security scheme `{name}` uses HTTP Basic: use OAuth 2.0, OpenID Connect or mutual TLS"),
            );
        }
        if kind.eq_ignore_ascii_case("http")
            && ["negotiate", "ntlm", "oauth"]
                .iter()
                .any(|s| http_scheme.eq_ignore_ascii_case(s))
        {
            ctx.hit(
                "owasp-auth-insecure-schemes",
                scheme.file,
                pointer::push(&scheme.pointer, "scheme"),
                format!("security scheme `{name}` uses the outdated or insecure HTTP scheme `{http_scheme}`"),
            );
        }
        if kind.eq_ignore_ascii_case("apiKey") {
            let location = scheme.node.get_str("in").unwrap_or("");
            if matches!(location, "query" | "path") {
                ctx.hit(
                    "owasp-no-api-keys-in-url",
                    scheme.file,
                    pointer::push(&scheme.pointer, "in"),
                    format!("API key scheme `{name}` is sent in the URL (`in: {location}`): send it in a header"),
                );
            }
        }
        let jwt = kind == "oauth2"
            || kind == "openIdConnect"
            || scheme
                .node
                .get_str("bearerFormat")
                .is_some_and(|f| f.eq_ignore_ascii_case("jwt"));
        if jwt {
            let description = scheme.node.get_str("description").unwrap_or("");
            let normalized: String = description
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase();
            if !normalized.contains("RFC8725") {
                let at = if description.is_empty() {
                    scheme.pointer.clone()
                } else {
                    pointer::push(&scheme.pointer, "description")
                };
                ctx.hit(
                    "owasp-jwt-best-practices",
                    scheme.file,
                    at,
                    format!(
                        "security scheme `{name}` uses JWTs but its description does not declare conformance to RFC 8725 (JWT best current practices)"
                    ),
                );
            }
        }
        if kind == "oauth2" {
            if let Some(flows) = scheme.get("flows") {
                for (flow, def) in flows.entries() {
                    let refresh = def.node.get("refreshUrl").is_some_and(|u| u.is_truthy());
                    if matches!(flow, "authorizationCode" | "password") && !refresh {
                        ctx.hit(
                            "owasp-short-lived-access-tokens",
                            def.file,
                            def.pointer.clone(),
                            format!("OAuth 2 `{flow}` flow of `{name}` has no `refreshUrl`: access tokens likely do not expire soon"),
                        );
                    }
                    if matches!(flow, "implicit" | "password") {
                        let why = if flow == "implicit" {
                            "the implicit grant leaks access tokens in redirects; RFC 9700 says it SHOULD NOT be used"
                        } else {
                            "the password grant exposes user credentials to the client; RFC 9700 says it MUST NOT be used"
                        };
                        ctx.hit(
                            "palisade-oauth2-deprecated-flow",
                            def.file,
                            def.pointer.clone(),
                            format!("security scheme `{name}` offers the `{flow}` flow: {why}"),
                        );
                    }
                }
            }
        }
    }
}

/// The `security` that applies to an operation: its own, else the top-level one.
fn effective_security<'a>(ctx: &Ctx<'a>, op: &Operation<'a>) -> Option<(Located<'a>, bool)> {
    if let Some(own) = op.at.get("security") {
        return Some((own, true));
    }
    ctx.ws.root(ctx.spec).get("security").map(|s| (s, false))
}

/// `owasp-write-restricted` and `owasp-read-restricted`.
fn protection(ctx: &mut Ctx<'_>) {
    let ops = ctx.model.operations.clone();
    for op in &ops {
        let rule = if op.is_write() {
            "owasp-write-restricted"
        } else if op.is_read() {
            "owasp-read-restricted"
        } else {
            continue;
        };
        let kind = if op.is_write() { "write" } else { "read" };
        let label = op.label();
        match effective_security(ctx, op) {
            None => ctx.hit_op(
                rule,
                op,
                op.at.file,
                op.at.pointer.clone(),
                format!("{kind} operation {label} is not protected by any security scheme (no `security` on it or at the top level)"),
            ),
            Some((security, own)) => {
                let items = security.items();
                if items.is_empty() {
                    let (at, whence) = if own {
                        (security.pointer.clone(), "its `security` is empty")
                    } else {
                        (op.at.pointer.clone(), "the top-level `security` is empty")
                    };
                    ctx.hit_op(
                        rule,
                        op,
                        op.at.file,
                        at,
                        format!("{kind} operation {label} is not protected by any security scheme: {whence}"),
                    );
                    continue;
                }
                if let Some(empty) = items
                    .iter()
                    .find(|r| r.node.as_map().is_some_and(|m| m.is_empty()))
                {
                    let at = if own {
                        empty.pointer.clone()
                    } else {
                        op.at.pointer.clone()
                    };
                    ctx.hit_op(
                        rule,
                        op,
                        op.at.file,
                        at,
                        format!("{kind} operation {label} allows anonymous callers: its security requirements include `{{}}`"),
                    );
                }
            }
        }
    }
}

/// A security requirement in a comparable form: scheme → scopes.
type Requirement = BTreeMap<String, BTreeSet<String>>;

fn requirement(r: &Located<'_>) -> Requirement {
    r.entries()
        .into_iter()
        .map(|(name, scopes)| {
            let scopes = scopes
                .node
                .as_seq()
                .map(|s| s.iter().map(|x| x.scalar_text()).collect())
                .unwrap_or_default();
            (name.to_owned(), scopes)
        })
        .collect()
}

fn render(r: &Requirement) -> String {
    let parts: Vec<String> = r
        .iter()
        .map(|(name, scopes)| {
            format!(
                "{name}: [{}]",
                scopes.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `owasp-admin-security-unique`: an admin operation's requirement is also
/// one of a non-admin operation.
fn admin_unique(ctx: &mut Ctx<'_>) {
    let ops = ctx.model.operations.clone();
    let mut ordinary: BTreeMap<Requirement, String> = BTreeMap::new();
    let mut admin = Vec::new();
    for op in &ops {
        let Some((security, own)) = effective_security(ctx, op) else {
            continue;
        };
        for item in security.items() {
            let req = requirement(&item);
            if req.is_empty() {
                continue;
            }
            if op.path.contains("/admin") {
                admin.push((op.clone(), item, own, req));
            } else {
                ordinary.entry(req).or_insert_with(|| op.label());
            }
        }
    }
    for (op, item, own, req) in admin {
        if let Some(other) = ordinary.get(&req) {
            let at = if own {
                item.pointer.clone()
            } else {
                op.at.pointer.clone()
            };
            let message = format!(
                "admin endpoint {} accepts the same security requirement {} as the non-admin endpoint {other}",
                op.label(),
                render(&req)
            );
            ctx.hit_op("owasp-admin-security-unique", &op, op.at.file, at, message);
        }
    }
}

/// `palisade-undefined-security-scheme`.
fn undefined_schemes(ctx: &mut Ctx<'_>) {
    let defined: BTreeSet<&str> = ctx.model.security_schemes.iter().map(|(n, _)| *n).collect();
    let mut lists: Vec<Located<'_>> = Vec::new();
    if let Some(root) = ctx.ws.root(ctx.spec).get("security") {
        lists.push(root);
    }
    for op in &ctx.model.operations {
        if let Some(own) = op.at.get("security") {
            lists.push(own);
        }
    }
    let mut hits = Vec::new();
    for list in lists {
        for item in list.items() {
            for (name, at) in item.entries() {
                if !defined.contains(name) {
                    hits.push((at, name.to_owned()));
                }
            }
        }
    }
    for (at, name) in hits {
        ctx.hit(
            "palisade-undefined-security-scheme",
            at.file,
            at.pointer,
            format!("security requirement names `{name}`, which `components.securitySchemes` does not define"),
        );
    }
}
