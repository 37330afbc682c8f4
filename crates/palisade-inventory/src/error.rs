//! The crate's errors: one type per concern, each named as the fact it reports.

/// A name that is not one of the [`DataClass`](crate::DataClass) spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data class `{0}`")]
pub struct UnknownDataClass(pub String);

/// A name that is not one of the [`Category`](crate::Category) spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown data category `{0}`")]
pub struct UnknownCategory(pub String);

/// Why [`PathTemplater::observe`](crate::PathTemplater::observe) refused an
/// observation. None of them contains the path: it may carry personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The path does not start with `/` (an absolute-form or authority-form
    /// request target, or garbage).
    #[error("the path does not start with '/'")]
    NotAbsolute,
    /// The path is longer than the templater looks at.
    #[error("the path is {len} bytes long; at most {max} are observed")]
    TooLong {
        /// Its length in bytes (without query and fragment).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has more segments than [`TemplaterOptions::max_segments`](crate::TemplaterOptions::max_segments).
    #[error("the path has {count} segments; at most {max} are observed")]
    TooManySegments {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A segment contains `{` or `}`, which templates reserve for
    /// parameters (a real client sends them percent-encoded).
    #[error("segment {index} of the path contains a brace")]
    Brace {
        /// The 0-based index of the segment.
        index: usize,
    },
    /// The method is not an HTTP method token (RFC 9110 `tchar`s, at most
    /// 32 of them).
    #[error("the method is not an HTTP token of at most 32 characters")]
    InvalidMethod,
    /// The path has a new shape and the templater already holds
    /// [`TemplaterOptions::max_nodes`](crate::TemplaterOptions::max_nodes) nodes.
    #[error(
        "the templater holds its limit of about {max} nodes; new path shapes are not recorded"
    )]
    Full {
        /// The limit.
        max: usize,
    },
}

/// Invalid [`TemplaterOptions`](crate::TemplaterOptions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// `word_threshold` below 2 would make every word a parameter.
    #[error("word_threshold must be at least 2, not {0}")]
    WordThreshold(usize),
    /// `shape_threshold` below 2 would make every value with digits a parameter.
    #[error("shape_threshold must be at least 2, not {0}")]
    ShapeThreshold(usize),
    /// `max_segments` of 0 would refuse every path.
    #[error("max_segments must be at least 1")]
    MaxSegments,
    /// `max_nodes` of 0 would refuse every path.
    #[error("max_nodes must be at least 1")]
    MaxNodes,
}

/// Why a JSON snapshot could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not JSON, or not a snapshot of this format.
    #[error("not an inventory snapshot: {0}")]
    Parse(#[source] serde_json::Error),
    /// A `format` this build does not read.
    #[error(
        "inventory snapshot format {0} is not supported; this build reads format {supported}",
        supported = crate::SNAPSHOT_FORMAT
    )]
    UnsupportedFormat(String),
    /// No `format` field: not written by `palisade inventory --format json`.
    #[error("not an inventory snapshot: no \"format\" field")]
    MissingFormat,
}

/// Why the inventory could not be built from an audit store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// Reading the audit database failed (it names the file).
    #[error(transparent)]
    Audit(#[from] palisade_audit::AuditError),
}
