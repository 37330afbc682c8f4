//! Errors raised while loading a spec.

use std::path::PathBuf;

/// Why an OpenAPI spec could not be loaded.
///
/// Every variant names the file the spec came from (the `origin` given to
/// [`ApiSpec::from_str`](crate::ApiSpec::from_str)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read OpenAPI spec {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The text is not valid JSON/YAML, or a field has the wrong type.
    ///
    /// `message` is the parser's message, which already carries the location
    /// when the parser knows it; `line` and `column` (1-based) repeat it.
    #[error("{}: invalid {format}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// `"JSON"` or `"YAML"`: the syntax the text was parsed as.
        format: &'static str,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column of the error, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },

    /// The document has no `openapi` field.
    #[error("{}: not an OpenAPI document: the `openapi` version field is missing", .path.display())]
    MissingVersion {
        /// The file.
        path: PathBuf,
    },

    /// The document is a Swagger 2.0 spec (it has a `swagger` field).
    #[error(
        "{}: Swagger {version} specs are not supported; convert the spec to OpenAPI 3.0 or 3.1 \
         (for example with swagger2openapi)",
        .path.display()
    )]
    Swagger2 {
        /// The file.
        path: PathBuf,
        /// The value of the `swagger` field, e.g. `2.0`.
        version: String,
    },

    /// The `openapi` field is not a 3.0.x or 3.1.x version string.
    #[error(
        "{}: unsupported OpenAPI version {version}; expected a \"3.0.x\" or \"3.1.x\" string",
        .path.display()
    )]
    UnsupportedVersion {
        /// The value of the `openapi` field as written (JSON-encoded if it is not a string).
        version: String,
        /// The file.
        path: PathBuf,
    },

    /// The document has no `info.title` string.
    #[error("{}: the required field `info.title` is missing", .path.display())]
    MissingTitle {
        /// The file.
        path: PathBuf,
    },

    /// A key of `paths` is not a valid path template.
    #[error("{}: invalid path template `{template}`: {reason}", .path.display())]
    InvalidTemplate {
        /// The file.
        path: PathBuf,
        /// The template as written in the spec.
        template: String,
        /// What is wrong with it.
        #[source]
        reason: TemplateError,
    },

    /// Two templates match exactly the same request paths
    /// (e.g. `/a/{id}` and `/a/{name}`), which OpenAPI forbids.
    #[error("{}: path templates `{first}` and `{second}` are equivalent", .path.display())]
    ConflictingTemplates {
        /// The file.
        path: PathBuf,
        /// The template that came first in the spec.
        first: String,
        /// The template that came later.
        second: String,
    },

    /// A path item is a `$ref`, which is not supported yet.
    #[error(
        "{}: path item `{template}` is a $ref ({reference}); referenced path items are not supported, inline it",
        .path.display()
    )]
    UnsupportedPathItemRef {
        /// The file.
        path: PathBuf,
        /// The path template whose item is a reference.
        template: String,
        /// The reference, JSON-encoded if it is not a string.
        reference: String,
    },

    /// An entry of a `parameters` list is neither a `$ref` nor an object
    /// with string `name` and `in` fields.
    #[error("{}: parameter #{index} of {location} {reason}", .path.display())]
    InvalidParameter {
        /// The file.
        path: PathBuf,
        /// Where the list is: `GET /things/{id}` or `/things/{id} (path item)`.
        location: String,
        /// 0-based position in the list.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A `$ref` in a parameter, request body or schema that request
    /// validation cannot follow: not a local `#/...` reference into the spec
    /// document, or pointing at nothing.
    #[error(
        "{}: {operation}: cannot resolve $ref `{reference}` at {pointer}: {reason}",
        .path.display()
    )]
    InvalidReference {
        /// The file.
        path: PathBuf,
        /// The operation that uses it: `POST /orders`.
        operation: String,
        /// JSON Pointer of the object holding the `$ref`.
        pointer: String,
        /// The reference as written.
        reference: String,
        /// Why it cannot be followed.
        reason: &'static str,
    },

    /// A parameter or request body that request validation cannot check, or
    /// that is malformed: an unsupported `style`, a `content`-encoded
    /// parameter, an object-typed parameter, a `requestBody` without `content`...
    #[error("{}: {operation}: {pointer}: {reason}", .path.display())]
    UnsupportedOperation {
        /// The file.
        path: PathBuf,
        /// The operation: `GET /orders`.
        operation: String,
        /// JSON Pointer of the parameter or request body in the spec.
        pointer: String,
        /// What is unsupported or wrong, naming the parameter.
        reason: String,
    },

    /// A schema that the JSON Schema compiler refuses (an invalid regular
    /// expression, an unknown `type`, a wrongly typed keyword...).
    #[error("{}: {operation}: invalid schema at {pointer}: {message}", .path.display())]
    InvalidSchema {
        /// The file.
        path: PathBuf,
        /// The operation whose parameter or body uses the schema: `POST /orders`.
        operation: String,
        /// JSON Pointer of the schema in the spec.
        pointer: String,
        /// The compiler's message.
        message: String,
    },
}

/// What is wrong with a path template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template does not start with `/`.
    #[error("it does not start with '/'")]
    MissingLeadingSlash,
    /// A `{` without its `}` (or the reverse), nested braces, or a
    /// parameter spanning a `/`.
    #[error("unbalanced braces in segment `{0}`")]
    UnbalancedBraces(String),
    /// `{}`.
    #[error("empty parameter name in segment `{0}`")]
    EmptyParameterName(String),
    /// `{a}{b}`: nothing separates the two parameters, so no match could split them.
    #[error("parameters must be separated by literal text in segment `{0}`")]
    AdjacentParameters(String),
    /// The same parameter name appears twice.
    #[error("duplicate parameter name `{0}`")]
    DuplicateParameter(String),
}
