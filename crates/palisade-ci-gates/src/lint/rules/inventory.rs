//! Inventory (API9) and transport (API8): servers, owners, zombie
//! operations.

use super::Ctx;
use crate::lint::pointer;
use crate::lint::spec::Located;

pub(super) fn check(ctx: &mut Ctx<'_>) {
    let servers = ctx.model.servers.clone();
    for server in &servers {
        plain_http(ctx, server);
    }
    let root_servers = ctx.model.root_servers.clone();
    for server in &root_servers {
        audience_and_environment(ctx, server);
    }
    owners(ctx);
    deprecated(ctx);
}

/// Whether a URL scheme is cleartext.
fn cleartext(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws")
}

/// `owasp-no-server-http`: the URL's scheme, or a `{variable}` standing
/// for it whose default or allowed values are cleartext.
fn plain_http(ctx: &mut Ctx<'_>, server: &Located<'_>) {
    let Some(url) = server.node.get_str("url") else {
        return;
    };
    let Some((scheme, _)) = url.split_once(':') else {
        return;
    };
    let at = pointer::push(&server.pointer, "url");
    if cleartext(scheme) {
        ctx.hit(
            "owasp-no-server-http",
            server.file,
            at,
            format!("server URL `{url}` uses cleartext {scheme}: use https:// or wss://"),
        );
        return;
    }
    let Some(var) = scheme.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return;
    };
    let Some(def) = server.node.get("variables").and_then(|v| v.get(var)) else {
        return;
    };
    let mut values: Vec<&str> = def.get_str("default").into_iter().collect();
    if let Some(allowed) = def.get("enum").and_then(|e| e.as_seq()) {
        values.extend(allowed.iter().filter_map(|v| v.as_str()));
    }
    if let Some(bad) = values.into_iter().find(|v| cleartext(v)) {
        ctx.hit(
            "owasp-no-server-http",
            server.file,
            at,
            format!("server URL `{url}` may use cleartext `{bad}` (variable `{var}`): allow only https or wss"),
        );
    }
}

/// Words that name an environment (Spectral's list).
const ENVIRONMENTS: [&str; 13] = [
    "local",
    "sandbox",
    "alpha",
    "beta",
    "test",
    "testing",
    "stag",
    "staging",
    "prod",
    "production",
    "next",
    "preprod",
    "preproduction",
];

fn audience_and_environment(ctx: &mut Ctx<'_>, server: &Located<'_>) {
    let url = server.node.get_str("url").unwrap_or("").to_owned();
    match server.node.get("x-internal") {
        None => ctx.hit(
            "owasp-inventory-access",
            server.file,
            server.pointer.clone(),
            format!("server `{url}` does not declare its audience with `x-internal: true|false`"),
        ),
        Some(v) if v.as_bool().is_none() => ctx.hit(
            "owasp-inventory-access",
            server.file,
            pointer::push(&server.pointer, "x-internal"),
            format!(
                "server `{url}`: `x-internal` must be true or false, not `{}`",
                v.scalar_text()
            ),
        ),
        Some(_) => {}
    }
    let description = server.node.get_str("description").unwrap_or("");
    let lower = description.to_ascii_lowercase();
    if !ENVIRONMENTS.iter().any(|e| lower.contains(e)) {
        let at = if server.node.has("description") {
            pointer::push(&server.pointer, "description")
        } else {
            server.pointer.clone()
        };
        ctx.hit(
            "owasp-inventory-environment",
            server.file,
            at,
            format!("server `{url}`: its description does not name an environment (production, staging, test, sandbox, local, ...)"),
        );
    }
}

fn non_empty_str(node: Option<&crate::lint::node::Node>) -> bool {
    node.and_then(|n| n.as_str())
        .is_some_and(|s| !s.trim().is_empty())
}

/// `palisade-operation-owner`.
fn owners(ctx: &mut Ctx<'_>) {
    let root = ctx.ws.root(ctx.spec).node;
    let contact = root.get("info").and_then(|i| i.get("contact"));
    let spec_owner = non_empty_str(root.get("x-owner"))
        || contact.is_some_and(|c| {
            ["name", "email", "url"]
                .iter()
                .any(|k| non_empty_str(c.get(k)))
        });
    if spec_owner {
        return;
    }
    let ops = ctx.model.operations.clone();
    for op in &ops {
        if non_empty_str(op.at.node.get("x-owner"))
            || non_empty_str(op.path_item.node.get("x-owner"))
        {
            continue;
        }
        ctx.hit_op(
            "palisade-operation-owner",
            op,
            op.at.file,
            op.at.pointer.clone(),
            format!(
                "{} has no declared owner: add `x-owner` (operation, path or spec) or `info.contact`",
                op.label()
            ),
        );
    }
}

/// `palisade-deprecated-operation`.
fn deprecated(ctx: &mut Ctx<'_>) {
    let ops = ctx.model.operations.clone();
    for op in &ops {
        if op.at.node.get("deprecated").and_then(|d| d.as_bool()) != Some(true) {
            continue;
        }
        let sunset = op
            .at
            .node
            .get("x-sunset")
            .map(|s| s.scalar_text())
            .filter(|s| is_date(s));
        let when = match sunset {
            Some(date) if date.as_str() <= ctx.today.as_str() => {
                format!("its `x-sunset` date {date} has passed: remove it")
            }
            Some(date) => format!("it is due to go on {date} (`x-sunset`)"),
            None => "remove it once callers have moved, and set `x-sunset: YYYY-MM-DD` meanwhile"
                .to_owned(),
        };
        ctx.hit_op(
            "palisade-deprecated-operation",
            op,
            op.at.file,
            pointer::push(&op.at.pointer, "deprecated"),
            format!(
                "deprecated operation {} is still served (zombie-API candidate): {when}",
                op.label()
            ),
        );
    }
}

/// `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}
