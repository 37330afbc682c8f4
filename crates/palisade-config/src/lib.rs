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
mod inventory;
mod tokens;

use guard::Report as _;

use std::collections::{BTreeMap, HashMap, HashSet};
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
pub use inventory::{
    InventorySettings, RetiredRoute, DEFAULT_INVENTORY_MAX_BODY_BYTES, MAX_INVENTORY_MAX_BODY_BYTES,
};
pub use tokens::{ClientCertMode, TokenSettings, DEFAULT_TOKEN_LEEWAY};

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
/// inventory_refresh = "1m"           # how often the server rebuilds the API inventory
/// inventory_window = "7d"            # from the audit records of this last period
/// bundle = "state/ca/ca.pem"         # trust bundle to verify the control plane; default <state_dir>/ca/ca.pem
/// distribute_policies = true         # sidecars enforce the control plane's policy set
///
/// [control.oauth]                    # optional: the OAuth 2.0 token endpoint and JWKS
/// token_ttl = "5m"
/// key_rotation = "24h"
/// [[control.oauth.client]]
/// client_id = "spiffe://example.org/ns/prod/sa/orders"   # tls_client_auth: a SPIFFE ID
/// auth = "tls_client_auth"                                # or "private_key_jwt"
/// public_key = "keys/reporting.pem"                       # private_key_jwt only
/// scopes = { billing = ["invoices:read"] }                # audience (service) -> scopes
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
    /// How often `palisade control serve` rebuilds the API inventory from the audit log.
    pub inventory_refresh: std::time::Duration,
    /// The period of audit records the inventory covers.
    pub inventory_window: std::time::Duration,
    /// The trust bundle (PEM) that verifies the control plane.
    pub bundle: PathBuf,
    /// Sidecars enforce the policy set the control plane serves (cached on disk, so they
    /// start with the last good set when it is unreachable) instead of `policy_dir`.
    pub distribute_policies: bool,
    /// The OAuth 2.0 token endpoint (`[control.oauth]`), when configured.
    pub oauth: Option<OAuthSettings>,
}

/// Default access-token lifetime of `[control.oauth]`.
pub const DEFAULT_OAUTH_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// Default signing-key rotation period of `[control.oauth]`.
pub const DEFAULT_OAUTH_KEY_ROTATION: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// `[control.oauth]`: the clients that may get access tokens from the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// Lifetime of the access tokens issued.
    pub token_ttl: std::time::Duration,
    /// How often the token signing key is replaced.
    pub key_rotation: std::time::Duration,
    /// The registered clients (`[[control.oauth.client]]`), in file order.
    pub clients: Vec<OAuthClientSettings>,
}

/// One `[[control.oauth.client]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientSettings {
    /// The client id: the workload's SPIFFE ID for `tls_client_auth`.
    pub client_id: String,
    /// How the client authenticates.
    pub auth: OAuthClientAuth,
    /// Audience (a configured service name) → the scopes the client may ask for on it.
    pub scopes: BTreeMap<String, Vec<String>>,
}

/// How an OAuth client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthClientAuth {
    /// `tls_client_auth` (RFC 8705): mTLS with the X.509-SVID naming `client_id`.
    TlsClientAuth,
    /// `private_key_jwt` (RFC 7523): an assertion signed with the key in this PEM file.
    PrivateKeyJwt {
        /// The client's public key (PEM `PUBLIC KEY`), resolved against the config file.
        public_key: PathBuf,
    },
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
    /// Access tokens accepted besides (or, for callers outside the mesh, instead of) SVIDs.
    pub tokens: Option<TokenSettings>,
    /// Observation for the live API inventory, and the routes the owner has retired.
    pub inventory: InventorySettings,
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
    inventory_refresh: Option<String>,
    inventory_window: Option<String>,
    bundle: Option<PathBuf>,
    #[serde(default)]
    distribute_policies: bool,
    oauth: Option<Spanned<RawOAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    token_ttl: Option<Spanned<String>>,
    key_rotation: Option<Spanned<String>>,
    #[serde(default, rename = "client")]
    clients: Vec<Spanned<RawOAuthClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuthClient {
    client_id: Spanned<String>,
    auth: Spanned<String>,
    public_key: Option<Spanned<PathBuf>>,
    scopes: Spanned<BTreeMap<String, Vec<String>>>,
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
    tokens: Option<Spanned<tokens::RawTokens>>,
    inventory: Option<inventory::RawInventory>,
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

    fn count(&self) -> usize {
        self.issues.len()
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
        // `[service.tokens]` defaults to the control plane's URL, known only after `[control]`.
        let mut pending_tokens = Vec::new();
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
            let inventory = s
                .inventory
                .and_then(|i| i.check(&field("inventory"), self))
                .unwrap_or_default();
            if let Some(spiffe_id) = spiffe_id {
                if let Some(tokens) = s.tokens {
                    pending_tokens.push((services.len(), field("tokens"), tokens));
                }
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
                    tokens: None,
                    inventory,
                });
            }
        }
        let service_names: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
        let control = raw
            .control
            .and_then(|c| self.control(c, &resolve, &state_dir, &service_names, &trust_domain));
        for (index, field, raw_tokens) in pending_tokens {
            let span = raw_tokens.span();
            let control_url = control.as_ref().map(|c| c.url.as_str());
            let settings = raw_tokens
                .into_inner()
                .check(span, &field, control_url, self);
            if let Some(service) = services.get_mut(index) {
                service.tokens = settings;
            }
        }
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
        services: &HashSet<&str>,
        trust_domain: &str,
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
        let inventory_refresh = duration(raw.inventory_refresh, "inventory_refresh", 60);
        let inventory_window = duration(raw.inventory_window, "inventory_window", 7 * 24 * 3600);
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
        let oauth = match raw.oauth {
            Some(o) => Some(self.oauth(o, resolve, services, trust_domain)?),
            None => None,
        };
        Some(ControlSettings {
            listen: raw.listen,
            url: url?,
            svid_ttl: svid_ttl?,
            revocation_poll: revocation_poll?,
            inventory_refresh: inventory_refresh?,
            inventory_window: inventory_window?,
            bundle: raw
                .bundle
                .map(resolve)
                .unwrap_or_else(|| state_dir.join("ca").join("ca.pem")),
            distribute_policies: raw.distribute_policies,
            oauth,
        })
    }

    /// A positive duration, or `default` when absent.
    fn duration(
        &mut self,
        value: Option<Spanned<String>>,
        field: &str,
        default: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let Some(text) = value else {
            return Some(default);
        };
        match humantime::parse_duration(text.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.fail(&text, field.into(), "must be longer than zero".into());
                None
            }
            Err(e) => {
                let message = format!("invalid duration {:?}: {e}", text.get_ref());
                self.fail(&text, field.into(), message);
                None
            }
        }
    }

    fn oauth(
        &mut self,
        raw: Spanned<RawOAuth>,
        resolve: &dyn Fn(PathBuf) -> PathBuf,
        services: &HashSet<&str>,
        trust_domain: &str,
    ) -> Option<OAuthSettings> {
        let raw = raw.into_inner();
        let token_ttl = self.duration(
            raw.token_ttl,
            "control.oauth.token_ttl",
            DEFAULT_OAUTH_TOKEN_TTL,
        );
        let key_rotation = self.duration(
            raw.key_rotation,
            "control.oauth.key_rotation",
            DEFAULT_OAUTH_KEY_ROTATION,
        );
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut clients = Vec::new();
        let mut valid = true;
        for (i, client) in raw.clients.into_iter().enumerate() {
            let field = |f: &str| format!("control.oauth.client[{i}].{f}");
            let client = client.into_inner();
            let client_id = client.client_id.get_ref().clone();
            let before = self.issues.len();
            if client_id.is_empty() {
                self.fail(
                    &client.client_id,
                    field("client_id"),
                    "must not be empty".into(),
                );
            }
            if let Some(first) = ids.insert(client_id.clone(), i) {
                self.fail(
                    &client.client_id,
                    field("client_id"),
                    format!("{client_id:?} is already registered by control.oauth.client[{first}]"),
                );
            }
            let auth = match (client.auth.get_ref().as_str(), client.public_key) {
                ("tls_client_auth", public_key) => {
                    if let Some(key) = public_key {
                        self.fail(
                            &key,
                            field("public_key"),
                            "only private_key_jwt clients have a public_key".into(),
                        );
                    }
                    match client_id.parse::<SpiffeId>() {
                        Ok(id) if id.trust_domain() != trust_domain => self.fail(
                            &client.client_id,
                            field("client_id"),
                            format!("{id} is outside the configured trust domain {trust_domain:?}: no SVID of this mesh can name it"),
                        ),
                        Ok(_) => {}
                        Err(e) => self.fail(
                            &client.client_id,
                            field("client_id"),
                            format!("tls_client_auth needs the client's SPIFFE ID: {e}"),
                        ),
                    }
                    Some(OAuthClientAuth::TlsClientAuth)
                }
                ("private_key_jwt", Some(key)) => {
                    let path = resolve(key.get_ref().clone());
                    if !path.is_file() {
                        self.fail(
                            &key,
                            field("public_key"),
                            format!("{} does not exist", path.display()),
                        );
                    }
                    Some(OAuthClientAuth::PrivateKeyJwt { public_key: path })
                }
                ("private_key_jwt", None) => {
                    self.fail(
                        &client.auth,
                        field("public_key"),
                        "private_key_jwt needs `public_key` (a PEM public key file)".into(),
                    );
                    None
                }
                (other, _) => {
                    let message = format!(
                        "unknown auth {other:?}: expected \"tls_client_auth\" or \"private_key_jwt\" (client secrets are not supported)"
                    );
                    self.fail(&client.auth, field("auth"), message);
                    None
                }
            };
            if client.scopes.get_ref().is_empty() {
                self.fail(
                    &client.scopes,
                    field("scopes"),
                    "names no audience: the client could never get a token".into(),
                );
            }
            for (audience, scopes) in client.scopes.get_ref() {
                if !services.contains(audience.as_str()) {
                    self.fail(
                        &client.scopes,
                        field(&format!("scopes.{audience}")),
                        format!("{audience:?} is not a configured service"),
                    );
                }
                for scope in scopes {
                    // RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\\'.
                    let valid_token = !scope.is_empty()
                        && scope
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                    if !valid_token {
                        self.fail(
                            &client.scopes,
                            field(&format!("scopes.{audience}")),
                            format!("{scope:?} is not a valid scope (printable ASCII, no spaces, quotes or backslashes)"),
                        );
                    }
                }
            }
            match auth {
                Some(auth) if self.issues.len() == before => clients.push(OAuthClientSettings {
                    client_id,
                    auth,
                    scopes: client.scopes.into_inner(),
                }),
                _ => valid = false,
            }
        }
        if !valid {
            return None;
        }
        Some(OAuthSettings {
            token_ttl: token_ttl?,
            key_rotation: key_rotation?,
            clients,
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

/// Asserts that `err` reports, on `line` of its file, an issue about `field` whose message
/// contains `words` (the shape every configuration test checks).
#[cfg(test)]
fn assert_issue(err: &ConfigError, line: usize, field: &str, words: &str) {
    let shown = err.to_string();
    let wanted = format!(":{line}: {field}: ");
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&wanted) && l.contains(words)),
        "no {wanted}…{words} in:\n{shown}"
    );
}

#[cfg(test)]
mod oauth_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const BASE: &str = r#"trust_domain = "example.org"

[[service]]
name = "billing"
spiffe_id = "spiffe://example.org/ns/prod/sa/billing"
inbound = "127.0.0.1:7002"
upstream = "127.0.0.1:8002"

[[service]]
name = "customers"
spiffe_id = "spiffe://example.org/ns/prod/sa/customers"
inbound = "127.0.0.1:7003"
upstream = "127.0.0.1:8003"

[control]
listen = "127.0.0.1:7000"
"#;

    fn parse(oauth: &str, dir: &Path) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{oauth}"), &dir.join("palisade.toml"))
    }

    #[test]
    fn oauth_clients_are_typed_with_defaults_and_resolved_key_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/reporting.pem"),
            "-----BEGIN PUBLIC KEY-----",
        )
        .unwrap();
        let config = parse(
            r#"
[control.oauth]
[[control.oauth.client]]
client_id = "spiffe://example.org/ns/prod/sa/orders"
auth = "tls_client_auth"
scopes = { billing = ["invoices:read"], customers = ["customers:read"] }

[[control.oauth.client]]
client_id = "reporting"
auth = "private_key_jwt"
public_key = "keys/reporting.pem"
scopes = { billing = ["invoices:read", "invoices:export"] }
"#,
            dir.path(),
        )
        .unwrap();
        let oauth = config.control.unwrap().oauth.unwrap();
        assert_eq!(oauth.token_ttl, DEFAULT_OAUTH_TOKEN_TTL);
        assert_eq!(oauth.key_rotation, DEFAULT_OAUTH_KEY_ROTATION);
        assert_eq!(oauth.clients.len(), 2);
        let orders = &oauth.clients[0];
        assert_eq!(orders.client_id, "spiffe://example.org/ns/prod/sa/orders");
        assert_eq!(orders.auth, OAuthClientAuth::TlsClientAuth);
        assert_eq!(orders.scopes["customers"], vec!["customers:read"]);
        assert_eq!(
            oauth.clients[1].auth,
            OAuthClientAuth::PrivateKeyJwt {
                public_key: dir.path().join("keys/reporting.pem")
            }
        );
    }

    #[test]
    fn oauth_durations_are_read_and_oauth_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let config = parse(
            "\n[control.oauth]\ntoken_ttl = \"2m\"\nkey_rotation = \"6h\"\n",
            dir.path(),
        )
        .unwrap();
        let oauth = config.control.unwrap().oauth.unwrap();
        assert_eq!(oauth.token_ttl, std::time::Duration::from_secs(120));
        assert_eq!(oauth.key_rotation, std::time::Duration::from_secs(6 * 3600));
        assert!(oauth.clients.is_empty());
        let config = parse("", dir.path()).unwrap();
        assert_eq!(config.control.unwrap().oauth, None);
    }

    #[test]
    fn every_bad_oauth_client_is_reported_with_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse(
            r#"
[control.oauth]
token_ttl = "0s"
[[control.oauth.client]]
client_id = "orders"
auth = "tls_client_auth"
scopes = { billing = ["invoices:read"] }

[[control.oauth.client]]
client_id = "spiffe://other.org/ns/prod/sa/orders"
auth = "tls_client_auth"
scopes = { payroll = ["salaries:read"] }

[[control.oauth.client]]
client_id = "reporting"
auth = "private_key_jwt"
public_key = "keys/missing.pem"
scopes = { billing = ["has space"] }

[[control.oauth.client]]
client_id = "legacy"
auth = "client_secret_basic"
scopes = {}
"#,
            dir.path(),
        )
        .unwrap_err();
        let base_lines = BASE.lines().count();
        let expect = |line: usize, field: &str, words: &str| {
            super::assert_issue(&err, base_lines + line, field, words);
        };
        expect(3, "control.oauth.token_ttl", "longer than zero");
        expect(5, "control.oauth.client[0].client_id", "SPIFFE ID");
        expect(
            10,
            "control.oauth.client[1].client_id",
            "outside the configured trust domain",
        );
        expect(
            12,
            "control.oauth.client[1].scopes.payroll",
            "not a configured service",
        );
        expect(17, "control.oauth.client[2].public_key", "does not exist");
        expect(
            18,
            "control.oauth.client[2].scopes.billing",
            "not a valid scope",
        );
        expect(22, "control.oauth.client[3].auth", "client_secret_basic");
        expect(23, "control.oauth.client[3].scopes", "names no audience");
        assert_eq!(err.issues.len(), 8, "{err}");
    }

    #[test]
    fn a_private_key_jwt_client_needs_a_public_key_and_ids_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse(
            r#"
[[control.oauth.client]]
client_id = "reporting"
auth = "private_key_jwt"
scopes = { billing = ["invoices:read"] }

[[control.oauth.client]]
client_id = "reporting"
auth = "tls_client_auth"
public_key = "k.pem"
scopes = { billing = ["invoices:read"] }
"#,
            dir.path(),
        )
        .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown
                .contains("control.oauth.client[0].public_key: private_key_jwt needs `public_key`"),
            "{shown}"
        );
        assert!(shown.contains("control.oauth.client[1].client_id: \"reporting\" is already registered by control.oauth.client[0]"), "{shown}");
        assert!(
            shown.contains("control.oauth.client[1].public_key: only private_key_jwt clients"),
            "{shown}"
        );
    }
}

#[cfg(test)]
mod token_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SERVICE: &str = r#"trust_domain = "example.org"

[[service]]
name = "billing"
spiffe_id = "spiffe://example.org/ns/prod/sa/billing"
inbound = "127.0.0.1:7002"
upstream = "127.0.0.1:8002"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{SERVICE}{text}"), Path::new("/etc/palisade.toml"))
    }

    #[test]
    fn tokens_default_to_the_control_plane_as_issuer_and_a_required_certificate() {
        let config =
            parse("\n[service.tokens]\n\n[control]\nurl = \"https://cp.example.org:7000/\"\n")
                .unwrap();
        let tokens = config.services[0].tokens.clone().unwrap();
        assert_eq!(tokens.issuer, "https://cp.example.org:7000");
        assert_eq!(tokens.leeway, DEFAULT_TOKEN_LEEWAY);
        assert_eq!(tokens.client_cert, ClientCertMode::Required);
        assert!(!tokens.require_binding);
        let none = parse("\n[control]\nurl = \"https://cp.example.org:7000\"\n").unwrap();
        assert_eq!(none.services[0].tokens, None);
    }

    #[test]
    fn every_token_setting_is_read() {
        let config = parse(
            "\n[service.tokens]\nissuer = \"https://issuer.example.org\"\nleeway = \"5s\"\nclient_cert = \"optional\"\n\n[control]\nurl = \"https://cp.example.org:7000\"\n",
        )
        .unwrap();
        let tokens = config.services[0].tokens.clone().unwrap();
        assert_eq!(tokens.issuer, "https://issuer.example.org");
        assert_eq!(tokens.leeway, std::time::Duration::from_secs(5));
        assert_eq!(tokens.client_cert, ClientCertMode::Optional);
    }

    #[test]
    fn bad_token_settings_are_reported_with_line_and_field() {
        let err = parse(
            "\n[service.tokens]\nissuer = \"http://plain.example.org\"\nleeway = \"1h\"\nclient_cert = \"sometimes\"\n",
        )
        .unwrap_err();
        let base = SERVICE.lines().count();
        for (line, field, words) in [
            (2, "service[0].tokens", "needs [control]"),
            (3, "service[0].tokens.issuer", "not an https:// URL"),
            (4, "service[0].tokens.leeway", "at most 5m"),
            (5, "service[0].tokens.client_cert", "\"sometimes\""),
        ] {
            super::assert_issue(&err, base + line, field, words);
        }
        assert_eq!(err.issues.len(), 4, "{err}");
        let contradiction = parse(
            "\n[service.tokens]\nclient_cert = \"optional\"\nrequire_binding = true\n\n[control]\nurl = \"https://cp.example.org:7000\"\n",
        )
        .unwrap_err();
        assert!(
            contradiction.to_string().contains("require_binding"),
            "{contradiction}"
        );
    }
}
