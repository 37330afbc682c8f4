#![doc = include_str!("../README.md")]

pub mod error;
pub mod lint;
pub mod report;
pub mod secrets;

pub use error::{Error, RuleError};
pub use lint::{LintConfig, LintOptions, Linter};
pub use report::{Finding, Format, Report, Severity};
pub use secrets::{Baseline, RuleSet, ScanOptions, Scanner};
