//! Request validation: compiling a spec's operations once, then checking
//! each request's route, parameters, content type and body against them.

use std::fmt;

use http::HeaderMap;
use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, PatternOptions, Registry, ValidationError, Validator};
use serde_json::{Map, Value};

use crate::body::{self, Limits, MediaType};
use crate::dialect::{self, Dialect, RefError};
use crate::error::SpecError;
use crate::params::{self, DeclarationError, Declared, Parameters};
use crate::spec::{ApiSpec, Located, Operation};
use crate::violation::{first_error, from_schema_error, Subject, Violation};

/// How many steps a `pattern` with look-around or back-references may
/// backtrack before the value is refused (plain patterns run in linear time).
const BACKTRACK_LIMIT: usize = 100_000;

/// Settings of a [`RequestValidator`].
#[derive(Debug, Clone)]
pub struct ValidationOptions {
    /// Refuse what the spec does not declare: body fields (as if every object
    /// schema that lists `properties` said `unevaluatedProperties: false`)
    /// and query parameters. Default `true`; `false` is the per-service opt-out.
    pub strict: bool,
    /// The largest body the proxy buffers for [`RequestValidator::check_body`];
    /// larger ones get [`Violation::body_too_large`] (413). Default 1 MiB.
    pub max_body_bytes: usize,
    /// How deeply arrays and objects may nest in a JSON body. Default 32.
    /// Values above 127 act as 127: the JSON parser refuses deeper input.
    pub max_depth: usize,
    /// The most keys one JSON object may have. Default 1000.
    pub max_object_keys: usize,
    /// The most items one JSON array may have. Default 10 000.
    pub max_array_items: usize,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            strict: true,
            max_body_bytes: 1024 * 1024,
            max_depth: 32,
            max_object_keys: 1000,
            max_array_items: 10_000,
        }
    }
}

/// What the proxy must do with a request's body before calling
/// [`RequestValidator::check_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyExpectation {
    /// The operation has no `requestBody`: nothing to buffer (a body is
    /// refused by [`RequestValidator::check_content_type`]).
    None,
    /// JSON: buffer up to `max_body_bytes` and call `check_body`.
    Json {
        /// Whether the spec requires a body.
        required: bool,
    },
    /// Another media type: forward without validating its content.
    Other {
        /// Whether the spec requires a body.
        required: bool,
    },
}

/// A request's route, as found by [`RequestValidator::check_route`]; pass it
/// to the validator's other checks (it only fits the validator that made it).
#[derive(Debug, Clone)]
pub struct ValidatedRoute<'a> {
    /// The path template, as written in the spec.
    pub template: &'a str,
    /// The operation.
    pub operation: &'a Operation,
    /// (name, value) of each path parameter, as in [`crate::RouteMatch::Found`].
    pub path_params: Vec<(String, String)>,
    /// The operation's position in [`ApiSpec::operations`].
    index: usize,
}

/// Checks requests against a spec. Built once by
/// [`ApiSpec::compile_validator`] (every schema is compiled then), then
/// shared: it is `Send + Sync` and its checks take `&self`.
pub struct RequestValidator {
    spec: ApiSpec,
    options: ValidationOptions,
    operations: Vec<CompiledOperation>,
}

impl fmt::Debug for RequestValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestValidator")
            .field("spec", &self.spec.title())
            .field("options", &self.options)
            .field("operations", &self.operations.len())
            .finish()
    }
}

/// What was compiled for one operation.
#[derive(Debug)]
struct CompiledOperation {
    parameters: Parameters,
    body: Option<Body>,
}

/// An operation's `requestBody`.
#[derive(Debug)]
struct Body {
    required: bool,
    /// In spec order.
    media: Vec<Media>,
}

/// One entry of a request body's `content`.
struct Media {
    range: MediaType,
    /// For JSON media types with a `schema`.
    schema: Option<Validator>,
}

impl fmt::Debug for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Media")
            .field("range", &self.range.essence)
            .field("schema", &self.schema.is_some())
            .finish()
    }
}

impl Body {
    /// The `content` entry that best matches the request's Content-Type.
    fn select(&self, content_type: Option<&str>) -> Result<&Media, Violation> {
        let unsupported = |what: String| {
            Violation::new(
                Violation::UNSUPPORTED_MEDIA_TYPE,
                415,
                None,
                Some("contentType"),
                format!("{what}; the operation accepts {}", self.accepted()),
            )
        };
        let content_type =
            content_type.ok_or_else(|| unsupported("the request has no Content-Type".into()))?;
        let request = MediaType::parse(content_type)
            .filter(|media| !media.essence.contains('*'))
            .ok_or_else(|| unsupported("the Content-Type is not a valid media type".into()))?;
        let mut best: Option<(u8, &Media)> = None;
        for media in &self.media {
            if let Some(rank) = media.range.matches(&request) {
                if best.is_none_or(|(best_rank, _)| rank > best_rank) {
                    best = Some((rank, media));
                }
            }
        }
        let (_, media) = best.ok_or_else(|| {
            unsupported("the Content-Type is not one the operation accepts".into())
        })?;
        if request.is_json() && request.charset.as_deref().is_some_and(|c| c != "utf-8") {
            return Err(unsupported("JSON must be sent as UTF-8".into()));
        }
        Ok(media)
    }

    fn accepted(&self) -> String {
        let list: Vec<&str> = self
            .media
            .iter()
            .map(|m| m.range.essence.as_str())
            .collect();
        list.join(", ")
    }

    fn expectation(&self, json: bool) -> BodyExpectation {
        let required = self.required;
        if json {
            BodyExpectation::Json { required }
        } else {
            BodyExpectation::Other { required }
        }
    }
}

/// An operation's declarations, read before the schemas are rewritten and compiled.
struct Plan {
    label: String,
    parameters: Vec<Declared>,
    body: Option<BodyPlan>,
}

/// An operation's `requestBody`, read before its schemas are compiled.
struct BodyPlan {
    required: bool,
    /// (media range, pointer of its schema when it is JSON and has one).
    media: Vec<(MediaType, Option<String>)>,
}

impl ApiSpec {
    /// Compiles a validator for requests to this spec's operations.
    ///
    /// Every parameter and JSON body schema is compiled here, once: see the
    /// crate documentation for what is checked and what is supported. Errors
    /// name the file, the operation (`POST /orders`) and the JSON Pointer of
    /// the offending schema, parameter or `$ref`.
    pub fn compile_validator(
        &self,
        options: ValidationOptions,
    ) -> Result<RequestValidator, SpecError> {
        let mut document = dialect::document(self);
        let mut plans = Vec::new();
        let mut roots: Vec<(String, usize)> = Vec::new();
        for (index, operation) in self.operations().enumerate() {
            let label = format!("{} {}", operation.method, operation.template);
            let pointer = dialect::operation_pointer(&operation.template, &operation.method);
            let parameters = params::declare(&document, &pointer, &operation.template)
                .map_err(|e| self.declaration_error(&label, e))?;
            let body =
                plan_body(&document, &pointer).map_err(|e| self.declaration_error(&label, e))?;
            roots.extend(
                parameters
                    .iter()
                    .filter_map(|p| p.schema.clone())
                    .chain(
                        body.iter()
                            .flat_map(|b| b.media.iter().filter_map(|m| m.1.clone())),
                    )
                    .map(|schema| (schema, index)),
            );
            plans.push(Plan {
                label,
                parameters,
                body,
            });
        }

        let dialect = Dialect::of(self.openapi_version());
        dialect::rewrite(&mut document, &roots, dialect, options.strict).map_err(
            |(error, index)| {
                let label = plans
                    .get(index)
                    .map(|p| p.label.clone())
                    .unwrap_or_default();
                self.reference_error(&label, error)
            },
        )?;

        let registry = Registry::new()
            .add(
                dialect::DOCUMENT_URI,
                Draft::Draft202012.create_resource_ref(&document),
            )
            .and_then(|builder| builder.prepare())
            .map_err(|error| SpecError::InvalidSchema {
                path: self.origin().to_path_buf(),
                operation: "(whole spec)".to_owned(),
                pointer: String::new(),
                message: error.to_string(),
            })?;
        let parameter_compiler = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&registry)
            .offline()
            .should_validate_formats(true)
            .with_pattern_options(PatternOptions::fancy_regex().backtrack_limit(BACKTRACK_LIMIT));
        // `readOnly` refuses values in bodies only: a schema marked read-only
        // for the properties that use it (an id) may also type a path parameter.
        let body_compiler = parameter_compiler
            .clone()
            .with_keyword("readOnly", read_only_keyword);
        let compile = |compiler: &jsonschema::ValidationOptions<'_>,
                       pointer: &str,
                       label: &str,
                       strict: bool| {
            compiler
                .build(&dialect::root_schema(&document, pointer, strict))
                .map_err(|error| {
                    // Errors inside the document name their place in it.
                    let place = error.instance_path().as_str();
                    let in_document =
                        place.starts_with("/paths/") || place.starts_with("/components/");
                    SpecError::InvalidSchema {
                        path: self.origin().to_path_buf(),
                        operation: label.to_owned(),
                        pointer: if in_document { place } else { pointer }.to_owned(),
                        message: error.to_string(),
                    }
                })
        };

        let mut operations = Vec::with_capacity(plans.len());
        for plan in plans {
            let mut parameters = Vec::with_capacity(plan.parameters.len());
            for declared in plan.parameters {
                let validator = match &declared.schema {
                    Some(pointer) => {
                        Some(compile(&parameter_compiler, pointer, &plan.label, false)?)
                    }
                    None => None,
                };
                parameters.push(
                    declared
                        .finish(&document, validator)
                        .map_err(|e| self.declaration_error(&plan.label, e))?,
                );
            }
            let body = match plan.body {
                Some(body) => {
                    let mut media = Vec::with_capacity(body.media.len());
                    for (range, schema) in body.media {
                        let schema = match schema {
                            Some(pointer) => Some(compile(
                                &body_compiler,
                                &pointer,
                                &plan.label,
                                options.strict,
                            )?),
                            None => None,
                        };
                        media.push(Media { range, schema });
                    }
                    Some(Body {
                        required: body.required,
                        media,
                    })
                }
                None => None,
            };
            operations.push(CompiledOperation {
                parameters: Parameters(parameters),
                body,
            });
        }

        Ok(RequestValidator {
            spec: self.clone(),
            options,
            operations,
        })
    }

    fn declaration_error(&self, label: &str, error: DeclarationError) -> SpecError {
        match error {
            DeclarationError::Reference(error) => self.reference_error(label, error),
            DeclarationError::Unsupported(pointer, reason) => SpecError::UnsupportedOperation {
                path: self.origin().to_path_buf(),
                operation: label.to_owned(),
                pointer,
                reason,
            },
        }
    }

    fn reference_error(&self, label: &str, error: RefError) -> SpecError {
        SpecError::InvalidReference {
            path: self.origin().to_path_buf(),
            operation: label.to_owned(),
            pointer: error.pointer,
            reference: error.reference,
            reason: error.reason,
        }
    }
}

/// Reads an operation's `requestBody` (at `pointer`/requestBody), following `$ref`s.
fn plan_body(document: &Value, pointer: &str) -> Result<Option<BodyPlan>, DeclarationError> {
    let body_pointer = format!("{pointer}/requestBody");
    let Some(body) = document.pointer(&body_pointer) else {
        return Ok(None);
    };
    let (at, body) =
        dialect::follow(document, body_pointer, body).map_err(DeclarationError::Reference)?;
    let unsupported = |reason: String| DeclarationError::Unsupported(at.clone(), reason);
    let content = body
        .get("content")
        .and_then(Value::as_object)
        .filter(|content| !content.is_empty())
        .ok_or_else(|| unsupported("the request body has no media types in `content`".into()))?;
    let mut media = Vec::with_capacity(content.len());
    for (key, entry) in content {
        let range = MediaType::parse(key)
            .ok_or_else(|| unsupported(format!("`{key}` is not a valid media type")))?;
        let schema = (range.is_json() && entry.get("schema").is_some())
            .then(|| format!("{at}/content/{}/schema", dialect::escape(key)));
        media.push((range, schema));
    }
    Ok(Some(BodyPlan {
        required: body
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        media,
    }))
}

/// `readOnly: true` refuses any value: request schemas are only applied to
/// what the client sent.
fn read_only_keyword<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _location: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    Ok(Box::new(ReadOnly(value == &Value::Bool(true))))
}

/// The `readOnly` keyword: `ReadOnly(true)` refuses every value.
struct ReadOnly(bool);

impl<'i> Keyword<'i> for ReadOnly {
    fn validate(&self, _instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.0 {
            Err(ValidationError::custom(
                "the property is read-only and must not be sent",
            ))
        } else {
            Ok(())
        }
    }

    fn is_valid(&self, _instance: &'i Value) -> bool {
        !self.0
    }
}

impl RequestValidator {
    /// The options it was compiled with.
    pub fn options(&self) -> &ValidationOptions {
        &self.options
    }

    /// Route + method check. `path` is the request path without its query
    /// string, still percent-encoded (see [`ApiSpec::match_route`]).
    ///
    /// Ok gives the route to pass to the other checks. A path no template
    /// matches is [`Violation::UNKNOWN_ROUTE`] (404); a known path with
    /// another method is [`Violation::METHOD_NOT_ALLOWED`] (405), whose
    /// message lists the allowed methods (for the `Allow` header, take them
    /// from [`ApiSpec::match_route`]). `HEAD` on a template that declares
    /// `GET` but not `HEAD` is checked as that `GET` (RFC 9110, 9.3.2).
    pub fn check_route(&self, method: &str, path: &str) -> Result<ValidatedRoute<'_>, Violation> {
        match self.spec.locate(method, path) {
            Located::Found {
                index,
                operation,
                params,
            } => Ok(ValidatedRoute {
                template: &operation.template,
                operation,
                path_params: params,
                index,
            }),
            Located::MethodNotAllowed { allowed, .. }
                if method == "HEAD" && allowed.contains(&"GET") =>
            {
                self.check_route("GET", path)
            }
            Located::MethodNotAllowed { template, allowed } => Err(Violation::new(
                Violation::METHOD_NOT_ALLOWED,
                405,
                None,
                Some("method"),
                format!(
                    "the method is not allowed on {template}; allowed: {}",
                    allowed.join(", ")
                ),
            )),
            Located::NotFound => Err(unknown_route()),
        }
    }

    /// Checks the path parameters, the query string (raw, without the `?`)
    /// and the header (and cookie) parameters. In strict mode a query
    /// parameter the operation does not declare is
    /// [`Violation::UNKNOWN_PARAMETER`]; any other failure is
    /// [`Violation::INVALID_PARAMETER`].
    pub fn check_parameters(
        &self,
        route: &ValidatedRoute<'_>,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), Violation> {
        self.compiled(route)?.parameters.check(
            &route.path_params,
            query,
            headers,
            self.options.strict,
        )
    }

    /// What the proxy must do with the body: nothing, or buffer it (up to
    /// `max_body_bytes`) and call [`RequestValidator::check_body`].
    ///
    /// `Json` when the operation accepts a JSON media type. For an operation
    /// that also accepts others (a form, a file), use
    /// [`RequestValidator::body_expectation_for`] with the Content-Type.
    pub fn body_expectation(&self, route: &ValidatedRoute<'_>) -> BodyExpectation {
        match self.compiled(route).ok().and_then(|op| op.body.as_ref()) {
            None => BodyExpectation::None,
            Some(body) => body.expectation(body.media.iter().any(|m| m.range.is_json())),
        }
    }

    /// [`RequestValidator::body_expectation`] for a request with this
    /// Content-Type: `Json` only when the type is a JSON one the operation
    /// accepts. When the operation does not accept it at all, the answer is
    /// that of `body_expectation` (and `check_content_type` refuses the request).
    pub fn body_expectation_for(
        &self,
        route: &ValidatedRoute<'_>,
        content_type: Option<&str>,
    ) -> BodyExpectation {
        let Some(body) = self.compiled(route).ok().and_then(|op| op.body.as_ref()) else {
            return BodyExpectation::None;
        };
        match body.select(content_type) {
            Ok(_) => body.expectation(
                content_type
                    .and_then(MediaType::parse)
                    .is_some_and(|media| media.is_json()),
            ),
            Err(_) => self.body_expectation(route),
        }
    }

    /// Checks that a body is present when required, absent when the
    /// operation has no `requestBody`, and of a media type the operation
    /// accepts (`application/json` matches `application/json` first, then
    /// `application/*`, then `*/*`; JSON must be UTF-8).
    pub fn check_content_type(
        &self,
        route: &ValidatedRoute<'_>,
        content_type: Option<&str>,
        has_body: bool,
    ) -> Result<(), Violation> {
        match (&self.compiled(route)?.body, has_body) {
            (None, false) => Ok(()),
            (None, true) => Err(unexpected_body()),
            (Some(body), false) if body.required => Err(missing_body()),
            (Some(_), false) => Ok(()),
            (Some(body), true) => body.select(content_type).map(|_| ()),
        }
    }

    /// Limits pre-scan, parse, schema: checks a buffered JSON body against
    /// the schema of the operation's first JSON media type, and returns the
    /// parsed value so that later stages (injection scanning) reuse it.
    ///
    /// For an operation with several JSON media types (say
    /// `application/json` and `application/merge-patch+json` with different
    /// schemas), use [`RequestValidator::check_body_for`].
    pub fn check_body(&self, route: &ValidatedRoute<'_>, body: &[u8]) -> Result<Value, Violation> {
        self.check_body_for(route, None, body)
    }

    /// [`RequestValidator::check_body`] against the schema of the media type
    /// matching `content_type` (the first JSON one when `None`).
    ///
    /// In order: size (`max_body_bytes`, 413), presence (an empty body is
    /// `Ok(Value::Null)` unless the body is required), the pre-scan of
    /// depth, keys and items over the raw bytes (no value is built before
    /// it passes), parsing (duplicate keys refused), then the schema.
    pub fn check_body_for(
        &self,
        route: &ValidatedRoute<'_>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Value, Violation> {
        let empty = body.iter().all(u8::is_ascii_whitespace);
        let Some(expected) = &self.compiled(route)?.body else {
            return if empty {
                Ok(Value::Null)
            } else {
                Err(unexpected_body())
            };
        };
        if body.len() > self.options.max_body_bytes {
            return Err(Violation::body_too_large(self.options.max_body_bytes));
        }
        let media = match content_type {
            Some(content_type) => {
                let media = expected.select(Some(content_type))?;
                if !MediaType::parse(content_type).is_some_and(|m| m.is_json()) {
                    return Err(Violation::new(
                        Violation::UNSUPPORTED_MEDIA_TYPE,
                        415,
                        None,
                        Some("contentType"),
                        "the Content-Type is not a JSON media type, so the body cannot be checked as JSON",
                    ));
                }
                media
            }
            None => expected
                .media
                .iter()
                .find(|m| m.range.is_json())
                .ok_or_else(|| {
                    Violation::new(
                        Violation::UNSUPPORTED_MEDIA_TYPE,
                        415,
                        None,
                        Some("contentType"),
                        format!(
                            "the operation accepts no JSON body; it accepts {}",
                            expected.accepted()
                        ),
                    )
                })?,
        };
        if empty {
            return if expected.required {
                Err(missing_body())
            } else {
                Ok(Value::Null)
            };
        }
        body::prescan(
            body,
            Limits {
                depth: self.options.max_depth,
                keys: self.options.max_object_keys,
                items: self.options.max_array_items,
            },
        )?;
        let value = body::parse(body)?;
        let violation = media
            .schema
            .as_ref()
            .and_then(|schema| first_error(schema, &value))
            .map(|error| from_schema_error(&error, &Subject::Body));
        match violation {
            Some(violation) => Err(violation),
            None => Ok(value),
        }
    }

    /// What was compiled for the route's operation.
    fn compiled(&self, route: &ValidatedRoute<'_>) -> Result<&CompiledOperation, Violation> {
        self.operations.get(route.index).ok_or_else(unknown_route)
    }
}

fn unknown_route() -> Violation {
    Violation::new(
        Violation::UNKNOWN_ROUTE,
        404,
        None,
        None,
        "no path template of the spec matches the path",
    )
}

fn unexpected_body() -> Violation {
    Violation::new(
        Violation::UNEXPECTED_BODY,
        400,
        None,
        Some("requestBody"),
        "the operation takes no request body, but one was sent",
    )
}

fn missing_body() -> Violation {
    Violation::new(
        Violation::MISSING_BODY,
        400,
        None,
        Some("required"),
        "the operation requires a request body, but none was sent",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RequestValidator>();
        assert_send_sync::<Violation>();
    }
}
