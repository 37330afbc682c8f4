//! Errors of this crate.

use std::fmt;
use std::path::PathBuf;

/// What went wrong loading rules or configuration, reading inputs (files,
/// specs) or running git.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rules/config file is not valid TOML or has the wrong shape.
    #[error("{source_name}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    RulesSyntax {
        /// The file (or `<built-in>`).
        source_name: String,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A rules/config file parsed but some definitions are wrong; every
    /// problem is listed, not only the first.
    #[error("{source_name}: {} invalid rule definition{}:\n{}", errors.len(), if errors.len() == 1 { "" } else { "s" }, RuleErrors(errors))]
    RulesInvalid {
        /// The file (or `<built-in>`).
        source_name: String,
        /// Each problem.
        errors: Vec<RuleError>,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `git` binary is not installed or not on `PATH`.
    #[error("git history scan needs the `git` binary on PATH: {0}")]
    GitNotFound(#[source] std::io::Error),
    /// A git command failed (not a repository, unknown revision, ...).
    #[error("git {command} failed: {message}")]
    Git {
        /// The git subcommand and arguments.
        command: String,
        /// git's stderr, trimmed.
        message: String,
    },
    /// A spec (or a file one of its `$ref`s names) is not valid YAML or JSON.
    #[error("{}:{line}:{column}: {message}", path.display())]
    SpecSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line where parsing stopped.
        line: u32,
        /// 1-based column (Unicode code points).
        column: u32,
        /// The parser's message.
        message: String,
    },
    /// A file given as a spec is not an OpenAPI 3.0 or 3.1 document.
    #[error("{}:{line}:{column}: not an OpenAPI 3.0/3.1 document: {message}", path.display())]
    NotOpenApi {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending field (or of the document).
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong.
        message: String,
    },
    /// A baseline file is not a previous report.
    #[error("baseline {}: {message}", path.display())]
    Baseline {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One problem in a rule definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// 1-based line of the rule (or of the section) in its file, when known.
    pub line: Option<usize>,
    /// The rule id, when the problem belongs to a rule.
    pub rule: Option<String>,
    /// The field at fault (`regex`, `keywords`, ...).
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        if let Some(field) = self.field {
            write!(f, "`{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

struct RuleErrors<'a>(&'a [RuleError]);

impl fmt::Display for RuleErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {e}")?;
        }
        Ok(())
    }
}
