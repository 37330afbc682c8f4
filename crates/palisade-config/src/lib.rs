//! `palisade.toml`: the typed configuration of a Palisade deployment.
//!
//! The file is parsed into serde structs with `deny_unknown_fields`, then validated as a
//! whole into a [`Config`]. Every problem is reported (not only the first) with the file,
//! line and field at fault. Relative paths are resolved against the file's directory.
//!
//! ```toml
//! trust_domain = "palisade.demo"
//! state_dir = "state"          # CA and SVIDs; default "state"
//! policy_dir = "policies"      # *.cedar files; default "policies"
//!
//! [audit]
//! sink = "sqlite"              # "sqlite" (default) or "jsonl"
//! path = "audit.db"            # jsonl: a file, or "-" for stdout
//!
//! [[service]]
//! name = "billing"
//! spiffe_id = "spiffe://palisade.demo/ns/demo/sa/billing"
//! inbound = "127.0.0.1:7002"   # mTLS listener other sidecars call
//! upstream = "127.0.0.1:8002"  # the local plaintext app
//! outbound = "127.0.0.1:9002"  # plain HTTP listener the local app calls out through
//! openapi = "specs/billing.yaml"
//! owner = "team-billing"
//! ```

mod guard;

use guard::Report as _;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use palisade_identity::{validate_trust_domain, SpiffeId};
use serde::Deserialize;
use toml::Spanned;

pub use guard::{
    InspectionSettings, LimitBackend, LimitOverride, LimitSettings, RateSetting, StageMode,
    ValidationSettings,
};

/// Default capacity of the audit queue, in records.
pub const DEFAULT_AUDIT_QUEUE: usize = 8192;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// The SPIFFE trust domain of every configured service.
    pub trust_domain: String,
    /// CA and SVID storage.
    pub state_dir: PathBuf,
    /// Directory of `*.cedar` policy files.
    pub policy_dir: PathBuf,
    /// Where audit records go.
    pub audit: AuditSettings,
    /// The services, in file order.
    pub services: Vec<ServiceConfig>,
    /// The control plane, when sidecars get and renew their SVIDs from it.
    pub control: Option<ControlSettings>,
}

/// `[control]`: where the control plane listens and how sidecars reach it.
///
/// ```toml
/// [control]
/// listen = "127.0.0.1:7000"          # for `palisade control serve`
/// url = "https://127.0.0.1:7000"     # for sidecars; default: https://<listen>
/// svid_ttl = "1h"                    # lifetime of the SVIDs it issues
/// revocation_poll = "5s"             # how often sidecars fetch the revocation list
/// bundle = "state/ca/ca.pem"         # trust bundle to verify the control plane; default <state_dir>/ca/ca.pem
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// Listen address of `palisade control serve`.
    pub listen: Option<SocketAddr>,
    /// The URL sidecars use.
    pub url: String,
    /// Lifetime of issued SVIDs (renewed at half of it).
    pub svid_ttl: std::time::Duration,
    /// Revocation-list polling interval; bounds how long a revoked peer stays trusted.
    pub revocation_poll: std::time::Duration,
    /// The trust bundle (PEM) that verifies the control plane.
    pub bundle: PathBuf,
}

/// Where audit records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// An SQLite database (WAL mode; several sidecars may share one file).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// JSON lines, one record per line.
    JsonLines {
        /// The file to append to; `None` is standard output.
        path: Option<PathBuf>,
    },
}

/// Audit settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The sink.
    pub sink: AuditSink,
    /// How many records may wait for the writer before requests feel backpressure.
    pub queue_capacity: usize,
}

/// One service behind a sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Short name; other services' apps address it by this name in the Host header.
    pub name: String,
    /// The workload identity its SVID carries.
    pub spiffe_id: SpiffeId,
    /// The sidecar's mTLS listener.
    pub inbound: SocketAddr,
    /// The local plaintext application the sidecar forwards to.
    pub upstream: SocketAddr,
    /// The plain-HTTP listener the local app sends outgoing calls to, if any.
    pub outbound: Option<SocketAddr>,
    /// The service's OpenAPI spec, if it has one.
    pub openapi: Option<PathBuf>,
    /// The owning team, exposed to policies as `principal.owner`.
    pub owner: Option<String>,
    /// Directory with `svid.pem`, `svid.key` and `bundle.pem`.
    pub svid_dir: PathBuf,
    /// Rate limits per caller identity (`[service.limits]`), if any.
    pub limits: Option<LimitSettings>,
    /// OpenAPI request validation (runs only when `openapi` is set).
    pub validation: ValidationSettings,
    /// Injection and deserialization defence.
    pub inspection: InspectionSettings,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            issues: vec![Issue {
                line: None,
                field: String::new(),
                message: format!("cannot read: {e}"),
            }],
        })?;
        Config::parse(&text, path)
    }

    /// Validates configuration text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            issues: vec![Issue {
                line: e.span().map(|s| line_of(text, s.start)),
                field: String::new(),
                message: e.message().to_owned(),
            }],
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut check = Checker {
            text,
            issues: Vec::new(),
        };
        let config = check.config(raw, &base, path);
        match config {
            Some(config) if check.issues.is_empty() => Ok(config),
            _ => Err(ConfigError {
                file: path.to_path_buf(),
                issues: check.issues,
            }),
        }
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The service whose identity is `id`.
    pub fn service_by_id(&self, id: &SpiffeId) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| &s.spiffe_id == id)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The problems, in file order.
    pub issues: Vec<Issue>,
}

/// One problem: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field path, e.g. `service[1].spiffe_id`; empty for syntax errors.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = issue.line {
                write!(f, ":{line}")?;
            }
            if !issue.field.is_empty() {
                write!(f, ": {}", issue.field)?;
            }
            write!(f, ": {}", issue.message.trim_end())?;
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    trust_domain: Spanned<String>,
    state_dir: Option<PathBuf>,
    policy_dir: Option<PathBuf>,
    audit: Option<RawAudit>,
    #[serde(default, rename = "service")]
    services: Vec<RawService>,
    control: Option<Spanned<RawControl>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    listen: Option<SocketAddr>,
    url: Option<String>,
    svid_ttl: Option<String>,
    revocation_poll: Option<String>,
    bundle: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    sink: Option<Spanned<String>>,
    path: Option<PathBuf>,
    queue_capacity: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    spiffe_id: Spanned<String>,
    inbound: Spanned<SocketAddr>,
    upstream: SocketAddr,
    outbound: Option<Spanned<SocketAddr>>,
    openapi: Option<Spanned<PathBuf>>,
    owner: Option<String>,
    svid_dir: Option<PathBuf>,
    limits: Option<guard::RawLimits>,
    validation: Option<Spanned<guard::RawValidation>>,
    inspection: Option<guard::RawInspection>,
}

struct Checker<'a> {
    text: &'a str,
    issues: Vec<Issue>,
}

impl guard::Report for Checker<'_> {
    fn report(&mut self, span: std::ops::Range<usize>, field: String, message: String) {
        self.issues.push(Issue {
            line: Some(line_of(self.text, span.start)),
            field,
            message,
        });
    }
}

impl Checker<'_> {
    fn fail<T>(&mut self, at: &Spanned<T>, field: String, message: String) {
        self.issues.push(Issue {
            line: Some(line_of(self.text, at.span().start)),
            field,
            message,
        });
    }

    fn config(&mut self, raw: RawConfig, base: &Path, file: &Path) -> Option<Config> {
        if let Err(e) = validate_trust_domain(raw.trust_domain.get_ref()) {
            self.fail(&raw.trust_domain, "trust_domain".into(), e.to_string());
        }
        let trust_domain = raw.trust_domain.into_inner();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let state_dir = resolve(raw.state_dir.unwrap_or_else(|| "state".into()));
        let policy_dir = resolve(raw.policy_dir.unwrap_or_else(|| "policies".into()));
        let audit = self.audit(raw.audit, &resolve, &state_dir);
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut listeners: HashMap<SocketAddr, String> = HashMap::new();
        let mut services = Vec::new();
        for (i, s) in raw.services.into_iter().enumerate() {
            let field = |f: &str| format!("service[{i}].{f}");
            let name = s.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                self.fail(&s.name, field("name"), format!("{name:?} is not a valid service name: use lower-case letters, digits and '-'"));
            }
            if let Some(first) = names.insert(name.clone(), i) {
                self.fail(
                    &s.name,
                    field("name"),
                    format!("service name {name:?} is already used by service[{first}]"),
                );
            }
            let spiffe_id = match s.spiffe_id.get_ref().parse::<SpiffeId>() {
                Ok(id) if id.trust_domain() != trust_domain => {
                    self.fail(
                        &s.spiffe_id,
                        field("spiffe_id"),
                        format!("{id} is outside the configured trust domain {trust_domain:?}"),
                    );
                    None
                }
                Ok(id) if id.path().is_empty() => {
                    self.fail(
                        &s.spiffe_id,
                        field("spiffe_id"),
                        format!(
                            "{id} names no workload: add a path such as /ns/<namespace>/sa/{name}"
                        ),
                    );
                    None
                }
                Ok(id) => Some(id),
                Err(e) => {
                    self.fail(&s.spiffe_id, field("spiffe_id"), e.to_string());
                    None
                }
            };
            for (addr, f) in std::iter::once((&s.inbound, "inbound"))
                .chain(s.outbound.as_ref().map(|o| (o, "outbound")))
            {
                if let Some(other) = listeners.insert(*addr.get_ref(), field(f)) {
                    self.fail(
                        addr,
                        field(f),
                        format!("{} is already used by {other}", addr.get_ref()),
                    );
                }
            }
            let openapi = s.openapi.map(|spec| {
                let path = resolve(spec.get_ref().clone());
                if !path.is_file() {
                    self.fail(
                        &spec,
                        field("openapi"),
                        format!("{} does not exist", path.display()),
                    );
                }
                path
            });
            let svid_dir = resolve(
                s.svid_dir
                    .unwrap_or_else(|| state_dir.join("svids").join(&name)),
            );
            let limits = s.limits.and_then(|l| l.check(&field("limits"), self));
            if let (Some(v), None) = (&s.validation, &openapi) {
                if v.get_ref().mode != StageMode::Off {
                    self.fail(
                        v,
                        field("validation"),
                        "validation needs an OpenAPI spec: set `openapi`, or mode = \"off\"".into(),
                    );
                }
            }
            let validation = s
                .validation
                .map(|v| v.into_inner().settings())
                .unwrap_or_default();
            let inspection = s.inspection.map(|i| i.settings()).unwrap_or_default();
            if let Some(spiffe_id) = spiffe_id {
                services.push(ServiceConfig {
                    name,
                    spiffe_id,
                    inbound: s.inbound.into_inner(),
                    upstream: s.upstream,
                    outbound: s.outbound.map(Spanned::into_inner),
                    openapi,
                    owner: s.owner,
                    svid_dir,
                    limits,
                    validation,
                    inspection,
                });
            }
        }
        let control = raw
            .control
            .and_then(|c| self.control(c, &resolve, &state_dir));
        Some(Config {
            file: file.to_path_buf(),
            trust_domain,
            state_dir,
            policy_dir,
            audit: audit?,
            services,
            control,
        })
    }

    fn control(
        &mut self,
        raw: Spanned<RawControl>,
        resolve: &dyn Fn(PathBuf) -> PathBuf,
        state_dir: &Path,
    ) -> Option<ControlSettings> {
        let span = raw.span();
        let raw = raw.into_inner();
        let mut duration = |value: Option<String>, field: &str, default: u64| match value {
            None => Some(std::time::Duration::from_secs(default)),
            Some(text) => match humantime::parse_duration(&text) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    self.report(
                        span.clone(),
                        format!("control.{field}"),
                        "must be longer than zero".into(),
                    );
                    None
                }
                Err(e) => {
                    self.report(
                        span.clone(),
                        format!("control.{field}"),
                        format!("invalid duration {text:?}: {e}"),
                    );
                    None
                }
            },
        };
        let svid_ttl = duration(raw.svid_ttl, "svid_ttl", 3600);
        let revocation_poll = duration(raw.revocation_poll, "revocation_poll", 5);
        let url = match (raw.url, raw.listen) {
            (Some(url), _) if url.starts_with("https://") => Some(url),
            (Some(_), _) => {
                self.report(
                    span.clone(),
                    "control.url".into(),
                    "must be an https:// URL".into(),
                );
                None
            }
            (None, Some(listen)) => Some(format!("https://{listen}")),
            (None, None) => {
                self.report(
                    span.clone(),
                    "control".into(),
                    "needs `url` (for sidecars) or `listen` (for the server)".into(),
                );
                None
            }
        };
        Some(ControlSettings {
            listen: raw.listen,
            url: url?,
            svid_ttl: svid_ttl?,
            revocation_poll: revocation_poll?,
            bundle: raw
                .bundle
                .map(resolve)
                .unwrap_or_else(|| state_dir.join("ca").join("ca.pem")),
        })
    }

    fn audit(
        &mut self,
        raw: Option<RawAudit>,
        resolve: &dyn Fn(PathBuf) -> PathBuf,
        state_dir: &Path,
    ) -> Option<AuditSettings> {
        let Some(raw) = raw else {
            return Some(AuditSettings {
                sink: AuditSink::Sqlite {
                    path: state_dir.join("audit.db"),
                },
                queue_capacity: DEFAULT_AUDIT_QUEUE,
            });
        };
        let queue_capacity = match raw.queue_capacity {
            Some(q) if *q.get_ref() == 0 => {
                self.fail(
                    &q,
                    "audit.queue_capacity".into(),
                    "must be at least 1".into(),
                );
                return None;
            }
            Some(q) => q.into_inner(),
            None => DEFAULT_AUDIT_QUEUE,
        };
        let sink = match raw.sink.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("sqlite") => AuditSink::Sqlite {
                path: resolve(raw.path.unwrap_or_else(|| state_dir.join("audit.db"))),
            },
            Some("jsonl") => AuditSink::JsonLines {
                path: raw.path.filter(|p| p.as_os_str() != "-").map(resolve),
            },
            Some(other) => {
                let other = other.to_owned();
                if let Some(sink) = &raw.sink {
                    self.fail(
                        sink,
                        "audit.sink".into(),
                        format!("unknown sink {other:?}: expected \"sqlite\" or \"jsonl\""),
                    );
                }
                return None;
            }
        };
        Some(AuditSettings {
            sink,
            queue_capacity,
        })
    }
}
