//! `palisade lint`: the OpenAPI security linter as a CI gate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use palisade_ci_gates::lint::Level;
use palisade_ci_gates::{LintConfig, LintOptions, Linter};

use crate::commands::Failure;
use crate::secrets::ReportFormat;

/// `palisade lint` arguments.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// OpenAPI 3.0/3.1 specs (YAML or JSON), or directories to search for them.
    #[arg(required = true)]
    specs: Vec<PathBuf>,
    /// Configuration: rule levels (`off` too) and accepted findings with reasons.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Exit 1 when a finding is at or above this level.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
}

/// The level that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Any finding.
    Info,
}

impl From<FailOn> for Level {
    fn from(level: FailOn) -> Self {
        match level {
            FailOn::Error => Level::Error,
            FailOn::Warn => Level::Warn,
            FailOn::Info => Level::Info,
        }
    }
}

/// Lints the specs: exit 0 when no finding reaches `--fail-on`, 1 when one
/// does, 2 when a spec or the configuration cannot be read (the error names
/// the file, line and column).
pub fn lint(args: LintArgs) -> Result<ExitCode, Failure> {
    let config = match &args.config {
        Some(path) => LintConfig::from_file(path)?,
        None => LintConfig::default(),
    };
    let linter = Linter::new(
        config,
        LintOptions {
            base_dir: std::env::current_dir().ok(),
            today: None,
        },
    );
    let report = linter.lint_paths(&args.specs)?;
    let text = report.render(args.format.into());
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?,
        None => print!("{text}"),
    }
    let threshold = Level::from(args.fail_on).severity();
    Ok(if report.count_at_or_above(threshold) > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
