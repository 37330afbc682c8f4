//! `palisade secrets scan`: the secret-scanning CI gate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use palisade_ci_gates::secrets::TerminalProgress;
use palisade_ci_gates::{Baseline, Format, RuleSet, ScanOptions, Scanner};

use crate::commands::Failure;

/// `palisade secrets scan` arguments.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan (with --git: the repository).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Scan the lines every commit added (history), not the working tree.
    #[arg(long)]
    git: bool,
    /// With --git: only commits not reachable from this ref (`REF..HEAD`).
    #[arg(long, requires = "git")]
    since: Option<String>,
    /// Rules file merged over the built-in rules (add, disable, override, allowlist).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A previous JSON (or SARIF) report: its findings are accepted.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also scan what .gitignore excludes.
    #[arg(long)]
    no_gitignore: bool,
}

/// How findings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Human-readable lines and a summary.
    Text,
    /// JSON (what --baseline reads).
    Json,
    /// SARIF 2.1.0 for code scanning (GitHub, GitLab, ...).
    Sarif,
}

impl From<ReportFormat> for Format {
    fn from(format: ReportFormat) -> Self {
        match format {
            ReportFormat::Text => Format::Text,
            ReportFormat::Json => Format::Json,
            ReportFormat::Sarif => Format::Sarif,
        }
    }
}

/// Runs the scan: exit 0 when nothing is found, 1 on findings, 2 on bad input.
pub fn scan(args: ScanArgs) -> Result<ExitCode, Failure> {
    let rules = match &args.config {
        Some(path) => RuleSet::with_config_file(path)?,
        None => RuleSet::builtin()?,
    };
    let baseline = args
        .baseline
        .as_deref()
        .map(Baseline::from_file)
        .transpose()?;
    let base_dir = match (args.git, args.paths.as_slice()) {
        (true, [repo]) => Some(repo.clone()),
        (true, _) => {
            return Err(anyhow::anyhow!("--git scans one repository: give exactly one path").into())
        }
        (false, _) => std::env::current_dir().ok(),
    };
    let options = ScanOptions {
        respect_gitignore: !args.no_gitignore,
        base_dir,
        baseline,
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(rules, options).with_progress(Arc::new(TerminalProgress::stderr()));
    let report = if args.git {
        scanner.scan_git_history(&args.paths[0], args.since.as_deref())?
    } else {
        scanner.scan_paths(&args.paths)?
    };
    let text = report.render(args.format.into());
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(if report.has_findings() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
