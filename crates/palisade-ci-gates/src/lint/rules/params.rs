//! Parameters (and request-body fields): guessable ids (API1), credentials
//! and personal data in URLs (API2, API3), URLs the server may fetch (API7).

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::model::{body_schemas, schema_tree, Param};
use super::Ctx;
use crate::lint::node::Node;
use crate::lint::pointer;

pub(super) fn check(ctx: &mut Ctx<'_>) {
    let params = ctx.model.params.clone();
    for p in &params {
        numeric_id(ctx, p);
        let credential = credential_in_url(ctx, p);
        if !credential {
            sensitive_in_url(ctx, p);
        }
        if p.under_paths {
            concerning_url_param(ctx, p);
        }
    }
    concerning_url_fields(ctx);
}

/// The resolved schema of a parameter (`schema`, or the schema of its one
/// `content` entry).
fn param_schema<'a>(ctx: &Ctx<'a>, p: &Param<'a>) -> Option<crate::lint::spec::Located<'a>> {
    let schema = p.at.get("schema").or_else(|| {
        p.at.get("content")?
            .entries()
            .into_iter()
            .next()
            .and_then(|(_, m)| m.get("schema"))
    })?;
    ctx.ws.follow(schema)
}

/// `owasp-no-numeric-ids`.
fn numeric_id(ctx: &mut Ctx<'_>, p: &Param<'_>) {
    if !p.under_paths {
        return;
    }
    let name = p.name();
    let is_id = name.eq_ignore_ascii_case("id")
        || ["_id", "-id", "Id", "ID", "_ID", "-ID"]
            .iter()
            .any(|s| name.len() > s.len() && name.ends_with(s));
    if !is_id {
        return;
    }
    let Some(schema) = param_schema(ctx, p) else {
        return;
    };
    let numeric = ["integer", "number"]
        .into_iter()
        .find(|t| schema.node.has_type(t));
    if let Some(kind) = numeric {
        let at =
            p.at.get("schema")
                .map(|s| s.pointer)
                .unwrap_or_else(|| p.at.pointer.clone());
        ctx.hit(
            "owasp-no-numeric-ids",
            p.at.file,
            at,
            format!(
                "{} parameter `{name}` is {}: sequential ids can be guessed; use a UUID or another random string",
                p.location(),
                if kind == "integer" { "an integer" } else { "a number" }
            ),
        );
    }
}

static CREDENTIAL_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(client[-_]?secret|token|password|passwd|secret|api[-_]?key|session[-_]?id|credential|private[-_]?key)",
    )
    .ok()
});

/// Pagination and sync cursors are called tokens but are not credentials.
static CURSOR_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^(page|next|prev|previous|continuation|sync|cursor|resume)[-_]?token$").ok()
});

/// Whether a parameter name says it carries a credential.
pub(super) fn is_credential_name(name: &str) -> bool {
    let credential = CREDENTIAL_NAME.as_ref().is_some_and(|r| r.is_match(name));
    let cursor = CURSOR_NAME.as_ref().is_some_and(|r| r.is_match(name));
    credential && !cursor
}

/// `owasp-no-credentials-in-url`; whether it fired.
fn credential_in_url(ctx: &mut Ctx<'_>, p: &Param<'_>) -> bool {
    let location = p.location();
    if !matches!(location, "query" | "path") || !is_credential_name(p.name()) {
        return false;
    }
    ctx.hit(
        "owasp-no-credentials-in-url",
        p.at.file,
        pointer::push(&p.at.pointer, "name"),
        format!(
            "{location} parameter `{}` carries a credential in the URL: send it in a header",
            p.name()
        ),
    );
    true
}

/// Sensitive data, as the words of a field name spell it (the words of
/// `customer_email` or `customerEmail` are `customer`, `email`; a term
/// matches one word or several consecutive ones, so `e_mail` and
/// `dateOfBirth` match too, while `classname` does not match `ssn`).
const SENSITIVE_TERMS: [(&str, &str); 36] = [
    ("email", "an e-mail address"),
    ("emails", "e-mail addresses"),
    ("emailaddress", "an e-mail address"),
    ("phone", "a phone number"),
    ("phonenumber", "a phone number"),
    ("msisdn", "a phone number"),
    ("mobilenumber", "a phone number"),
    ("ssn", "a social security number"),
    ("socialsecurity", "a social security number"),
    ("socialsecuritynumber", "a social security number"),
    ("taxid", "a tax identifier"),
    ("taxnumber", "a tax identifier"),
    ("nationalid", "a national identity number"),
    ("passport", "a passport number"),
    ("passportnumber", "a passport number"),
    ("driverslicense", "a driving licence number"),
    ("driverlicense", "a driving licence number"),
    ("drivinglicence", "a driving licence number"),
    ("drivinglicense", "a driving licence number"),
    ("iban", "a bank account number"),
    ("accountnumber", "an account number"),
    ("bankaccount", "a bank account number"),
    ("routingnumber", "a bank routing number"),
    ("cardnumber", "a payment card number"),
    ("creditcard", "a payment card number"),
    ("ccnumber", "a payment card number"),
    ("pan", "a payment card number"),
    ("cvv", "a card security code"),
    ("cvc", "a card security code"),
    ("pin", "a PIN"),
    ("dob", "a date of birth"),
    ("dateofbirth", "a date of birth"),
    ("birthdate", "a date of birth"),
    ("birthday", "a date of birth"),
    ("salary", "salary data"),
    ("diagnosis", "health data"),
];

/// Schema formats that are sensitive.
const SENSITIVE_FORMATS: [(&str, &str); 3] = [
    ("email", "an e-mail address"),
    ("idn-email", "an e-mail address"),
    ("password", "a password"),
];

/// The lower-case words of a name: split at non-alphanumerics and at
/// camelCase humps (`userEmailID` → `user`, `email`, `id`).
pub(super) fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let hump = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if hump && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether one word, or several consecutive words joined, spell `term`.
fn spells(words: &[String], term: &str) -> bool {
    (0..words.len()).any(|i| {
        let mut joined = String::new();
        for w in &words[i..] {
            joined.push_str(w);
            if joined == term {
                return true;
            }
            if joined.len() >= term.len() || !term.starts_with(joined.as_str()) {
                return false;
            }
        }
        false
    })
}

/// What sensitive data a field with this name and schema holds, if any.
pub(super) fn sensitive_kind(name: &str, schema: Option<&Node>) -> Option<&'static str> {
    if let Some(format) = schema.and_then(|s| s.get_str("format")) {
        if let Some((_, what)) = SENSITIVE_FORMATS.iter().find(|(f, _)| *f == format) {
            return Some(what);
        }
    }
    if schema.is_some_and(|s| s.has_type("boolean")) {
        return None; // `email_verified=true` says nothing about anyone
    }
    let words = words(name);
    SENSITIVE_TERMS
        .iter()
        .find(|(term, _)| spells(&words, term))
        .map(|(_, what)| *what)
}

/// `palisade-sensitive-data-in-url`.
fn sensitive_in_url(ctx: &mut Ctx<'_>, p: &Param<'_>) {
    let location = p.location();
    if !matches!(location, "query" | "path") {
        return;
    }
    let schema = param_schema(ctx, p);
    if let Some(what) = sensitive_kind(p.name(), schema.as_ref().map(|s| s.node)) {
        ctx.hit(
            "palisade-sensitive-data-in-url",
            p.at.file,
            pointer::push(&p.at.pointer, "name"),
            format!(
                "{location} parameter `{}` puts {what} in the URL, where proxies and logs keep it",
                p.name()
            ),
        );
    }
}

/// Whether a name or a schema says the value is a URL the server may
/// fetch or redirect to.
pub(super) fn is_url_field(name: &str, schema: Option<&Node>) -> bool {
    if let Some(format) = schema.and_then(|s| s.get_str("format")) {
        if matches!(
            format,
            "uri" | "uri-reference" | "iri" | "iri-reference" | "url"
        ) {
            return true;
        }
    }
    let lower = name.to_ascii_lowercase();
    let norm: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    matches!(
        norm.as_str(),
        "url"
            | "uri"
            | "href"
            | "callback"
            | "redirect"
            | "webhook"
            | "returnto"
            | "dest"
            | "destination"
            | "target"
            | "continue"
    ) || ["_url", "-url", "_uri", "-uri"]
        .iter()
        .any(|s| lower.ends_with(s))
        || name.ends_with("Url")
        || name.ends_with("Uri")
        || name.ends_with("URL")
        || name.ends_with("URI")
        || ["callback", "redirect", "webhook"]
            .iter()
            .any(|p| norm.starts_with(p))
}

/// `owasp-concerning-url-parameter` on a parameter.
fn concerning_url_param(ctx: &mut Ctx<'_>, p: &Param<'_>) {
    let schema = param_schema(ctx, p);
    if is_url_field(p.name(), schema.as_ref().map(|s| s.node)) {
        ctx.hit(
            "owasp-concerning-url-parameter",
            p.at.file,
            pointer::push(&p.at.pointer, "name"),
            format!(
                "{} parameter `{}` takes a URL: make sure the server cannot be made to fetch or redirect to arbitrary hosts (SSRF)",
                p.location(),
                p.name()
            ),
        );
    }
}

/// `owasp-concerning-url-parameter` on request-body fields.
fn concerning_url_fields(ctx: &mut Ctx<'_>) {
    let ops = ctx.model.operations.clone();
    let mut seen = HashSet::new();
    for op in &ops {
        let Some(body) = op.at.get("requestBody") else {
            continue;
        };
        for (_, schema) in body_schemas(ctx.ws, &body) {
            for (name, at) in schema_tree(ctx.ws, schema) {
                let Some(name) = name else {
                    continue;
                };
                let target = ctx.ws.follow(at.clone()).unwrap_or_else(|| at.clone());
                if is_url_field(name, Some(target.node)) && seen.insert(at.key()) {
                    ctx.hit_op(
                        "owasp-concerning-url-parameter",
                        op,
                        at.file,
                        at.pointer.clone(),
                        format!(
                            "request body field `{name}` of {} takes a URL: make sure the server cannot be made to fetch arbitrary hosts (SSRF)",
                            op.label()
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("userEmailID"), ["user", "email", "id"]);
        assert_eq!(words("customer_email"), ["customer", "email"]);
        assert_eq!(words("HTTPServer"), ["http", "server"]);
        assert_eq!(words("dateOfBirth"), ["date", "of", "birth"]);
    }

    #[test]
    fn sensitive_names_match_whole_words() {
        assert!(sensitive_kind("customerEmail", None).is_some());
        assert!(sensitive_kind("e_mail", None).is_some());
        assert!(sensitive_kind("date_of_birth", None).is_some());
        assert!(sensitive_kind("SSN", None).is_some());
        assert!(sensitive_kind("classname", None).is_none());
        assert!(sensitive_kind("spin", None).is_none());
        assert!(sensitive_kind("company", None).is_none());
    }

    #[test]
    fn pagination_tokens_are_not_credentials() {
        assert!(is_credential_name("access_token"));
        assert!(is_credential_name("api_key"));
        assert!(is_credential_name("apiKey"));
        assert!(!is_credential_name("page_token"));
        assert!(!is_credential_name("nextToken"));
        assert!(!is_credential_name("limit"));
    }

    #[test]
    fn url_fields() {
        assert!(is_url_field("callback", None));
        assert!(is_url_field("image_url", None));
        assert!(is_url_field("redirectUri", None));
        assert!(is_url_field("url", None));
        assert!(!is_url_field("curl_options", None));
        assert!(!is_url_field("name", None));
    }
}
