//! `palisade`: the single binary. Subcommands are thin: each parses its arguments and calls
//! into a library crate; this is the only place `anyhow` is used.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod commands;
mod inventory;
mod lint;
mod secrets;

/// Zero-trust for internal APIs: mTLS workload identity, Cedar authorization and an audit
/// record for every call.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about, long_about = None)]
struct Cli {
    /// Log format for diagnostics on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the certificate authority and issue X.509-SVIDs.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Validate a configuration file, its OpenAPI specs and its policies (exit 0 or 2).
    CheckConfig {
        /// The palisade.toml to check.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Inspect the Cedar schema policies are validated against.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the sidecar for one service.
    Proxy {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// The service (a [[service]] name in the config) this sidecar fronts.
        #[arg(long, short)]
        service: String,
        /// One-time token to get a first SVID from the control plane (when the service has none yet).
        #[arg(long, env = "PALISADE_JOIN_TOKEN", hide_env_values = true)]
        join_token: Option<String>,
    },
    /// Run or administer the control plane (CA service: join tokens, renewal, revocation).
    #[command(subcommand)]
    Control(ControlCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The live API inventory: every endpoint seen in the audit log, with callers, data
    /// classes, flags (shadow, zombie, unused, orphan, drift) and a risk score.
    Inventory(InventoryArgs),
    /// CI gate: find credentials committed to files or to git history (exit 1 on findings).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// CI gate: lint OpenAPI 3.0/3.1 specs for security problems (OWASP API Top 10 and
    /// Palisade's rules; exit 1 on findings at --fail-on, 2 on unreadable input).
    Lint(lint::LintArgs),
    /// Run a three-service mesh on loopback and show what Palisade allows and refuses.
    Demo {
        /// Directory for the demo's CA, config, policies and audit log (recreated).
        #[arg(long, default_value = "palisade-demo")]
        dir: PathBuf,
        /// Leave the mesh running after the scenarios and print curl commands to try.
        #[arg(long)]
        keep_running: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a root CA (ECDSA P-256) for a trust domain.
    Init {
        /// The SPIFFE trust domain, e.g. example.org.
        #[arg(long)]
        trust_domain: String,
        /// State directory; the CA goes to <state>/ca/.
        #[arg(long)]
        state: PathBuf,
        /// Replace an existing CA (every SVID it issued stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue an X.509-SVID: writes svid.pem, svid.key (0600) and bundle.pem.
    Issue {
        /// State directory holding the CA.
        #[arg(long)]
        state: PathBuf,
        /// The workload's SPIFFE ID, e.g. spiffe://example.org/ns/prod/sa/billing.
        #[arg(long)]
        spiffe_id: String,
        /// Lifetime, e.g. 1h, 30m.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ControlCommand {
    /// Serve the control plane on `[control] listen`.
    Serve {
        /// The palisade.toml (with a [control] section).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage one-time join tokens.
    #[command(subcommand)]
    JoinToken(JoinTokenCommand),
    /// Roll the CA over to a new root without breaking running workloads:
    /// prepare, (wait) activate, (wait) retire.
    #[command(subcommand)]
    Ca(ControlCaCommand),
    /// Revoke every SVID of a SPIFFE ID, or one SVID by serial number.
    Revoke {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// Revoke every SVID of this SPIFFE ID (and refuse to issue it new ones).
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        spiffe_id: Option<String>,
        /// Revoke one SVID by its serial number (hex).
        #[arg(long)]
        serial: Option<String>,
        /// Why, for the audit record.
        #[arg(long, default_value = "revoked by an operator")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum JoinTokenCommand {
    /// Create a one-time token a sidecar exchanges for its first SVID.
    Create {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// The identity the token may obtain.
        #[arg(long)]
        spiffe_id: String,
        /// How long the token stays usable, e.g. 10m.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum ControlCaCommand {
    /// Step 1: generate a new root and add it to the served trust bundle; it signs nothing
    /// yet. Then wait until every sidecar has fetched the bundle (one revocation_poll).
    Prepare {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Step 2: the prepared root signs every SVID from now on; the old root stays in the
    /// bundle. Then wait until every workload has renewed (at most one SVID TTL).
    Activate {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Step 3: remove the old root from the bundle (its files are kept in ca/retired/).
    /// Refused while SVIDs it signed are still valid and not renewed, unless --force.
    Retire {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// Retire even though SVIDs of the old root are still in use (those workloads
        /// are cut off until they join again).
        #[arg(long)]
        force: bool,
    },
    /// Show the roots: role, which one signs, fingerprints, validity, and what still
    /// uses the previous root.
    Status {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the Cedar schema generated from the configuration.
    Schema {
        /// The palisade.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Scan files and directories (or, with --git, every commit's added lines) for secrets.
    Scan(secrets::ScanArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Query audit records in an SQLite audit database.
    Query(AuditQueryArgs),
}

#[derive(Debug, Args)]
struct AuditQueryArgs {
    /// The audit database.
    #[arg(long)]
    db: PathBuf,
    /// Only records from this caller SPIFFE ID.
    #[arg(long)]
    caller: Option<String>,
    /// Only records of this service.
    #[arg(long)]
    service: Option<String>,
    /// Only allowed or only denied calls.
    #[arg(long)]
    decision: Option<palisade_audit::Decision>,
    /// Only records newer than this, e.g. 15m, 24h.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many (the most recent).
    #[arg(long)]
    limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// `palisade inventory [options]` builds the inventory; `palisade inventory diff` compares
/// two JSON snapshots.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct InventoryArgs {
    #[command(subcommand)]
    command: Option<InventoryCommand>,
    #[command(flatten)]
    build: InventoryBuildArgs,
}

#[derive(Debug, Subcommand)]
enum InventoryCommand {
    /// Show what appeared, disappeared or changed between two snapshots written by
    /// `palisade inventory --format json`.
    Diff {
        /// The older snapshot.
        old: PathBuf,
        /// The newer snapshot.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Debug, Args)]
struct InventoryBuildArgs {
    /// The palisade.toml: owners, specs and the default audit database.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The SQLite audit database (default: the config's audit path).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Compare SERVICE's traffic with this OpenAPI spec (overrides the config's
    /// `openapi`); repeatable.
    #[arg(long = "spec", value_name = "SERVICE=FILE", value_parser = parse_spec_arg)]
    specs: Vec<(String, PathBuf)>,
    /// Only records newer than this, e.g. 7d, 24h.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Output format: a table, the JSON snapshot (what `inventory diff` reads), or one
    /// reconstructed OpenAPI 3.1 document per service written into --out.
    #[arg(long, value_enum, default_value_t = InventoryFormat::Table)]
    format: InventoryFormat,
    /// Directory for --format openapi.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `SERVICE=FILE`.
fn parse_spec_arg(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((service, file)) if !service.is_empty() && !file.is_empty() => {
            Ok((service.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!("expected SERVICE=FILE, got {text:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InventoryFormat {
    Table,
    Json,
    Openapi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, &cli.command);
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            failure.exit_code
        }
    }
}

fn init_tracing(format: LogFormat, command: &Command) {
    // A sidecar reports what it does; one-shot commands stay quiet unless asked.
    let default = match command {
        Command::Proxy { .. } | Command::Control(ControlCommand::Serve { .. }) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
