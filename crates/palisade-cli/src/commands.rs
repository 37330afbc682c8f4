//! The subcommands' bodies.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use palisade_audit::{AuditQuery, AuditWriter, SinkConfig};
use palisade_config::{AuditSink, Config};
use palisade_identity::{write_svid_dir, CertificateAuthority, SpiffeId};
use palisade_policy::{PolicySchema, PolicySet};
use palisade_proxy::{load_services, Sidecar};

use palisade_config::OAuthClientAuth;
use palisade_control::{
    admin_audit_record, AdminAction, CaStatus, ControlError, ControlServer, ControlServerConfig,
    ControlState, OAuthSettings, RootUsage,
};
use palisade_token::{ClientAuth, RegisteredClient};

use crate::{
    AuditCommand, AuditQueryArgs, CaCommand, Command, ControlCaCommand, ControlCommand,
    JoinTokenCommand, OutputFormat, PolicyCommand, SecretsCommand,
};

/// A command's failure and the exit code it maps to (CONVENTIONS.md: 1 = a check failed,
/// 2 = usage or configuration error).
pub struct Failure {
    pub error: anyhow::Error,
    pub exit_code: ExitCode,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            error: error.into(),
            exit_code: ExitCode::from(2),
        }
    }
}

pub fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Ca(ca) => ca_command(ca),
        Command::CheckConfig { config } => check_config(&config),
        Command::Policy(PolicyCommand::Schema { config }) => {
            let config = Config::load(&config)?;
            let (services, _) = load_services(&config)?;
            print!("{}", PolicySchema::generate(&services)?.schema_text());
            Ok(ExitCode::SUCCESS)
        }
        Command::Proxy {
            config,
            service,
            join_token,
        } => proxy(&config, &service, join_token.as_deref()),
        Command::Control(command) => control(command),
        Command::Audit(AuditCommand::Query(args)) => audit_query(args),
        Command::Secrets(SecretsCommand::Scan(args)) => crate::secrets::scan(args),
        Command::Inventory(args) => crate::inventory::run(args),
        Command::Lint(args) => crate::lint::lint(args),
        Command::Demo { dir, keep_running } => demo(dir, keep_running),
    }
}

fn ca_command(command: CaCommand) -> Result<ExitCode, Failure> {
    match command {
        CaCommand::Init {
            trust_domain,
            state,
            force,
        } => {
            let ca = CertificateAuthority::init(&state, &trust_domain, force)?;
            println!(
                "created CA for trust domain {} in {}",
                ca.trust_domain(),
                CertificateAuthority::dir(&state).display()
            );
        }
        CaCommand::Issue {
            state,
            spiffe_id,
            ttl,
            out,
        } => {
            let id: SpiffeId = spiffe_id
                .parse()
                .with_context(|| format!("invalid --spiffe-id {spiffe_id:?}"))?;
            let ca = CertificateAuthority::load(&state)?;
            let svid = ca.issue(&id, ttl)?;
            write_svid_dir(&out, &svid, ca.bundle_pem())?;
            println!(
                "issued SVID for {id}, valid until {} (svid.pem, svid.key, bundle.pem in {})",
                svid.not_after,
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &std::path::Path) -> Result<ExitCode, Failure> {
    let config = Config::load(path)?;
    let (services, specs) = load_services(&config)?;
    let schema = PolicySchema::generate(&services)?;
    let policies = PolicySet::load_dir(&config.policy_dir, &schema)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}: OK", path.display());
    let _ = writeln!(out, "  trust domain: {}", config.trust_domain);
    for service in &config.services {
        let routes = specs.get(&service.name).map_or_else(
            || "no spec".to_owned(),
            |s| format!("{} routes", s.route_templates().len()),
        );
        let _ = writeln!(
            out,
            "  service {} ({}, {routes})",
            service.name, service.spiffe_id
        );
    }
    let _ = writeln!(
        out,
        "  policies: {} from {} file(s) in {}",
        policies.len(),
        policies.files().len(),
        config.policy_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?)
}

fn audit_writer(config: &Config) -> Result<AuditWriter, Failure> {
    let sink = match &config.audit.sink {
        AuditSink::Sqlite { path } => SinkConfig::Sqlite { path: path.clone() },
        AuditSink::JsonLines { path } => SinkConfig::JsonLines { path: path.clone() },
    };
    Ok(AuditWriter::start(sink, config.audit.queue_capacity)?)
}

fn proxy(
    path: &std::path::Path,
    service: &str,
    join_token: Option<&str>,
) -> Result<ExitCode, Failure> {
    let config = Config::load(path)?;
    let writer = audit_writer(&config)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let sidecar = Sidecar::start_with(&config, service, writer.handle(), join_token).await?;
        shutdown_signal().await;
        tracing::info!(service, "shutting down");
        sidecar.shutdown().await;
        Ok::<_, Failure>(())
    })?;
    drop(runtime);
    let stats = writer.shutdown()?;
    tracing::info!(
        written = stats.written,
        backpressure_waits = stats.backpressure_waits,
        "audit log flushed"
    );
    Ok(ExitCode::SUCCESS)
}

fn control(command: ControlCommand) -> Result<ExitCode, Failure> {
    match command {
        ControlCommand::Serve { config } => {
            let config = Config::load(&config)?;
            let listen = config
                .control
                .as_ref()
                .and_then(|c| c.listen)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: [control] needs `listen` to serve",
                        config.file.display()
                    )
                })?;
            let writer = audit_writer(&config)?;
            let runtime = runtime()?;
            runtime.block_on(async {
                let mut settings = ControlServerConfig::new(config.state_dir.clone(), listen, config.trust_domain.clone(), writer.handle());
                settings.policy_dir = Some(config.policy_dir.clone());
                settings.inventory = control_inventory(&config)?;
                if let Some(control) = &config.control {
                    settings.svid_ttl = control.svid_ttl;
                    settings.oauth = control
                        .oauth
                        .as_ref()
                        .map(|oauth| oauth_settings(oauth, &control.url))
                        .transpose()?;
                }
                let server = ControlServer::start(settings).await?;
                tracing::info!(addr = %server.addr, spiffe_id = %server.spiffe_id, "control plane serving");
                shutdown_signal().await;
                server.shutdown().await;
                Ok::<_, Failure>(())
            })?;
            drop(runtime);
            writer.shutdown()?;
        }
        ControlCommand::JoinToken(JoinTokenCommand::Create {
            config,
            spiffe_id,
            ttl,
        }) => {
            let config = Config::load(&config)?;
            let id: SpiffeId = spiffe_id
                .parse()
                .with_context(|| format!("invalid --spiffe-id {spiffe_id:?}"))?;
            let token = ControlState::open(&config.state_dir)?.create_join_token(&id, ttl)?;
            record_admin(
                &config,
                admin_audit_record(&AdminAction::JoinTokenCreated {
                    spiffe_id: &id,
                    ttl,
                }),
            )?;
            println!("{token}");
            eprintln!("one-time join token for {id}, valid for {}; start the sidecar with --join-token (or PALISADE_JOIN_TOKEN)", humantime::format_duration(ttl));
        }
        ControlCommand::Revoke {
            config,
            spiffe_id,
            serial,
            reason,
        } => {
            let config = Config::load(&config)?;
            let state = ControlState::open(&config.state_dir)?;
            let record = match (spiffe_id, serial) {
                (Some(id), _) => {
                    let id: SpiffeId = id
                        .parse()
                        .with_context(|| format!("invalid --spiffe-id {id:?}"))?;
                    let version = state.revoke_spiffe_id(&id, &reason)?;
                    println!("revoked every SVID of {id}; revocation list version {version}");
                    admin_audit_record(&AdminAction::SpiffeIdRevoked {
                        spiffe_id: &id,
                        reason: &reason,
                        version,
                    })
                }
                (None, Some(serial)) => {
                    let version = state.revoke_serial(&serial, &reason)?;
                    println!("revoked SVID serial {serial}; revocation list version {version}");
                    admin_audit_record(&AdminAction::SerialRevoked {
                        serial: &serial,
                        reason: &reason,
                        version,
                    })
                }
                (None, None) => return Err(anyhow::anyhow!("give --spiffe-id or --serial").into()),
            };
            record_admin(&config, record)?;
        }
        ControlCommand::Ca(command) => return control_ca(command),
    }
    Ok(ExitCode::SUCCESS)
}

/// `palisade control ca …`: the CA rollover steps, each audited like the other
/// administrative changes, and the status between them.
fn control_ca(command: ControlCaCommand) -> Result<ExitCode, Failure> {
    match command {
        ControlCaCommand::Prepare { config } => {
            let config = Config::load(&config)?;
            let root = ControlState::open(&config.state_dir)?.prepare_root()?;
            record_admin(
                &config,
                admin_audit_record(&AdminAction::RootPrepared {
                    fingerprint: &root.fingerprint,
                    not_after: root.not_after,
                }),
            )?;
            println!(
                "prepared root {} (valid until {}); it is in the served trust bundle and signs nothing yet",
                root.fingerprint,
                rfc3339(root.not_after)
            );
            let poll = config
                .control
                .as_ref()
                .map(|c| humantime::format_duration(c.revocation_poll).to_string())
                .unwrap_or_else(|| "5s".into());
            eprintln!("next: wait until every sidecar has fetched the new bundle (they do with every revocation poll, every {poll}; a sidecar that is down fetches it when it starts), then run `palisade control ca activate`");
        }
        ControlCaCommand::Activate { config } => {
            let config = Config::load(&config)?;
            let activation = ControlState::open(&config.state_dir)?.activate_root()?;
            record_admin(
                &config,
                admin_audit_record(&AdminAction::RootActivated {
                    active: &activation.active.fingerprint,
                    previous: &activation.previous.fingerprint,
                }),
            )?;
            println!(
                "root {} signs from now on; the previous root {} stays in the trust bundle",
                activation.active.fingerprint, activation.previous.fingerprint
            );
            let ttl = config
                .control
                .as_ref()
                .map(|c| humantime::format_duration(c.svid_ttl).to_string())
                .unwrap_or_else(|| "1h".into());
            eprintln!("next: wait until every workload has renewed its SVID (sidecars renew at half its life; all within one SVID TTL, {ttl}); `palisade control ca status` shows what still uses the previous root; then run `palisade control ca retire`");
        }
        ControlCaCommand::Retire { config, force } => {
            let config = Config::load(&config)?;
            let retired = match ControlState::open(&config.state_dir)?.retire_root(force) {
                Ok(retired) => retired,
                // A check that failed, not a usage error.
                Err(error @ ControlError::RootInUse { .. }) => {
                    return Err(Failure {
                        error: error.into(),
                        exit_code: ExitCode::from(1),
                    })
                }
                Err(error) => return Err(error.into()),
            };
            record_admin(
                &config,
                admin_audit_record(&AdminAction::RootRetired {
                    fingerprint: &retired.root.fingerprint,
                    still_in_use: retired.usage.svids,
                }),
            )?;
            println!(
                "retired root {}: it is no longer in the trust bundle (files kept: {})",
                retired.root.fingerprint,
                retired.root.cert_path.display()
            );
            if retired.usage.svids > 0 {
                eprintln!(
                    "warning: {} SVID(s) it signed were still in use; those workloads must join again",
                    retired.usage.svids
                );
            }
        }
        ControlCaCommand::Status { config, format } => {
            let config = Config::load(&config)?;
            let status = ControlState::open(&config.state_dir)?.ca_status()?;
            let text = match format {
                OutputFormat::Table => render_ca_status(&status),
                OutputFormat::Json => format!("{}\n", ca_status_json(&status)),
            };
            print!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(ts: time::OffsetDateTime) -> String {
    ts.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ts.to_string())
}

/// The roots as a table, then what still depends on the previous root.
fn render_ca_status(status: &CaStatus) -> String {
    let mut out = format!(
        "{:<9} {:<64} {:<20} {:<20} SUBJECT\n",
        "ROLE", "FINGERPRINT (SHA-256)", "NOT AFTER", "SINCE"
    );
    for root in &status.roots {
        let since = match root.role {
            palisade_identity::RootRole::Retired => root.retired,
            palisade_identity::RootRole::Active | palisade_identity::RootRole::Previous => {
                root.activated
            }
            _ => Some(root.added),
        }
        .unwrap_or(root.added);
        out.push_str(&format!(
            "{:<9} {:<64} {:<20} {:<20} {}\n",
            root.role.as_str(),
            root.fingerprint,
            rfc3339(root.not_after),
            rfc3339(since),
            root.subject
        ));
    }
    if let Some(signer) = status
        .roots
        .iter()
        .find(|r| r.role == palisade_identity::RootRole::Active)
    {
        out.push_str(&format!("signing: {}\n", signer.fingerprint));
    }
    if let Some(usage) = &status.previous_usage {
        out.push_str(&previous_usage_line(usage));
    }
    out
}

fn previous_usage_line(usage: &RootUsage) -> String {
    match usage.last_not_after {
        None => "previous root: no SVID it signed is still in use; `palisade control ca retire` is safe\n".to_owned(),
        Some(last) => format!(
            "previous root: {} SVID(s) it signed still in use ({}), the last expiring at {}; retire once they have renewed\n",
            usage.svids,
            usage.spiffe_ids.join(", "),
            rfc3339(last)
        ),
    }
}

fn ca_status_json(status: &CaStatus) -> serde_json::Value {
    let optional = |ts: Option<time::OffsetDateTime>| ts.map(rfc3339);
    serde_json::json!({
        "roots": status.roots.iter().map(|root| serde_json::json!({
            "role": root.role.as_str(),
            "fingerprint": root.fingerprint,
            "subject": root.subject,
            "not_before": rfc3339(root.not_before),
            "not_after": rfc3339(root.not_after),
            "added": rfc3339(root.added),
            "activated": optional(root.activated),
            "retired": optional(root.retired),
            "cert": root.cert_path,
        })).collect::<Vec<_>>(),
        "previous_in_use": status.previous_usage.as_ref().map(|usage| serde_json::json!({
            "svids": usage.svids,
            "spiffe_ids": usage.spiffe_ids,
            "last_not_after": optional(usage.last_not_after),
        })),
    })
}

/// The live API inventory `control serve` keeps under `<state_dir>/inventory/`: from the
/// SQLite audit log (a JSON-lines log cannot be queried, so then none).
fn control_inventory(
    config: &Config,
) -> Result<Option<palisade_control::inventory::InventoryRefresh>, Failure> {
    let (AuditSink::Sqlite { path }, Some(control)) = (&config.audit.sink, &config.control) else {
        tracing::info!("no API inventory: the audit sink is not SQLite");
        return Ok(None);
    };
    Ok(Some(palisade_control::inventory::InventoryRefresh {
        db: path.clone(),
        inputs: palisade_proxy::inventory_inputs(config)?,
        window: Some(control.inventory_window),
        interval: control.inventory_refresh,
    }))
}

/// The token endpoint's settings from `[control.oauth]`: client keys are read here so a
/// missing or unreadable file stops the server at start.
fn oauth_settings(
    oauth: &palisade_config::OAuthSettings,
    issuer: &str,
) -> Result<OAuthSettings, Failure> {
    let mut clients = Vec::new();
    for client in &oauth.clients {
        let auth = match &client.auth {
            OAuthClientAuth::TlsClientAuth => ClientAuth::TlsClientAuth,
            OAuthClientAuth::PrivateKeyJwt { public_key } => ClientAuth::PrivateKeyJwt {
                public_key_pem: std::fs::read_to_string(public_key).with_context(|| {
                    format!(
                        "cannot read the public key of OAuth client {}: {}",
                        client.client_id,
                        public_key.display()
                    )
                })?,
            },
        };
        clients.push(RegisteredClient {
            client_id: client.client_id.clone(),
            auth,
            scopes: client.scopes.clone().into_iter().collect(),
        });
    }
    Ok(OAuthSettings {
        clients,
        token_ttl: oauth.token_ttl,
        key_rotation: oauth.key_rotation,
        // The URL sidecars know the control plane by: what they expect in `iss`.
        issuer: Some(issuer.to_owned()),
    })
}

/// Writes one control-plane administration record to the configured audit sink.
fn record_admin(config: &Config, record: palisade_audit::AuditRecord) -> Result<(), Failure> {
    let writer = audit_writer(config)?;
    runtime()?.block_on(writer.handle().record(record))?;
    writer.shutdown()?;
    Ok(())
}

/// SIGINT or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn audit_query(args: AuditQueryArgs) -> Result<ExitCode, Failure> {
    let since = args.since.map(|d| time::OffsetDateTime::now_utc() - d);
    let query = AuditQuery {
        caller: args.caller,
        service: args.service,
        decision: args.decision,
        since,
        limit: args.limit,
    };
    let records = palisade_audit::query(&args.db, &query)?;
    let text = match args.format {
        OutputFormat::Table => palisade_audit::render_table(&records),
        OutputFormat::Json => palisade_audit::render_json_lines(&records),
    };
    print!("{text}");
    if !text.ends_with('\n') && !text.is_empty() {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn demo(dir: std::path::PathBuf, keep_running: bool) -> Result<ExitCode, Failure> {
    let report = runtime()?.block_on(palisade_demo::run(palisade_demo::DemoOptions {
        dir,
        keep_running,
    }))?;
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
