//! The Palisade sidecar.
//!
//! One [`Sidecar`] fronts one configured service:
//! - the **inbound** listener terminates mutual TLS (client X.509-SVID required), runs the
//!   request pipeline ([`pipeline`]) and forwards allowed calls to the local app;
//! - the **outbound** listener takes plain HTTP from the local app, picks the target service
//!   from the Host header, and calls the target's sidecar over mTLS, accepting only the
//!   target's configured SPIFFE ID.
//!
//! Every request, allowed or refused (including refused handshakes), leaves exactly one
//! audit record.

pub mod context;
pub mod control;
pub mod identity;
pub mod observe;
pub mod pipeline;
pub mod rejection;
mod server;
pub mod stages;
pub mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use palisade_audit::AuditHandle;
use palisade_config::{
    ClientCertMode, Config, LimitBackend, RateSetting, ServiceConfig, StageMode,
};
use palisade_identity::IdentityError;
use palisade_inspect::{InspectOptions, Inspector};
use palisade_openapi::{ApiSpec, RequestValidator, ValidationOptions};
use palisade_policy::{spawn_reloader, PolicyEngine, PolicyError, ReloadWatcher, ServiceInfo};
use palisade_ratelimit::{Backend, LimitRules, Rate, RateLimitError, RateLimiter};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::identity::SidecarIdentity;
use crate::observe::Observer;
use crate::pipeline::{Guarded, InboundPipeline, OutboundPipeline};
use crate::stages::forward::{LocalUpstream, MeshTarget};
use crate::tokens::BearerTokens;

pub use crate::rejection::Rejection;
// In the signatures of `load_services` and `inventory_inputs`.
pub use palisade_openapi::SpecError;

/// Why a sidecar could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The named service is not in the configuration.
    #[error("no service named {name:?} in {config}")]
    UnknownService {
        /// The requested name.
        name: String,
        /// The configuration file.
        config: PathBuf,
    },
    /// The SVID could not be loaded or is unusable.
    #[error("service {service}: {source}")]
    Identity {
        /// The service.
        service: String,
        /// The cause.
        source: IdentityError,
    },
    /// The SVID on disk is for another identity than the configuration says.
    #[error(
        "service {service}: SVID in {dir} is for {found}, but the configuration says {expected}"
    )]
    WrongSvid {
        /// The service.
        service: String,
        /// The SVID directory.
        dir: PathBuf,
        /// The configured identity.
        expected: String,
        /// The identity in the SVID.
        found: String,
    },
    /// An OpenAPI spec failed to load.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The control plane could not be reached or refused to issue an SVID.
    #[error("service {service}: control plane: {source}")]
    Control {
        /// The service.
        service: String,
        /// The cause.
        source: palisade_control::ControlError,
    },
    /// A join token was given but the configuration has no `[control]` section.
    #[error(
        "a join token needs a control plane: add a [control] section with its url to {config}"
    )]
    NoControlPlane {
        /// The configuration file.
        config: PathBuf,
    },
    /// The rate limiter could not be built from the configured rules.
    #[error("service {service}: rate limits: {source}")]
    RateLimit {
        /// The service.
        service: String,
        /// The cause.
        source: RateLimitError,
    },
    /// The policy watcher could not start.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Loads every configured service's spec (the policy layer needs all routes to check
/// endpoint references) and returns the policy view of the services plus the specs.
pub fn load_services(
    config: &Config,
) -> Result<(Vec<ServiceInfo>, HashMap<String, ApiSpec>), SpecError> {
    let mut specs = HashMap::new();
    let mut infos = Vec::new();
    for service in &config.services {
        let spec = service.openapi.as_deref().map(ApiSpec::load).transpose()?;
        infos.push(ServiceInfo {
            name: service.name.clone(),
            spiffe_id: service.spiffe_id.to_string(),
            owner: service.owner.clone(),
            trust_domain: service.spiffe_id.trust_domain().to_owned(),
            routes: spec
                .as_ref()
                .map(|s| s.route_templates().into_iter().map(str::to_owned).collect()),
        });
        if let Some(spec) = spec {
            specs.insert(service.name.clone(), spec);
        }
    }
    Ok((infos, specs))
}

/// What the configuration tells the API inventory about each service: its owner, its
/// spec, and the routes its owner retired (`[service.inventory] retired`).
pub fn inventory_inputs(config: &Config) -> Result<palisade_inventory::InventoryInputs, SpecError> {
    let mut inputs = palisade_inventory::InventoryInputs::default();
    for service in &config.services {
        let spec = match &service.openapi {
            Some(path) => Some(palisade_inventory::SpecInput {
                source: path.display().to_string(),
                spec: ApiSpec::load(path)?,
            }),
            None => None,
        };
        let retired = service
            .inventory
            .retired
            .iter()
            .map(|retired| palisade_inventory::RetiredRoute {
                method: retired.method.clone(),
                route: retired.route.clone(),
            })
            .collect();
        inputs.services.insert(
            service.name.clone(),
            palisade_inventory::ServiceInputs {
                owner: service.owner.clone(),
                spec,
                retired,
            },
        );
    }
    Ok(inputs)
}

/// A sidecar, not yet started.
pub struct Sidecar;

/// A running sidecar; dropping it without [`RunningSidecar::shutdown`] aborts its listeners.
pub struct RunningSidecar {
    /// The bound inbound (mTLS) address.
    pub inbound_addr: SocketAddr,
    /// The bound outbound (plain, loopback) address, if configured.
    pub outbound_addr: Option<SocketAddr>,
    /// The policy engine, for inspection (generation, reload).
    pub policy: Arc<PolicyEngine>,
    /// The live SVID and revocation set (renewals and revocation updates go here).
    pub identity: Arc<SidecarIdentity>,
    shutdown: watch::Sender<bool>,
    /// The listeners, which drain on shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// Loops that run until stopped (SVID directory watch).
    background: Vec<JoinHandle<()>>,
    _reloader: ReloadWatcher,
}

impl Sidecar {
    /// Starts the sidecar for `service` from `config`, writing audit records to `audit`.
    ///
    /// Loads the service's SVID, every service's spec and the policy directory. A policy
    /// set that fails to load is logged and the sidecar denies everything with
    /// `palisade.policy.unavailable` until a valid set appears (fail closed).
    pub async fn start(
        config: &Config,
        service: &str,
        audit: AuditHandle,
    ) -> Result<RunningSidecar, ProxyError> {
        Sidecar::start_with(config, service, audit, None).await
    }

    /// [`Sidecar::start`], first joining the mesh with `join_token` when the service has no
    /// SVID yet (needs `[control]` in the configuration). With `[control]`, the sidecar
    /// also renews its SVID and follows the revocation list for as long as it runs.
    pub async fn start_with(
        config: &Config,
        service: &str,
        audit: AuditHandle,
        join_token: Option<&str>,
    ) -> Result<RunningSidecar, ProxyError> {
        let own = config
            .service(service)
            .ok_or_else(|| ProxyError::UnknownService {
                name: service.to_owned(),
                config: config.file.clone(),
            })?;
        let control = match &config.control {
            Some(settings) => Some(control::client(settings, &config.trust_domain).map_err(
                |source| ProxyError::Control {
                    service: service.to_owned(),
                    source,
                },
            )?),
            None if join_token.is_some() => {
                return Err(ProxyError::NoControlPlane {
                    config: config.file.clone(),
                })
            }
            None => None,
        };
        if let (Some(client), Some(token), Some(settings)) = (&control, join_token, &config.control)
        {
            let bundle = std::fs::read_to_string(&settings.bundle).map_err(|source| {
                ProxyError::Control {
                    service: service.to_owned(),
                    source: palisade_control::ControlError::Io {
                        path: settings.bundle.clone(),
                        source,
                    },
                }
            })?;
            control::bootstrap(client, own, token, &bundle)
                .await
                .map_err(|source| ProxyError::Control {
                    service: service.to_owned(),
                    source,
                })?;
        }
        let identity = Arc::new(
            SidecarIdentity::load(own.svid_dir.clone(), &own.spiffe_id, &config.trust_domain)
                .map_err(|source| ProxyError::Identity {
                    service: service.to_owned(),
                    source,
                })?,
        );
        let (infos, mut specs) = load_services(config)?;
        // With distribution on, the engine reads the cache the control plane's set is
        // written to (the last good set survives restarts and outages).
        let distributing = config
            .control
            .as_ref()
            .is_some_and(|c| c.distribute_policies);
        let policy_dir = if distributing {
            config.state_dir.join("policy-cache").join(&own.name)
        } else {
            config.policy_dir.clone()
        };
        if distributing {
            std::fs::create_dir_all(&policy_dir).map_err(|source| ProxyError::Control {
                service: service.to_owned(),
                source: palisade_control::ControlError::Io {
                    path: policy_dir.clone(),
                    source,
                },
            })?;
        }
        let policy = Arc::new(PolicyEngine::new(infos, policy_dir)?);
        match policy.reload() {
            Ok(summary) => tracing::info!(service, ?summary, "policies loaded"),
            Err(e) => {
                tracing::error!(service, error = %e, "no valid policy set; denying every request until one loads")
            }
        }
        let reloader = spawn_reloader(policy.clone())?;

        // Callers may come without a certificate only where a token can identify them.
        let client_cert_required = own
            .tokens
            .as_ref()
            .is_none_or(|t| t.client_cert == ClientCertMode::Required);
        let tls = identity
            .server_config(client_cert_required)
            .map_err(|source| ProxyError::Identity {
                service: service.to_owned(),
                source,
            })?;
        let spec = specs.remove(&own.name);
        // Configuration validation guarantees `[control]` wherever tokens are accepted.
        let tokens = own
            .tokens
            .as_ref()
            .zip(control.as_ref())
            .map(|(settings, client)| {
                Arc::new(BearerTokens::new(settings, &own.name, client.clone()))
            });
        let inbound = Arc::new(InboundPipeline {
            tokens: tokens.clone(),
            trust_domain: config.trust_domain.clone(),
            service: own.name.clone(),
            limiter: limiter(own).await?,
            validator: validator(own, spec.as_ref())?,
            inspector: inspector(own),
            max_body_bytes: own.validation.max_body_bytes,
            observer: Observer::new(&own.inventory),
            spec,
            policy: policy.clone(),
            upstream: LocalUpstream::new(own.upstream, own.spiffe_id.clone()),
            identity: identity.clone(),
            audit: audit.clone(),
        });
        let inbound_listener = bind(own.inbound).await?;
        let inbound_addr = local_addr(&inbound_listener, own.inbound)?;
        let (shutdown, watch_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(server::serve_inbound(
            inbound_listener,
            TlsAcceptor::from(Arc::new(tls)),
            inbound,
            watch_rx.clone(),
        ))];

        let mut outbound_addr = None;
        if let Some(addr) = own.outbound {
            let mut targets = HashMap::new();
            for target in config.services.iter().filter(|s| s.name != own.name) {
                let tls = identity
                    .client_config(target.spiffe_id.clone())
                    .map_err(|source| ProxyError::Identity {
                        service: service.to_owned(),
                        source,
                    })?;
                targets.insert(
                    target.name.clone(),
                    MeshTarget::new(
                        target.name.clone(),
                        target.inbound,
                        own.spiffe_id.clone(),
                        tls,
                    ),
                );
            }
            let outbound = Arc::new(OutboundPipeline {
                own_id: own.spiffe_id.clone(),
                identity: identity.clone(),
                targets,
                audit,
            });
            let listener = bind(addr).await?;
            outbound_addr = Some(local_addr(&listener, addr)?);
            tasks.push(tokio::spawn(server::serve_outbound(
                listener, outbound, watch_rx,
            )));
        }
        let mut background = vec![tokio::spawn(identity.clone().watch_svid_dir())];
        if let Some(tokens) = tokens {
            background.push(tokio::spawn(tokens.refresh_forever()));
        }
        if let (Some(client), Some(settings)) = (control, &config.control) {
            background.push(tokio::spawn(control::renew_forever(
                client.clone(),
                identity.clone(),
                own.svid_dir.clone(),
            )));
            background.push(tokio::spawn(control::poll_revocations(
                client.clone(),
                identity.clone(),
                settings.revocation_poll,
            )));
            if settings.distribute_policies {
                background.push(tokio::spawn(control::poll_policies(
                    client,
                    policy.clone(),
                    own.svid_dir.clone(),
                    settings.revocation_poll,
                )));
            }
        }
        tracing::info!(service, %inbound_addr, ?outbound_addr, upstream = %own.upstream, "sidecar started");
        Ok(RunningSidecar {
            inbound_addr,
            outbound_addr,
            policy,
            identity,
            shutdown,
            tasks,
            background,
            _reloader: reloader,
        })
    }
}

impl RunningSidecar {
    /// Stops accepting, lets in-flight requests finish (bounded), and returns.
    pub async fn shutdown(mut self) {
        for task in self.background.drain(..) {
            task.abort();
        }
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSidecar {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(&self.background) {
            task.abort();
        }
    }
}

/// The limit stage from `[service.limits]`, unless absent or off.
async fn limiter(service: &ServiceConfig) -> Result<Option<Guarded<RateLimiter>>, ProxyError> {
    let Some(settings) = service.limits.as_ref().filter(|l| l.mode != StageMode::Off) else {
        return Ok(None);
    };
    let rate = |r: &RateSetting| Rate {
        requests: r.requests,
        per: r.per,
        burst: r.burst,
    };
    let mut rules = LimitRules {
        default: settings.default.as_ref().map(rate),
        ..LimitRules::default()
    };
    for o in &settings.overrides {
        let caller = o.caller.to_string();
        match &o.route {
            Some(route) => rules.routes.insert((caller, route.clone()), rate(&o.rate)),
            None => rules.callers.insert(caller, rate(&o.rate)),
        };
    }
    let backend = match &settings.backend {
        LimitBackend::Local => Backend::Local,
        LimitBackend::Redis {
            url,
            fail_closed,
            key_prefix,
        } => Backend::Redis {
            url: url.clone(),
            fail_closed: *fail_closed,
            key_prefix: key_prefix.clone(),
        },
    };
    let stage = RateLimiter::new(&service.name, rules, backend)
        .await
        .map_err(|source| ProxyError::RateLimit {
            service: service.name.clone(),
            source,
        })?;
    Ok(Some(Guarded {
        mode: settings.mode,
        stage,
    }))
}

/// The validate stage, compiled from the service's spec, unless it has none or it is off.
fn validator(
    service: &ServiceConfig,
    spec: Option<&ApiSpec>,
) -> Result<Option<Guarded<RequestValidator>>, ProxyError> {
    let settings = &service.validation;
    let Some(spec) = spec.filter(|_| settings.mode != StageMode::Off) else {
        return Ok(None);
    };
    let stage = spec.compile_validator(ValidationOptions {
        strict: settings.strict,
        max_body_bytes: settings.max_body_bytes,
        max_depth: settings.max_depth,
        max_object_keys: settings.max_object_keys,
        max_array_items: settings.max_array_items,
    })?;
    Ok(Some(Guarded {
        mode: settings.mode,
        stage,
    }))
}

/// The inspect stage, unless it is off.
fn inspector(service: &ServiceConfig) -> Option<Guarded<Inspector>> {
    let settings = &service.inspection;
    (settings.mode != StageMode::Off).then(|| Guarded {
        mode: settings.mode,
        stage: Inspector::new(InspectOptions {
            headers: settings.headers.clone(),
            ..InspectOptions::default()
        }),
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, ProxyError> {
    listener
        .local_addr()
        .map_err(|source| ProxyError::Bind { addr, source })
}
