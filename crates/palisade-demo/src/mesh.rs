//! Starting and stopping the demo mesh: one audit writer shared by the control plane and
//! every sidecar, the control plane (also the OAuth token issuer), the three apps, their
//! sidecars (each joining with a one-time token), and the impostor.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use palisade_audit::{AuditStats, AuditWriter, SinkConfig};
use palisade_config::{Config, RateSetting, ServiceConfig, DEFAULT_AUDIT_QUEUE};
use palisade_control::{ControlServer, ControlServerConfig, ControlState, RunningControl};
use palisade_identity::tls::inbound_server_config;
use palisade_identity::{load_roots, SpiffeId, SvidMaterial};
use palisade_proxy::identity::SidecarIdentity;
use palisade_proxy::{RunningSidecar, Sidecar};
use palisade_token::TOKEN_ENDPOINT_PATH;
use rustls::ClientConfig;

use crate::apps::{start_app, start_impostor, Server, Workload};
use crate::client::{self, client_config, Body, Call};
use crate::oauth::{self, Auth};
use crate::workspace::{
    self, Layout, DEMO_SVID_TTL, IMPERSONATED, IMPOSTOR_SVID_OF, LIMITED_CALLER, LIMITED_ROUTE,
    LIMITED_SERVICE, TRUST_DOMAIN,
};
use crate::DemoError;

/// The demo services and their apps, in start order.
const APPS: [(&str, Workload); 3] = [
    ("orders", Workload::Orders),
    ("billing", Workload::Billing),
    ("customers", Workload::Customers),
];

/// How long flushing the audit log may take once every sidecar has stopped.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a join token stays redeemable; each sidecar redeems its own at once.
const JOIN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Everything the demo runs.
pub(crate) struct Mesh {
    layout: Layout,
    config: Option<Config>,
    writer: AuditWriter,
    control: RunningControl,
    state: Arc<ControlState>,
    servers: Vec<Server>,
    sidecars: Vec<(&'static str, RunningSidecar)>,
}

impl Mesh {
    /// Starts the audit writer and the control plane (from the CA in the demo directory),
    /// writes `palisade.toml` naming the control plane, then starts the apps, the sidecars
    /// (each joining with a fresh one-time token) and the impostor. Returns the mesh and
    /// the configuration it runs. On failure, whatever had started is stopped again.
    ///
    /// The control plane registers the OAuth clients `[control.oauth]` lists: both come
    /// from [`oauth::CLIENTS`].
    pub(crate) async fn start(layout: &Layout) -> Result<(Mesh, Config), DemoError> {
        let oauth = oauth::control_settings(layout)?;
        let writer = AuditWriter::start(
            SinkConfig::Sqlite {
                path: layout.audit_db.clone(),
            },
            DEFAULT_AUDIT_QUEUE,
        )?;
        let mut control_config = ControlServerConfig::new(
            layout.state_dir.clone(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            TRUST_DOMAIN,
            writer.handle(),
        );
        control_config.svid_ttl = DEMO_SVID_TTL;
        control_config.oauth = Some(oauth);
        let opened = match ControlState::open(&layout.state_dir) {
            Ok(state) => ControlServer::start(control_config)
                .await
                .map(|control| (state, control)),
            Err(e) => Err(e),
        };
        let (state, control) = match opened {
            Ok(started) => started,
            Err(e) => {
                if let Err(stop) = flush(writer).await {
                    tracing::warn!(error = %stop, "could not stop the demo audit writer");
                }
                return Err(e.into());
            }
        };
        let control_addr = control.addr;
        let mut mesh = Mesh {
            layout: layout.clone(),
            config: None,
            writer,
            control,
            state: Arc::new(state),
            servers: Vec::new(),
            sidecars: Vec::new(),
        };
        match mesh.start_workloads(layout, control_addr).await {
            Ok(config) => {
                mesh.config = Some(config.clone());
                Ok((mesh, config))
            }
            Err(e) => {
                if let Err(stop) = mesh.shutdown().await {
                    tracing::warn!(error = %stop, "could not stop the partly started demo");
                }
                Err(e)
            }
        }
    }

    /// The control plane's address.
    pub(crate) fn control_addr(&self) -> SocketAddr {
        self.control.addr
    }

    /// The live identity (SVID and revocation list) of `service`'s sidecar.
    pub(crate) fn identity(&self, service: &str) -> Option<&Arc<SidecarIdentity>> {
        self.sidecars
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, sidecar)| &sidecar.identity)
    }

    /// A TLS client configuration presenting the SVID now in `presenter`'s SVID directory
    /// and accepting only `target`'s identity.
    pub(crate) fn client_presenting(
        &self,
        presenter: &'static str,
        target: &'static str,
    ) -> Result<Arc<ClientConfig>, DemoError> {
        let server = service(self.config()?, target)?.spiffe_id.clone();
        self.presenting(presenter, server)
    }

    /// A TLS client configuration presenting `presenter`'s current SVID to the server
    /// `server`.
    fn presenting(
        &self,
        presenter: &'static str,
        server: SpiffeId,
    ) -> Result<Arc<ClientConfig>, DemoError> {
        let svid = SvidMaterial::load_dir(&service(self.config()?, presenter)?.svid_dir)?;
        client_config(svid.roots.clone(), server, Some(&svid))
    }

    /// The configuration the mesh runs, once started.
    fn config(&self) -> Result<&Config, DemoError> {
        self.config
            .as_ref()
            .ok_or_else(|| DemoError::ControlTask("the mesh has not started".into()))
    }

    /// An access token for the demo OAuth client `client`, for `audience` with `scope`,
    /// from the control plane's token endpoint, got as the client itself would: over
    /// mutual TLS with its SVID (`tls_client_auth`), or over TLS without a certificate
    /// with an assertion signed by its key (`private_key_jwt`).
    pub(crate) async fn access_token(
        &self,
        client: &'static str,
        audience: &'static str,
        scope: &'static str,
    ) -> Result<String, DemoError> {
        let failed = |reason: String| DemoError::Token {
            client,
            audience,
            reason,
        };
        let registered =
            oauth::client(client).ok_or_else(|| failed("not a registered OAuth client".into()))?;
        let control = &self.control;
        let tls = match registered.auth {
            Auth::TlsClientAuth => self.presenting(client, control.spiffe_id.clone()),
            Auth::PrivateKeyJwt => load_roots(&self.layout.bundle())
                .map_err(DemoError::from)
                .and_then(|roots| client_config(roots, control.spiffe_id.clone(), None)),
        }
        .map_err(|e| failed(e.to_string()))?;
        let endpoint = format!("https://{}{TOKEN_ENDPOINT_PATH}", control.addr);
        let mut call = Call::new(Method::POST, &control.addr.to_string(), TOKEN_ENDPOINT_PATH);
        call.body = Body::Form(
            oauth::token_request(registered, &self.layout, &endpoint, audience, scope)
                .map_err(|e| failed(e.to_string()))?,
        );
        let reply = client::tls(control.addr, tls, &call)
            .await
            .result
            .map_err(failed)?;
        oauth::access_token(&reply).map_err(failed)
    }

    /// Revokes every SVID naming `id`, as `palisade control revoke --spiffe-id` does.
    /// Returns the revocation list version after the change.
    pub(crate) async fn revoke(
        &self,
        id: SpiffeId,
        reason: &'static str,
    ) -> Result<u64, DemoError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.revoke_spiffe_id(&id, reason))
            .await
            .map_err(|e| DemoError::ControlTask(e.to_string()))?
            .map_err(DemoError::from)
    }

    /// A one-time join token for `id`, as `palisade control join-token create` makes one.
    async fn join_token(&self, id: SpiffeId) -> Result<String, DemoError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.create_join_token(&id, JOIN_TOKEN_TTL))
            .await
            .map_err(|e| DemoError::ControlTask(e.to_string()))?
            .map_err(DemoError::from)
    }

    async fn start_workloads(
        &mut self,
        layout: &Layout,
        control: SocketAddr,
    ) -> Result<Config, DemoError> {
        workspace::write_config(layout, control)?;
        let config = Config::load(&layout.config)?;
        for (name, workload) in APPS {
            let upstream = service(&config, name)?.upstream;
            self.servers.push(start_app(workload, upstream).await?);
        }
        for (name, _) in APPS {
            let token = self
                .join_token(service(&config, name)?.spiffe_id.clone())
                .await?;
            let sidecar = Sidecar::start_with(&config, name, self.writer.handle(), Some(&token))
                .await
                .map_err(|source| DemoError::Sidecar {
                    service: name.to_owned(),
                    source: Box::new(source),
                })?;
            // A sidecar without policies starts anyway and denies everything; for the
            // demo that is a broken installation, so say why instead.
            if sidecar.policy.current().is_none() {
                if let Err(e) = sidecar.policy.reload() {
                    sidecar.shutdown().await;
                    return Err(DemoError::Policies {
                        service: name.to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
            self.sidecars.push((name, sidecar));
        }
        // The impostor: a valid SVID from the demo CA, but customers' (the one its sidecar
        // just got by joining), on inventory's port.
        let svid = SvidMaterial::load_dir(&service(&config, IMPOSTOR_SVID_OF)?.svid_dir)?;
        let tls = inbound_server_config(&svid, vec![config.trust_domain.clone()])?;
        let port = service(&config, IMPERSONATED)?.inbound;
        self.servers.push(start_impostor(port, tls).await?);
        tracing::info!("demo mesh started");
        Ok(config)
    }

    /// Stops the sidecars (letting in-flight requests finish), then the apps, the impostor
    /// and the control plane, then flushes the audit log. Returns the audit writer's final
    /// counters.
    pub(crate) async fn shutdown(self) -> Result<AuditStats, DemoError> {
        let Mesh {
            layout: _,
            config: _,
            writer,
            control,
            state,
            servers,
            sidecars,
        } = self;
        for (_, sidecar) in sidecars {
            sidecar.shutdown().await;
        }
        for server in servers {
            server.shutdown().await;
        }
        control.shutdown().await;
        drop(state);
        flush(writer).await
    }
}

/// Flushes and stops the audit writer.
async fn flush(writer: AuditWriter) -> Result<AuditStats, DemoError> {
    // Blocking: it joins the writer thread once the sidecars' handles are gone.
    let flush = tokio::task::spawn_blocking(move || writer.shutdown());
    match tokio::time::timeout(FLUSH_TIMEOUT, flush).await {
        Ok(Ok(Ok(stats))) => Ok(stats),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(e)) => Err(DemoError::AuditShutdown(e.to_string())),
        Err(_) => Err(DemoError::AuditShutdown(format!(
            "records still pending after {} s",
            FLUSH_TIMEOUT.as_secs()
        ))),
    }
}

/// The configured service `name`.
pub(crate) fn service<'a>(
    config: &'a Config,
    name: &'static str,
) -> Result<&'a ServiceConfig, DemoError> {
    config
        .service(name)
        .ok_or_else(|| DemoError::MissingService {
            name,
            config: config.file.clone(),
        })
}

/// The rate of [`LIMITED_CALLER`]'s own budget for [`LIMITED_ROUTE`] at [`LIMITED_SERVICE`]
/// (orders' invoice reads at billing), as `config` sets it.
pub(crate) fn limited_rate(config: &Config) -> Result<RateSetting, DemoError> {
    let caller = &service(config, LIMITED_CALLER)?.spiffe_id;
    service(config, LIMITED_SERVICE)?
        .limits
        .iter()
        .flat_map(|limits| &limits.overrides)
        .find(|o| o.caller == *caller && o.route.as_deref() == Some(LIMITED_ROUTE))
        .map(|o| o.rate)
        .ok_or_else(|| DemoError::MissingLimit {
            service: LIMITED_SERVICE,
            caller: LIMITED_CALLER,
            route: LIMITED_ROUTE,
            config: config.file.clone(),
        })
}
