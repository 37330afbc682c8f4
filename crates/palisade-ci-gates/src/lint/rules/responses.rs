//! Responses: rate limiting (API4), error responses and CORS (API8).

use super::{Ctx, Operation};
use crate::lint::pointer;
use crate::lint::spec::Located;

pub(super) fn check(ctx: &mut Ctx<'_>) {
    let ops = ctx.model.operations.clone();
    for op in &ops {
        let Some(responses) = op.at.get("responses") else {
            continue;
        };
        let codes: Vec<(&str, Located<'_>)> = responses
            .entries()
            .into_iter()
            .filter(|(code, _)| !code.starts_with("x-"))
            .collect();
        for (code, response) in &codes {
            let Some(resolved) = ctx.ws.follow(response.clone()) else {
                continue;
            };
            each_response(ctx, op, code, &resolved);
        }
        required_responses(ctx, op, &responses, &codes);
    }
}

/// The lower-case names of a response's headers.
fn header_names(response: &Located<'_>) -> Vec<String> {
    response
        .node
        .get("headers")
        .and_then(|h| h.as_map())
        .map(|m| m.iter().map(|e| e.key.to_ascii_lowercase()).collect())
        .unwrap_or_default()
}

/// Where a finding about a response's headers points: `headers` when the
/// response has them, else the response.
fn headers_pointer(response: &Located<'_>) -> String {
    if response.node.has("headers") {
        pointer::push(&response.pointer, "headers")
    } else {
        response.pointer.clone()
    }
}

fn each_response(ctx: &mut Ctx<'_>, op: &Operation<'_>, code: &str, response: &Located<'_>) {
    let names = header_names(response);
    let has = |h: &str| names.iter().any(|n| n == h);
    let label = op.label();
    if code.starts_with('2') || code.starts_with('4') {
        let limited = has("ratelimit")
            || (has("ratelimit-limit") && has("ratelimit-reset"))
            || has("x-ratelimit-limit")
            || has("x-rate-limit-limit");
        if !limited {
            ctx.hit_op(
                "owasp-rate-limit",
                op,
                response.file,
                headers_pointer(response),
                format!("{code} response of {label} declares no rate-limit headers (RateLimit, RateLimit-Limit + RateLimit-Reset, X-RateLimit-Limit)"),
            );
        }
    }
    if code == "429" && !has("retry-after") {
        ctx.hit_op(
            "owasp-rate-limit-retry-after",
            op,
            response.file,
            headers_pointer(response),
            format!("429 response of {label} declares no `Retry-After` header"),
        );
    }
    if response.node.has("headers") && !has("access-control-allow-origin") {
        ctx.hit_op(
            "owasp-define-cors-origin",
            op,
            response.file,
            headers_pointer(response),
            format!(
                "{code} response of {label} declares headers but not `Access-Control-Allow-Origin`"
            ),
        );
    }
}

/// Whether a response (by code) is declared with non-empty `content`.
fn has_content(ctx: &Ctx<'_>, response: &Located<'_>) -> bool {
    ctx.ws
        .follow(response.clone())
        .and_then(|r| {
            r.node
                .get("content")
                .and_then(|c| c.as_map())
                .map(|m| !m.is_empty())
        })
        .unwrap_or(false)
}

fn required_responses(
    ctx: &mut Ctx<'_>,
    op: &Operation<'_>,
    responses: &Located<'_>,
    codes: &[(&str, Located<'_>)],
) {
    let label = op.label();
    let find = |wanted: &[&str]| {
        codes
            .iter()
            .find(|(c, _)| wanted.iter().any(|w| c.eq_ignore_ascii_case(w)))
            .map(|(c, r)| (*c, r.clone()))
    };
    if find(&["400", "422", "4XX"]).is_none() {
        ctx.hit_op(
            "owasp-define-error-validation",
            op,
            responses.file,
            responses.pointer.clone(),
            format!("{label} declares no 400, 422 or 4XX response for invalid requests"),
        );
    }
    let wanted: [(&'static str, &[&str], &str); 3] = [
        ("owasp-rate-limit-responses-429", &["429"], "429"),
        ("owasp-define-error-responses-401", &["401"], "401"),
        (
            "owasp-define-error-responses-500",
            &["500", "5XX"],
            "500 (or 5XX)",
        ),
    ];
    for (rule, codes_wanted, name) in wanted {
        match find(codes_wanted) {
            None => ctx.hit_op(
                rule,
                op,
                responses.file,
                responses.pointer.clone(),
                format!("{label} declares no {name} response"),
            ),
            Some((code, response)) => {
                if !has_content(ctx, &response) {
                    ctx.hit_op(
                        rule,
                        op,
                        response.file,
                        response.pointer.clone(),
                        format!("{code} response of {label} has no `content` (describe its body)"),
                    );
                }
            }
        }
    }
}
