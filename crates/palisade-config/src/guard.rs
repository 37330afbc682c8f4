//! Settings of the request guard stages: `[service.limits]`, `[service.validation]`,
//! `[service.inspection]`.
//!
//! ```toml
//! [service.limits]
//! mode = "enforce"                  # "enforce" (default), "report" or "off"
//! backend = "redis"                 # "local" (default) or "redis"
//! redis_url = "redis://127.0.0.1:6379"
//! on_redis_unavailable = "local"    # "local" (default: fall back, flag the record) or "deny"
//! redis_key_prefix = "palisade:rl"  # to share one Redis between deployments
//! default = { requests = 100, per = "1m", burst = 20 }
//!
//! [[service.limits.override]]       # per caller, or per (caller, route)
//! caller = "spiffe://example.org/ns/prod/sa/orders"
//! route = "/payments"               # optional: the route template (or literal path)
//! requests = 10
//! per = "1s"
//! burst = 5
//!
//! [service.validation]              # needs `openapi`; on by default when there is one
//! mode = "enforce"
//! strict = true                     # reject fields the schema does not declare
//! max_body_bytes = 1048576
//! max_depth = 32
//! max_object_keys = 1000
//! max_array_items = 10000
//!
//! [service.inspection]              # injection and deserialization defence; on by default
//! mode = "enforce"
//! headers = ["x-search-query"]      # header values to inspect besides path, query and JSON body
//! ```

use std::time::Duration;

use palisade_identity::SpiffeId;
use serde::Deserialize;
use toml::Spanned;

/// What a guard stage does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageMode {
    /// Refuse the request (the default).
    #[default]
    Enforce,
    /// Let it through, but put the finding in the audit record.
    Report,
    /// Do not run the stage.
    Off,
}

/// A rate: `requests` per `per`, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSetting {
    /// Sustained requests per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
    /// Back-to-back requests allowed.
    pub burst: u32,
}

/// Where limit state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitBackend {
    /// In this process only.
    Local,
    /// Shared by every replica through Redis.
    Redis {
        /// `redis://host:port/db`.
        url: String,
        /// Refuse (503) instead of falling back to local limits when Redis is down.
        fail_closed: bool,
        /// Prefix of every key, so deployments can share one Redis.
        key_prefix: String,
    },
}

/// A per-caller (optionally per-route) rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverride {
    /// The caller's SPIFFE ID.
    pub caller: SpiffeId,
    /// The route, when the override is per (caller, route).
    pub route: Option<String>,
    /// The rate.
    pub rate: RateSetting,
}

/// `[service.limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Enforce, report or off.
    pub mode: StageMode,
    /// Local or Redis.
    pub backend: LimitBackend,
    /// The rate for callers without an override.
    pub default: Option<RateSetting>,
    /// Per caller and per (caller, route) rates.
    pub overrides: Vec<LimitOverride>,
}

/// `[service.validation]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationSettings {
    /// Enforce, report or off.
    pub mode: StageMode,
    /// Reject JSON fields the schema does not declare.
    pub strict: bool,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
    /// Most keys in one JSON object.
    pub max_object_keys: usize,
    /// Most items in one JSON array.
    pub max_array_items: usize,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            mode: StageMode::Enforce,
            strict: true,
            max_body_bytes: 1024 * 1024,
            max_depth: 32,
            max_object_keys: 1000,
            max_array_items: 10_000,
        }
    }
}

/// `[service.inspection]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InspectionSettings {
    /// Enforce, report or off.
    pub mode: StageMode,
    /// Lower-case names of headers whose values are inspected.
    pub headers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default)]
    mode: StageMode,
    backend: Option<Spanned<String>>,
    redis_url: Option<Spanned<String>>,
    on_redis_unavailable: Option<Spanned<String>>,
    redis_key_prefix: Option<String>,
    default: Option<Spanned<RawRate>>,
    #[serde(default, rename = "override")]
    overrides: Vec<Spanned<RawOverride>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    requests: u32,
    per: String,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverride {
    caller: String,
    route: Option<String>,
    requests: u32,
    per: String,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawValidation {
    #[serde(default)]
    pub(crate) mode: StageMode,
    strict: Option<bool>,
    max_body_bytes: Option<usize>,
    max_depth: Option<usize>,
    max_object_keys: Option<usize>,
    max_array_items: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInspection {
    #[serde(default)]
    mode: StageMode,
    #[serde(default)]
    headers: Vec<String>,
}

/// Reports a problem at a spanned value; implemented by the config checker.
pub(crate) trait Report {
    fn report(&mut self, span: std::ops::Range<usize>, field: String, message: String);
    /// Issues reported so far, so a section can tell whether it added any.
    fn count(&self) -> usize;
}

fn rate(requests: u32, per: &str, burst: Option<u32>) -> Result<RateSetting, String> {
    let per =
        humantime::parse_duration(per).map_err(|e| format!("invalid duration {per:?}: {e}"))?;
    if requests == 0 || per.is_zero() {
        return Err("a rate needs requests >= 1 and a non-zero period".into());
    }
    // Without an explicit burst, allow the whole period's quota at once (governor's default).
    let burst = burst.unwrap_or(requests);
    if burst == 0 {
        return Err("burst must be at least 1".into());
    }
    Ok(RateSetting {
        requests,
        per,
        burst,
    })
}

impl RawLimits {
    pub(crate) fn check(self, field: &str, out: &mut impl Report) -> Option<LimitSettings> {
        let mut ok = true;
        let mut fail = |span: std::ops::Range<usize>, f: &str, message: String| {
            ok = false;
            out.report(span, format!("{field}.{f}"), message);
        };
        let fail_closed = match self
            .on_redis_unavailable
            .as_ref()
            .map(|s| (s.span(), s.get_ref().as_str()))
        {
            None | Some((_, "local")) => false,
            Some((_, "deny")) => true,
            Some((span, other)) => {
                fail(
                    span,
                    "on_redis_unavailable",
                    format!("{other:?} is not \"local\" or \"deny\""),
                );
                false
            }
        };
        let backend = match self
            .backend
            .as_ref()
            .map(|s| (s.span(), s.get_ref().as_str()))
        {
            None | Some((_, "local")) => LimitBackend::Local,
            Some((span, "redis")) => match &self.redis_url {
                Some(url)
                    if url.get_ref().starts_with("redis://")
                        || url.get_ref().starts_with("rediss://") =>
                {
                    LimitBackend::Redis {
                        url: url.get_ref().clone(),
                        fail_closed,
                        key_prefix: self
                            .redis_key_prefix
                            .clone()
                            .unwrap_or_else(|| "palisade:rl".into()),
                    }
                }
                Some(url) => {
                    fail(
                        url.span(),
                        "redis_url",
                        "must start with redis:// or rediss://".into(),
                    );
                    LimitBackend::Local
                }
                None => {
                    fail(
                        span,
                        "redis_url",
                        "backend \"redis\" needs redis_url".into(),
                    );
                    LimitBackend::Local
                }
            },
            Some((span, other)) => {
                fail(
                    span,
                    "backend",
                    format!("{other:?} is not \"local\" or \"redis\""),
                );
                LimitBackend::Local
            }
        };
        let default = self.default.and_then(|d| {
            let r = d.get_ref();
            rate(r.requests, &r.per, r.burst)
                .map_err(|message| fail(d.span(), "default", message))
                .ok()
        });
        let mut overrides = Vec::new();
        for (i, o) in self.overrides.into_iter().enumerate() {
            let span = o.span();
            let raw = o.into_inner();
            let caller = raw
                .caller
                .parse::<SpiffeId>()
                .map_err(|e| {
                    fail(
                        span.clone(),
                        &format!("override[{i}].caller"),
                        e.to_string(),
                    )
                })
                .ok();
            let rate = rate(raw.requests, &raw.per, raw.burst)
                .map_err(|message| fail(span.clone(), &format!("override[{i}]"), message))
                .ok();
            if let (Some(caller), Some(rate)) = (caller, rate) {
                overrides.push(LimitOverride {
                    caller,
                    route: raw.route,
                    rate,
                });
            }
        }
        ok.then_some(LimitSettings {
            mode: self.mode,
            backend,
            default,
            overrides,
        })
    }
}

impl RawValidation {
    pub(crate) fn settings(self) -> ValidationSettings {
        let d = ValidationSettings::default();
        ValidationSettings {
            mode: self.mode,
            strict: self.strict.unwrap_or(d.strict),
            max_body_bytes: self.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_depth: self.max_depth.unwrap_or(d.max_depth),
            max_object_keys: self.max_object_keys.unwrap_or(d.max_object_keys),
            max_array_items: self.max_array_items.unwrap_or(d.max_array_items),
        }
    }
}

impl RawInspection {
    pub(crate) fn settings(self) -> InspectionSettings {
        InspectionSettings {
            mode: self.mode,
            headers: self
                .headers
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }
}
