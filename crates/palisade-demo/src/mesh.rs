//! Starting and stopping the demo mesh: one audit writer shared by every sidecar, the three
//! apps, their sidecars, and the impostor.

use std::time::Duration;

use palisade_audit::{AuditStats, AuditWriter, SinkConfig};
use palisade_config::{Config, RateSetting, ServiceConfig};
use palisade_identity::tls::inbound_server_config;
use palisade_identity::SvidMaterial;
use palisade_proxy::{RunningSidecar, Sidecar};

use crate::apps::{start_app, start_impostor, Server, Workload};
use crate::workspace::{
    Layout, IMPERSONATED, IMPOSTOR_SVID_OF, LIMITED_CALLER, LIMITED_ROUTE, LIMITED_SERVICE,
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

/// Everything the demo runs.
pub(crate) struct Mesh {
    writer: AuditWriter,
    servers: Vec<Server>,
    sidecars: Vec<RunningSidecar>,
}

impl Mesh {
    /// Starts the audit writer, the apps, the sidecars and the impostor, as `config`
    /// describes them. On failure, whatever had started is stopped again.
    pub(crate) async fn start(config: &Config, layout: &Layout) -> Result<Mesh, DemoError> {
        let writer = AuditWriter::start(
            SinkConfig::Sqlite {
                path: layout.audit_db.clone(),
            },
            config.audit.queue_capacity,
        )?;
        let mut mesh = Mesh {
            writer,
            servers: Vec::new(),
            sidecars: Vec::new(),
        };
        match mesh.start_workloads(config).await {
            Ok(()) => Ok(mesh),
            Err(e) => {
                if let Err(stop) = mesh.shutdown().await {
                    tracing::warn!(error = %stop, "could not stop the partly started demo");
                }
                Err(e)
            }
        }
    }

    async fn start_workloads(&mut self, config: &Config) -> Result<(), DemoError> {
        for (name, workload) in APPS {
            let upstream = service(config, name)?.upstream;
            self.servers.push(start_app(workload, upstream).await?);
        }
        for (name, _) in APPS {
            let sidecar = Sidecar::start(config, name, self.writer.handle())
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
            self.sidecars.push(sidecar);
        }
        // The impostor: a valid SVID from the demo CA, but customers', on inventory's port.
        let svid = SvidMaterial::load_dir(&service(config, IMPOSTOR_SVID_OF)?.svid_dir)?;
        let tls = inbound_server_config(&svid, vec![config.trust_domain.clone()])?;
        let port = service(config, IMPERSONATED)?.inbound;
        self.servers.push(start_impostor(port, tls).await?);
        tracing::info!("demo mesh started");
        Ok(())
    }

    /// Stops the sidecars (letting in-flight requests finish), then the apps and the
    /// impostor, then flushes the audit log. Returns the audit writer's final counters.
    pub(crate) async fn shutdown(self) -> Result<AuditStats, DemoError> {
        let Mesh {
            writer,
            servers,
            sidecars,
        } = self;
        for sidecar in sidecars {
            sidecar.shutdown().await;
        }
        for server in servers {
            server.shutdown().await;
        }
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
