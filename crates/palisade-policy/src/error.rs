//! Error types: [`PolicyError`] for setup failures, [`PolicyLoadError`] for
//! everything wrong with a policy directory.

use std::fmt;
use std::path::PathBuf;

/// Errors setting up the policy layer (schema generation, engine creation,
/// the reload watcher).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Two configured services share a name.
    #[error("service name `{name}` is configured more than once")]
    DuplicateServiceName {
        /// The repeated name.
        name: String,
    },
    /// Two configured services share a SPIFFE ID.
    #[error("SPIFFE ID `{spiffe_id}` is used by both `{first}` and `{second}`")]
    DuplicateSpiffeId {
        /// The repeated SPIFFE ID.
        spiffe_id: String,
        /// The first service using it.
        first: String,
        /// The second service using it.
        second: String,
    },
    /// A service name cannot be used in an endpoint id (`<service>:<route>`).
    #[error("service name `{name}` is not usable in policies: it must be non-empty and must not contain `:`")]
    InvalidServiceName {
        /// The offending name.
        name: String,
    },
    /// The generated Cedar schema was rejected by Cedar (an internal error).
    #[error("the generated Cedar schema is invalid: {message}")]
    Schema {
        /// Cedar's message.
        message: String,
    },
    /// [`spawn_reloader`](crate::spawn_reloader) was called outside a tokio runtime.
    #[error("the policy reloader must be started from inside a tokio runtime")]
    NoRuntime,
    /// The file-system watcher could not be set up.
    #[error("cannot watch policy directory {}: {source}", .dir.display())]
    Watch {
        /// The policy directory.
        dir: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// The SIGHUP handler could not be installed.
    #[error("cannot install the SIGHUP handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// What kind of problem a [`PolicyProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The directory or a file could not be read.
    Io,
    /// A file is not valid Cedar policy syntax (or uses an unsupported
    /// feature such as templates).
    Parse,
    /// A policy does not type-check against the Palisade schema.
    Validation,
    /// Two policies have the same id.
    DuplicateId,
    /// A policy names a `Palisade::Endpoint` that cannot exist.
    UnknownEndpoint,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Io => "io error",
            Self::Parse => "parse error",
            Self::Validation => "validation error",
            Self::DuplicateId => "duplicate policy id",
            Self::UnknownEndpoint => "unknown endpoint",
        })
    }
}

/// One problem found while loading a policy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// What went wrong.
    pub kind: ProblemKind,
    /// The file (or, for a directory-level I/O error, the directory).
    pub file: PathBuf,
    /// 1-based line in `file`, when the problem has a position.
    pub line: Option<usize>,
    /// Human-readable description.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.kind, self.message)
    }
}

/// A policy directory could not be loaded. Holds every problem found, not
/// just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot load policies from {}: {} problem(s)\n{}", .dir.display(), .problems.len(), render_problems(.problems))]
pub struct PolicyLoadError {
    /// The directory that was loaded.
    pub dir: PathBuf,
    /// All problems, in file order (never empty).
    pub problems: Vec<PolicyProblem>,
}

fn render_problems(problems: &[PolicyProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
