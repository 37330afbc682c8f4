//! `palisade demo`: three services behind Palisade sidecars, and scenarios that show what
//! the sidecars allow, refuse and record.
//!
//! [`run`] prepares a demo directory (CA, SVIDs, `palisade.toml`, OpenAPI specs, Cedar
//! policies), starts the mesh from that configuration, runs the scenarios, checks each
//! against the caller's view *and* the audit log, and prints the results.
//!
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod apps;
mod client;
mod error;
mod inventory;
mod mesh;
mod oauth;
mod report;
mod scenarios;
mod workspace;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use palisade_audit::{query, AuditQuery, AuditRecord};
use palisade_config::Config;

pub use crate::error::DemoError;
use crate::mesh::Mesh;
use crate::scenarios::Probe;
use crate::workspace::Layout;

/// How long, with the mesh still running, to wait for the sidecars' audit records of the
/// scenarios to reach the database.
const AUDIT_SETTLE_DEADLINE: Duration = Duration::from_secs(5);
/// How often to look meanwhile.
const AUDIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How to run the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// The demo directory. Created if missing; cleared if a previous demo run created it;
    /// refused if it holds anything else.
    pub dir: PathBuf,
    /// Keep the mesh running after the scenarios, until Ctrl-C, to experiment with it.
    pub keep_running: bool,
}

/// What a demo run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// One result per scenario, in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
    /// The SQLite audit log the sidecars wrote.
    pub audit_db: PathBuf,
    /// The generated `palisade.toml`.
    pub config: PathBuf,
}

impl DemoReport {
    /// Whether there were scenarios and every one had its expected outcome.
    pub fn all_passed(&self) -> bool {
        !self.scenarios.is_empty() && self.scenarios.iter().all(|s| s.passed)
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioResult {
    /// What the scenario does, e.g. `orders → billing: GET /invoices/42`.
    pub name: String,
    /// The expected outcome, e.g. `200 allowed` or `403 palisade.authz.denied`.
    pub expected: String,
    /// What happened, as the caller saw it and the deciding sidecar recorded it.
    pub observed: String,
    /// The caller saw the expected outcome and the deciding sidecar left exactly one
    /// audit record per call, which agrees (for a guard stage's refusal, its `findings`
    /// says what was found where).
    pub passed: bool,
}

/// Runs the demo, printing progress and the results table to stdout.
///
/// Scenarios that do not have their expected outcome are reported in the
/// [`DemoReport`], not as errors; errors are for a demo that could not run (the
/// directory holds someone else's files, a port could not be bound, ...).
pub async fn run(options: DemoOptions) -> Result<DemoReport, DemoError> {
    let layout = Layout::new(&options.dir);
    workspace::create(&layout)?;
    let (mesh, config) = Mesh::start(&layout).await?;
    let plan = match scenarios::plan(&config, &layout) {
        Ok(plan) => plan,
        Err(e) => {
            if let Err(stop) = mesh.shutdown().await {
                tracing::warn!(error = %stop, "could not stop the demo mesh");
            }
            return Err(e);
        }
    };
    println!("{}", report::intro(&layout, plan.len()));
    println!(
        "Wrote {}: a CA for trust domain {}, OpenAPI specs, Cedar policies, rate limits, and \
         the reporting job's key pair for getting access tokens.\n\
         Started the control plane (CA and OAuth token issuer) on https://{}, 3 apps, 3 \
         sidecars (each joined with a one-time token, generating its key itself) and an \
         impostor; running {} scenarios.\n",
        layout.config.display(),
        config.trust_domain,
        mesh.control_addr(),
        plan.len()
    );

    let total = plan.len();
    let mut probes = Vec::with_capacity(total);
    for (i, scenario) in plan.into_iter().enumerate() {
        println!("  [{}/{total}] {}", i + 1, scenario.name);
        probes.push(scenario.run(&mesh).await);
    }
    println!();

    let (scenarios, written) = if options.keep_running {
        let shown = show_while_running(&config, &layout, &probes).await;
        println!("Stopping the demo mesh.");
        let stats = mesh.shutdown().await?;
        (shown?, stats.written)
    } else {
        // Stopping flushes the audit log, so every record is in the database after it.
        let stats = mesh.shutdown().await?;
        let records = query(&layout.audit_db, &AuditQuery::default())?;
        let scenarios = judge(&probes, &records);
        println!("{}", report::results_table(&scenarios));
        (scenarios, stats.written)
    };
    println!("{}", report::audit_tail(&layout.audit_db, written)?);
    println!("{}", inventory::show(&config, &layout)?);
    println!("{}", report::files(&layout));

    Ok(DemoReport {
        scenarios,
        audit_db: layout.audit_db,
        config: layout.config,
    })
}

/// With the mesh running: judges the scenarios, prints the results and commands to try,
/// and waits for Ctrl-C.
async fn show_while_running(
    config: &Config,
    layout: &Layout,
    probes: &[Probe],
) -> Result<Vec<ScenarioResult>, DemoError> {
    let records = settled_records(layout, probes).await?;
    let scenarios = judge(probes, &records);
    println!("{}", report::results_table(&scenarios));
    println!("{}", report::try_commands(config)?);
    tokio::signal::ctrl_c().await.map_err(DemoError::Signal)?;
    Ok(scenarios)
}

fn judge(probes: &[Probe], records: &[AuditRecord]) -> Vec<ScenarioResult> {
    probes.iter().map(|probe| probe.judge(records)).collect()
}

/// With the mesh still running, reads the audit log until every scenario's deciding
/// sidecar has recorded it, or the deadline passes (then the missing records fail their
/// scenarios).
async fn settled_records(layout: &Layout, probes: &[Probe]) -> Result<Vec<AuditRecord>, DemoError> {
    let deadline = Instant::now() + AUDIT_SETTLE_DEADLINE;
    loop {
        let records = query(&layout.audit_db, &AuditQuery::default())?;
        if probes.iter().all(|p| p.is_recorded(&records)) || Instant::now() >= deadline {
            return Ok(records);
        }
        tokio::time::sleep(AUDIT_POLL_INTERVAL).await;
    }
}
