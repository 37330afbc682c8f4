//! The rules: their catalogue ([`RULES`]) and the checks.
//!
//! Each check reads a [`Model`] of one spec (its operations with their
//! effective parameters, every parameter and schema object reachable from
//! `paths` and `components`, the security schemes, the servers) and emits
//! [`Hit`]s: a rule, a file, a JSON Pointer into it and a message. Where a
//! hit is found through an operation but lies in a shared component, the
//! operation is its `context`, so an `x-palisade-ignore` on the operation
//! can suppress it.

mod inventory;
mod model;
mod params;
mod responses;
mod schemas;
mod security;

pub use model::{Model, Operation};

use super::spec::{FileId, Version, Workspace};

/// How serious a lint finding is, in the linter's vocabulary (Spectral's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Worth a look; never fails a build unless `--fail-on info`.
    Info,
    /// Should be fixed.
    Warn,
    /// Must be fixed (fails the build by default).
    Error,
}

impl Level {
    /// The report severity it maps to: error → high, warn → medium,
    /// info → info (SARIF `error`, `warning`, `note`).
    pub fn severity(self) -> crate::report::Severity {
        use crate::report::Severity;
        match self {
            Level::Error => Severity::High,
            Level::Warn => Severity::Medium,
            Level::Info => Severity::Info,
        }
    }

    /// `error`, `warn` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }

    /// Reads `error`, `warn`/`warning` or `info` (any case).
    pub fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" | "information" | "hint" => Some(Level::Info),
            _ => None,
        }
    }
}

/// One rule of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct RuleDef {
    /// Stable id (`owasp-rate-limit`).
    pub id: &'static str,
    /// The Spectral OWASP ruleset (2023) ids it covers, if any.
    pub spectral: &'static [&'static str],
    /// The OWASP API Security Top 10 (2023) category, if any (`API4:2023`).
    pub owasp: Option<&'static str>,
    /// Default level.
    pub level: Level,
    /// One line: what it finds.
    pub summary: &'static str,
    /// What to do about a finding.
    pub help: &'static str,
}

/// Every rule, in documentation order (`docs/lint-rules.md`).
pub static RULES: &[RuleDef] = &[
    RuleDef {
        id: "owasp-no-numeric-ids",
        spectral: &["owasp:api1:2023-no-numeric-ids"],
        owasp: Some("API1:2023"),
        level: Level::Error,
        summary: "An id parameter (`id`, `*_id`, `*Id`, `*-id`) is a number, so ids can be guessed",
        help: "Use random identifiers that cannot be enumerated: `type: string, format: uuid` (or another random string).",
    },
    RuleDef {
        id: "owasp-no-http-basic",
        spectral: &["owasp:api2:2023-no-http-basic"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "A security scheme uses HTTP Basic authentication",
        help: "Basic sends a reusable password with every request. Use OAuth 2.0 / OpenID Connect tokens or mutual TLS.",
    },
    RuleDef {
        id: "owasp-no-api-keys-in-url",
        spectral: &["owasp:api2:2023-no-api-keys-in-url"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "An API key security scheme is sent in the URL (query or path)",
        help: "URLs end up in logs, proxies and browser history. Send API keys in a header (`in: header`).",
    },
    RuleDef {
        id: "owasp-no-credentials-in-url",
        spectral: &["owasp:api2:2023-no-credentials-in-url"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "A query or path parameter carries a credential (token, password, secret, API key)",
        help: "Move the credential to a header (Authorization) or the request body; URLs are logged.",
    },
    RuleDef {
        id: "owasp-auth-insecure-schemes",
        spectral: &["owasp:api2:2023-auth-insecure-schemes"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "An HTTP security scheme is outdated or insecure (Negotiate, NTLM, OAuth 1)",
        help: "Use `bearer` tokens (OAuth 2.0 / OpenID Connect) or mutual TLS.",
    },
    RuleDef {
        id: "owasp-jwt-best-practices",
        spectral: &["owasp:api2:2023-jwt-best-practices"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "A JWT-based security scheme (OAuth 2, OpenID Connect, bearerFormat JWT) does not declare RFC 8725 conformance",
        help: "Follow the JWT Best Current Practices (RFC 8725: explicit algorithms, no `none`, validate `aud`/`iss`/`exp`) and say so in the scheme's `description`.",
    },
    RuleDef {
        id: "owasp-short-lived-access-tokens",
        spectral: &["owasp:api2:2023-short-lived-access-tokens"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "An OAuth 2 authorization-code or password flow has no `refreshUrl`, so access tokens are likely long-lived",
        help: "Issue short-lived access tokens with refresh tokens and declare the flow's `refreshUrl`.",
    },
    RuleDef {
        id: "owasp-write-restricted",
        spectral: &["owasp:api2:2023-write-restricted"],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "A write operation (POST, PUT, PATCH, DELETE) is not protected by a security scheme, or allows anonymous callers (`{}`)",
        help: "Add a non-empty `security` requirement to the operation or at the top level.",
    },
    RuleDef {
        id: "owasp-read-restricted",
        spectral: &["owasp:api2:2023-read-restricted"],
        owasp: Some("API2:2023"),
        level: Level::Warn,
        summary: "A read operation (GET, HEAD) is not protected by a security scheme, or allows anonymous callers (`{}`)",
        help: "Add a non-empty `security` requirement to the operation or at the top level.",
    },
    RuleDef {
        id: "owasp-no-additional-properties",
        spectral: &["owasp:api3:2023-no-additionalProperties"],
        owasp: Some("API3:2023"),
        level: Level::Warn,
        summary: "An object schema allows any additional property (`additionalProperties: true` or `{}`)",
        help: "Set `additionalProperties: false`, or give it a schema and bound the object with `maxProperties`: open objects invite mass assignment.",
    },
    RuleDef {
        id: "owasp-constrained-additional-properties",
        spectral: &["owasp:api3:2023-constrained-additionalProperties"],
        owasp: Some("API3:2023"),
        level: Level::Warn,
        summary: "An object schema allows additional properties of a schema but sets no `maxProperties`",
        help: "Add `maxProperties` to bound how many extra properties a client may send.",
    },
    RuleDef {
        id: "owasp-no-unevaluated-properties",
        spectral: &["owasp:api3:2023-no-unevaluatedProperties"],
        owasp: Some("API3:2023"),
        level: Level::Warn,
        summary: "An object schema allows any unevaluated property (`unevaluatedProperties: true` or `{}`, OpenAPI 3.1)",
        help: "Set `unevaluatedProperties: false`, or give it a schema and bound the object with `maxProperties`.",
    },
    RuleDef {
        id: "owasp-constrained-unevaluated-properties",
        spectral: &["owasp:api3:2023-constrained-unevaluatedProperties"],
        owasp: Some("API3:2023"),
        level: Level::Warn,
        summary: "An object schema allows unevaluated properties of a schema but sets no `maxProperties` (OpenAPI 3.1)",
        help: "Add `maxProperties`.",
    },
    RuleDef {
        id: "owasp-rate-limit",
        spectral: &["owasp:api4:2023-rate-limit"],
        owasp: Some("API4:2023"),
        level: Level::Error,
        summary: "A 2XX or 4XX response declares no rate-limit headers",
        help: "Declare `RateLimit` (or `RateLimit-Limit` and `RateLimit-Reset`, IETF draft), `X-RateLimit-Limit` or `X-Rate-Limit-Limit` headers.",
    },
    RuleDef {
        id: "owasp-rate-limit-retry-after",
        spectral: &["owasp:api4:2023-rate-limit-retry-after"],
        owasp: Some("API4:2023"),
        level: Level::Error,
        summary: "A 429 response declares no `Retry-After` header",
        help: "Declare `Retry-After` on 429 responses so well-behaved clients back off instead of retrying at once.",
    },
    RuleDef {
        id: "owasp-rate-limit-responses-429",
        spectral: &["owasp:api4:2023-rate-limit-responses-429"],
        owasp: Some("API4:2023"),
        level: Level::Warn,
        summary: "An operation declares no 429 (Too Many Requests) response with content",
        help: "Document the 429 response and its body (e.g. an RFC 9457 problem).",
    },
    RuleDef {
        id: "owasp-array-limit",
        spectral: &["owasp:api4:2023-array-limit"],
        owasp: Some("API4:2023"),
        level: Level::Error,
        summary: "An array schema has no `maxItems`",
        help: "Bound arrays with `maxItems` (and constrain the `items` schema) against resource exhaustion.",
    },
    RuleDef {
        id: "owasp-string-limit",
        spectral: &["owasp:api4:2023-string-limit"],
        owasp: Some("API4:2023"),
        level: Level::Error,
        summary: "A string schema has no `maxLength`, `enum` or `const`",
        help: "Bound strings with `maxLength` (or list the allowed values with `enum`/`const`).",
    },
    RuleDef {
        id: "owasp-string-restricted",
        spectral: &["owasp:api4:2023-string-restricted"],
        owasp: Some("API4:2023"),
        level: Level::Warn,
        summary: "A string schema has no `format`, `pattern`, `enum` or `const`",
        help: "Say what the string may contain: a `format`, a `pattern`, or the allowed values.",
    },
    RuleDef {
        id: "owasp-integer-limit",
        spectral: &[
            "owasp:api4:2023-integer-limit",
            "owasp:api4:2023-integer-limit-legacy",
        ],
        owasp: Some("API4:2023"),
        level: Level::Error,
        summary: "An integer schema has no lower or no upper bound",
        help: "Set `minimum` and `maximum` (3.1: or the numeric `exclusiveMinimum`/`exclusiveMaximum`).",
    },
    RuleDef {
        id: "owasp-integer-format",
        spectral: &["owasp:api4:2023-integer-format"],
        owasp: Some("API4:2023"),
        level: Level::Error,
        summary: "An integer schema has no `format` (int32 or int64)",
        help: "Say which integer size is expected with `format: int32` or `format: int64`.",
    },
    RuleDef {
        id: "owasp-admin-security-unique",
        spectral: &["owasp:api5:2023-admin-security-unique"],
        owasp: Some("API5:2023"),
        level: Level::Error,
        summary: "An admin endpoint (`/admin` in its path) accepts the same security requirement as a non-admin endpoint",
        help: "Protect administrative functions with their own scheme or scopes, so an ordinary caller's credential cannot reach them.",
    },
    RuleDef {
        id: "owasp-concerning-url-parameter",
        spectral: &["owasp:api7:2023-concerning-url-parameter"],
        owasp: Some("API7:2023"),
        level: Level::Info,
        summary: "A parameter or request-body field takes a URL (`url`, `callback`, `redirect`, `*_url`, `format: uri`): review it for server-side request forgery",
        help: "Allow-list the hosts and schemes the server will fetch or redirect to; never fetch an arbitrary caller-supplied URL.",
    },
    RuleDef {
        id: "owasp-define-cors-origin",
        spectral: &["owasp:api8:2023-define-cors-origin"],
        owasp: Some("API8:2023"),
        level: Level::Error,
        summary: "A response declares headers but not `Access-Control-Allow-Origin`",
        help: "Declare `Access-Control-Allow-Origin` so the CORS policy is explicit (`null` disables browser access).",
    },
    RuleDef {
        id: "owasp-no-server-http",
        spectral: &[
            "owasp:api8:2023-no-server-http",
            "owasp:api8:2023-no-scheme-http",
        ],
        owasp: Some("API8:2023"),
        level: Level::Error,
        summary: "A server URL uses plain `http://` (or `ws://`)",
        help: "Serve the API over TLS only: `https://` or `wss://`.",
    },
    RuleDef {
        id: "owasp-define-error-validation",
        spectral: &["owasp:api8:2023-define-error-validation"],
        owasp: Some("API8:2023"),
        level: Level::Warn,
        summary: "An operation declares no 400, 422 or 4XX response for invalid requests",
        help: "Document how invalid input is rejected (400 or 422 with a problem body).",
    },
    RuleDef {
        id: "owasp-define-error-responses-401",
        spectral: &["owasp:api8:2023-define-error-responses-401"],
        owasp: Some("API8:2023"),
        level: Level::Warn,
        summary: "An operation declares no 401 response with content",
        help: "Document the 401 response and its body so contract tests can check nothing leaks on authentication failures.",
    },
    RuleDef {
        id: "owasp-define-error-responses-500",
        spectral: &["owasp:api8:2023-define-error-responses-500"],
        owasp: Some("API8:2023"),
        level: Level::Warn,
        summary: "An operation declares no 500 (or 5XX) response with content",
        help: "Document the 500 response and its body so contract tests can check no stack trace leaks.",
    },
    RuleDef {
        id: "owasp-inventory-access",
        spectral: &["owasp:api9:2023-inventory-access"],
        owasp: Some("API9:2023"),
        level: Level::Error,
        summary: "A server does not declare its audience with `x-internal: true|false`",
        help: "Add `x-internal: true` (internal) or `x-internal: false` (public) to every server.",
    },
    RuleDef {
        id: "owasp-inventory-environment",
        spectral: &["owasp:api9:2023-inventory-environment"],
        owasp: Some("API9:2023"),
        level: Level::Error,
        summary: "A server's description does not say which environment it is (production, staging, test, ...)",
        help: "Name the environment in the server's `description` (local, sandbox, test, staging, production, ...).",
    },
    RuleDef {
        id: "palisade-operation-owner",
        spectral: &[],
        owasp: Some("API9:2023"),
        level: Level::Warn,
        summary: "An operation has no declared owner (`x-owner` on the operation, its path or the spec, or `info.contact`)",
        help: "Say who answers for the endpoint: `x-owner: team-name` (Palisade's inventory and alerts use it).",
    },
    RuleDef {
        id: "palisade-deprecated-operation",
        spectral: &[],
        owasp: Some("API9:2023"),
        level: Level::Warn,
        summary: "A deprecated operation is still in the spec: a zombie-API candidate",
        help: "Remove it once its callers have moved (Palisade's audit log shows who still calls it); set `x-sunset: YYYY-MM-DD` meanwhile.",
    },
    RuleDef {
        id: "palisade-sensitive-data-in-url",
        spectral: &[],
        owasp: Some("API3:2023"),
        level: Level::Error,
        summary: "A query or path parameter carries personal or sensitive data (e-mail, phone, SSN, card number, birth date, ... by name or format)",
        help: "URLs are logged by every proxy on the way: send sensitive values in the request body (POST a search) instead.",
    },
    RuleDef {
        id: "palisade-request-body-not-strict",
        spectral: &[],
        owasp: Some("API3:2023"),
        level: Level::Warn,
        summary: "A request body object schema accepts undeclared properties (no `additionalProperties: false` / `unevaluatedProperties: false`)",
        help: "Close request objects so unknown fields are rejected (mass assignment): `additionalProperties: false` (3.1 with composition: `unevaluatedProperties: false`).",
    },
    RuleDef {
        id: "palisade-unresolved-ref",
        spectral: &[],
        owasp: None,
        level: Level::Error,
        summary: "A `$ref` points at nothing (missing file or pointer, or a loop)",
        help: "Fix the reference: what it should name is not checked by any rule, nor by validators reading the spec.",
    },
    RuleDef {
        id: "palisade-undefined-security-scheme",
        spectral: &[],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "A security requirement names a scheme that `components.securitySchemes` does not define",
        help: "Define the scheme or fix its name: tools may treat an unknown scheme as no protection at all.",
    },
    RuleDef {
        id: "palisade-oauth2-deprecated-flow",
        spectral: &[],
        owasp: Some("API2:2023"),
        level: Level::Error,
        summary: "An OAuth 2 scheme offers the implicit or the resource-owner password flow (deprecated by the OAuth 2.0 Security BCP, RFC 9700)",
        help: "Use the authorization-code flow with PKCE (users) or client credentials (services).",
    },
    RuleDef {
        id: "palisade-ignore-invalid",
        spectral: &[],
        owasp: None,
        level: Level::Warn,
        summary: "An `x-palisade-ignore` entry has no reason, names an unknown rule or is malformed (it suppresses nothing)",
        help: "Write entries as `rule-id: reason` (the reason is required and shows why the finding is accepted).",
    },
];

/// The rule with this id or Spectral id.
pub fn find(id: &str) -> Option<&'static RuleDef> {
    RULES
        .iter()
        .find(|r| r.id == id || r.spectral.contains(&id))
}

/// A place a hit was reached through (an operation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Context {
    /// File of the operation.
    pub file: FileId,
    /// Pointer to the operation.
    pub pointer: String,
}

/// One rule firing, before suppression and rendering.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The rule.
    pub rule: &'static str,
    /// The file it is in.
    pub file: FileId,
    /// JSON Pointer to what it is about.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// `GET /path`, when found through an operation.
    pub operation: Option<String>,
    /// The operation it was found through, for `x-palisade-ignore`.
    pub context: Option<Context>,
}

/// What the checks of one spec share.
pub struct Ctx<'a> {
    /// The loaded files.
    pub ws: &'a Workspace,
    /// The spec's file.
    pub spec: FileId,
    /// Its version.
    pub version: Version,
    /// What is in it.
    pub model: Model<'a>,
    /// Today's date (`YYYY-MM-DD`) for `x-sunset` checks.
    pub today: String,
    hits: Vec<Hit>,
}

impl<'a> Ctx<'a> {
    /// A context for the spec in `spec`.
    pub fn new(ws: &'a Workspace, spec: FileId, version: Version, today: String) -> Self {
        Ctx {
            ws,
            spec,
            version,
            model: Model::build(ws, spec),
            today,
            hits: Vec::new(),
        }
    }

    /// Records a hit.
    pub fn hit(&mut self, rule: &'static str, file: FileId, pointer: String, message: String) {
        debug_assert!(find(rule).is_some(), "unknown rule {rule}");
        self.hits.push(Hit {
            rule,
            file,
            pointer,
            message,
            operation: None,
            context: None,
        });
    }

    /// Records a hit found through an operation.
    pub fn hit_op(
        &mut self,
        rule: &'static str,
        op: &Operation<'_>,
        file: FileId,
        pointer: String,
        message: String,
    ) {
        debug_assert!(find(rule).is_some(), "unknown rule {rule}");
        self.hits.push(Hit {
            rule,
            file,
            pointer,
            message,
            operation: Some(op.label()),
            context: Some(Context {
                file: op.at.file,
                pointer: op.at.pointer.clone(),
            }),
        });
    }

    /// Runs every check; the hits, unsorted and not yet deduplicated.
    pub fn run(mut self) -> Vec<Hit> {
        security::check(&mut self);
        params::check(&mut self);
        schemas::check(&mut self);
        responses::check(&mut self);
        inventory::check(&mut self);
        self.hits
    }
}

/// Checks the `$ref`s of every loaded file; hits for those that lead
/// nowhere, and the remote ones (not followed) as a second list.
pub fn check_refs(ws: &Workspace) -> (Vec<Hit>, Vec<(FileId, String)>) {
    let mut hits = Vec::new();
    let mut remote = Vec::new();
    for (file, source) in ws.files().iter().enumerate() {
        super::spec::for_each_ref(&source.root, &mut |reference: &str, at: &str| match ws
            .resolve_ref(file, reference)
        {
            Ok(_) => {}
            Err(super::spec::RefError::Remote(r)) => remote.push((file, r)),
            Err(super::spec::RefError::Broken(why)) => hits.push(Hit {
                rule: "palisade-unresolved-ref",
                file,
                pointer: super::pointer::push(at, "$ref"),
                message: format!("`$ref: {reference}` resolves to nothing: {why}"),
                operation: None,
                context: None,
            }),
        });
    }
    (hits, remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_spectral_ids_map_once() {
        let mut ids = std::collections::HashSet::new();
        for r in RULES {
            assert!(ids.insert(r.id), "duplicate id {}", r.id);
            for s in r.spectral {
                assert!(ids.insert(s), "spectral id {s} mapped twice");
                assert!(s.starts_with("owasp:api") && s.contains(":2023-"), "{s}");
            }
            assert!(
                r.id.starts_with("owasp-") != r.spectral.is_empty(),
                "{}: owasp-* ids are exactly the Spectral mirrors",
                r.id
            );
        }
    }

    #[test]
    fn levels_parse_and_map_to_severities() {
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("nope"), None);
        assert!(Level::Error.severity() > Level::Warn.severity());
        assert_eq!(Level::Info.severity().sarif_level(), "note");
    }
}
