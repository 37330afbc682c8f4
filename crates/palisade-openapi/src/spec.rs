//! The loaded spec, its operations and request matching.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::SpecError;
use crate::raw::{RawPathItem, RawSpec, VersionProbe};
use crate::router::Router;
use crate::template::{self, normalize, Segment};

/// One operation of the spec: a method on a path template.
///
/// Parameters and the request body are kept as written (`$ref`s
/// unresolved) for request validation to build on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Operation {
    /// The HTTP method, upper-case (`GET`, `POST`, ...).
    pub method: String,
    /// The path template, as written in the spec (`/customers/{id}`).
    pub template: String,
    /// The `operationId`, if the spec gives one.
    pub operation_id: Option<String>,
    /// The path item's parameters merged with the operation's: path-level
    /// parameters that the operation does not override come first, then the
    /// operation's own, each list in spec order. A parameter is identified by
    /// its (`name`, `in`) pair, or by its `$ref` string until references are
    /// resolved.
    pub parameters: Vec<Value>,
    /// The `requestBody` object, if any.
    pub request_body: Option<Value>,
    /// Whether the operation is marked `deprecated: true`.
    pub deprecated: bool,
    /// The `responses` object as written (status code or `1XX`..`5XX` or
    /// `default` → response object or `$ref`), if the spec gives one.
    pub responses: Option<Value>,
}

/// The result of [`ApiSpec::match_route`].
#[derive(Debug, Clone, PartialEq)]
pub enum RouteMatch<'a> {
    /// A template matches the path and has an operation for the method.
    Found {
        /// The operation.
        operation: &'a Operation,
        /// (name, value) of each path parameter, in template order. Values
        /// are not percent-decoded, except that escapes of unreserved
        /// characters are (see the crate documentation); `%2F` stays `%2F`.
        params: Vec<(String, String)>,
    },
    /// A template matches the path but has no operation for the method.
    MethodNotAllowed {
        /// The template that matched.
        template: &'a str,
        /// The methods it does have, upper-case, in spec order.
        allowed: Vec<&'a str>,
    },
    /// No template matches the path.
    NotFound,
}

/// A route: a path template with its operations.
#[derive(Debug, Clone)]
struct Route {
    template: String,
    segments: Vec<Segment>,
    operations: Vec<Operation>,
    /// The position of `operations[0]` in [`ApiSpec::operations`].
    first_operation: usize,
}

/// [`RouteMatch`], with the position of the found operation in
/// [`ApiSpec::operations`] so that per-operation tables can be indexed.
#[derive(Debug)]
pub(crate) enum Located<'a> {
    /// See [`RouteMatch::Found`].
    Found {
        /// The position of `operation` in [`ApiSpec::operations`].
        index: usize,
        operation: &'a Operation,
        params: Vec<(String, String)>,
    },
    /// See [`RouteMatch::MethodNotAllowed`].
    MethodNotAllowed {
        template: &'a str,
        allowed: Vec<&'a str>,
    },
    /// See [`RouteMatch::NotFound`].
    NotFound,
}

impl Route {
    /// The path parameters, for segments this route is known to match.
    fn params(&self, segments: &[Cow<'_, str>]) -> Vec<(String, String)> {
        let mut params = Vec::new();
        let mut captures = Vec::new();
        for (segment, value) in self.segments.iter().zip(segments) {
            match segment {
                Segment::Literal(_) => {}
                Segment::Param(name) => params.push((name.clone(), value.to_string())),
                Segment::Mixed(mixed) => {
                    captures.clear();
                    if mixed.captures(value, &mut captures) {
                        params.extend(
                            mixed
                                .param_names()
                                .zip(&captures)
                                .map(|(name, value)| (name.to_owned(), (*value).to_owned())),
                        );
                    }
                }
            }
        }
        params
    }
}

/// An OpenAPI 3.0.x or 3.1.x spec, compiled for request matching.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    version: String,
    title: String,
    routes: Vec<Route>,
    router: Router,
    components: Option<Value>,
    origin: PathBuf,
}

impl ApiSpec {
    /// Loads a spec from a `.json`, `.yaml` or `.yml` file.
    ///
    /// Errors name the file and, for syntax errors and wrongly typed fields,
    /// the line and column.
    pub fn load(path: &Path) -> Result<ApiSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    /// Parses a spec from text. `origin` is only used to choose the syntax
    /// (JSON for a `.json` extension, YAML otherwise, YAML being a superset of
    /// JSON) and to name the spec in errors.
    pub fn from_str(text: &str, origin: &Path) -> Result<ApiSpec, SpecError> {
        let format = Format::of(origin);
        let version = check_version(format.parse(text, origin)?, origin)?;
        let raw: RawSpec = format.parse(text, origin)?;
        let title =
            raw.info
                .and_then(|info| info.title)
                .ok_or_else(|| SpecError::MissingTitle {
                    path: origin.to_path_buf(),
                })?;

        let mut routes: Vec<Route> = Vec::new();
        let mut router = Router::default();
        let mut operation_count = 0;
        for (template, item) in raw.paths.unwrap_or_default().0 {
            let mut route = compile_route(template, item, origin)?;
            if route.operations.is_empty() {
                continue;
            }
            if let Err(existing) = router.insert(&route.segments, routes.len()) {
                return Err(SpecError::ConflictingTemplates {
                    path: origin.to_path_buf(),
                    first: routes
                        .get(existing)
                        .map(|r| r.template.clone())
                        .unwrap_or_default(),
                    second: route.template,
                });
            }
            route.first_operation = operation_count;
            operation_count += route.operations.len();
            routes.push(route);
        }

        Ok(ApiSpec {
            version,
            title,
            routes,
            router,
            components: raw.components,
            origin: origin.to_path_buf(),
        })
    }

    /// The `openapi` version string, e.g. `3.0.3` or `3.1.0`.
    pub fn openapi_version(&self) -> &str {
        &self.version
    }

    /// The `info.title`.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The `components` object as written, for resolving `$ref`s.
    pub fn components(&self) -> Option<&Value> {
        self.components.as_ref()
    }

    /// Where the spec came from, as given to [`ApiSpec::from_str`]; errors name it.
    pub(crate) fn origin(&self) -> &Path {
        &self.origin
    }

    /// The path templates that have at least one operation, in spec order.
    pub fn route_templates(&self) -> Vec<&str> {
        self.routes.iter().map(|r| r.template.as_str()).collect()
    }

    /// Every operation, in spec order (paths, then methods within a path).
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.routes.iter().flat_map(|r| r.operations.iter())
    }

    /// Matches a request against the spec's templates.
    ///
    /// `path` is the request path as received: starting with `/`, still
    /// percent-encoded, and without the query string, which the caller must
    /// remove (a `?` here is treated as part of a segment). `method` is
    /// compared case-sensitively with the upper-case method names.
    ///
    /// The path alone picks the template (see the crate documentation for
    /// the ranking); only then is the method looked up, so a method missing
    /// from the best template gives [`RouteMatch::MethodNotAllowed`] even if a
    /// less specific template has it. Paths with a `.` or `..` segment (also
    /// when written `%2E`) never match.
    pub fn match_route(&self, method: &str, path: &str) -> RouteMatch<'_> {
        match self.locate(method, path) {
            Located::Found {
                operation, params, ..
            } => RouteMatch::Found { operation, params },
            Located::MethodNotAllowed { template, allowed } => {
                RouteMatch::MethodNotAllowed { template, allowed }
            }
            Located::NotFound => RouteMatch::NotFound,
        }
    }

    /// [`ApiSpec::match_route`], also giving the operation's position.
    pub(crate) fn locate(&self, method: &str, path: &str) -> Located<'_> {
        let Some(rest) = path.strip_prefix('/') else {
            return Located::NotFound;
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if segments.len() == self.router.max_segments() {
                return Located::NotFound;
            }
            let segment = normalize(raw);
            if segment == "." || segment == ".." {
                return Located::NotFound;
            }
            segments.push(segment);
        }
        let Some(route) = self
            .router
            .find(&segments)
            .and_then(|index| self.routes.get(index))
        else {
            return Located::NotFound;
        };
        match route
            .operations
            .iter()
            .enumerate()
            .find(|(_, op)| op.method == method)
        {
            Some((at, operation)) => Located::Found {
                index: route.first_operation + at,
                operation,
                params: route.params(&segments),
            },
            None => Located::MethodNotAllowed {
                template: &route.template,
                allowed: route
                    .operations
                    .iter()
                    .map(|op| op.method.as_str())
                    .collect(),
            },
        }
    }
}

/// The syntax a spec is parsed as.
#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Yaml,
}

impl Format {
    fn of(origin: &Path) -> Format {
        match origin.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }

    fn parse<T: DeserializeOwned>(self, text: &str, origin: &Path) -> Result<T, SpecError> {
        match self {
            Format::Json => serde_json::from_str(text).map_err(|e| SpecError::Parse {
                path: origin.to_path_buf(),
                format: "JSON",
                line: (e.line() > 0).then_some(e.line()),
                column: (e.line() > 0).then_some(e.column()),
                message: e.to_string(),
            }),
            Format::Yaml => serde_yaml::from_str(text).map_err(|e| {
                let location = e.location();
                SpecError::Parse {
                    path: origin.to_path_buf(),
                    format: "YAML",
                    line: location.as_ref().map(|l| l.line()),
                    column: location.as_ref().map(|l| l.column()),
                    message: e.to_string(),
                }
            }),
        }
    }
}

/// Returns the `openapi` version if it is 3.0.x or 3.1.x.
fn check_version(probe: VersionProbe, origin: &Path) -> Result<String, SpecError> {
    let path = origin.to_path_buf();
    let as_text = |value: Value| match value {
        Value::String(text) => text,
        other => other.to_string(),
    };
    match (probe.openapi, probe.swagger) {
        (Some(Value::String(version)), _) if is_supported_version(&version) => Ok(version),
        (Some(version), _) => Err(SpecError::UnsupportedVersion {
            path,
            version: as_text(version),
        }),
        (None, Some(version)) => Err(SpecError::Swagger2 {
            path,
            version: as_text(version),
        }),
        (None, None) => Err(SpecError::MissingVersion { path }),
    }
}

/// `3.0.N` or `3.1.N`, optionally followed by a pre-release such as `-rc1`.
fn is_supported_version(version: &str) -> bool {
    let Some(patch) = version
        .strip_prefix("3.0.")
        .or_else(|| version.strip_prefix("3.1."))
    else {
        return false;
    };
    let patch = patch.split_once('-').map_or(patch, |(number, _)| number);
    !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit())
}

fn compile_route(template: String, item: RawPathItem, origin: &Path) -> Result<Route, SpecError> {
    let segments = template::parse(&template).map_err(|reason| SpecError::InvalidTemplate {
        path: origin.to_path_buf(),
        template: template.clone(),
        reason,
    })?;
    if let Some(reference) = item.reference {
        return Err(SpecError::UnsupportedPathItemRef {
            path: origin.to_path_buf(),
            reference: match reference {
                Value::String(text) => text,
                other => other.to_string(),
            },
            template,
        });
    }

    let invalid = |location: String| {
        move |(index, reason)| SpecError::InvalidParameter {
            path: origin.to_path_buf(),
            location: location.clone(),
            index,
            reason,
        }
    };
    let path_keys =
        parameter_keys(&item.parameters).map_err(invalid(format!("{template} (path item)")))?;

    let mut operations = Vec::with_capacity(item.operations.len());
    for (method, raw) in item.operations {
        let keys =
            parameter_keys(&raw.parameters).map_err(invalid(format!("{method} {template}")))?;
        let mut parameters: Vec<Value> = item
            .parameters
            .iter()
            .zip(&path_keys)
            .filter(|(_, key)| !keys.contains(key))
            .map(|(parameter, _)| parameter.clone())
            .collect();
        parameters.extend(raw.parameters);
        operations.push(Operation {
            method: method.to_owned(),
            template: template.clone(),
            operation_id: raw.operation_id,
            parameters,
            request_body: raw.request_body,
            deprecated: raw.deprecated,
            responses: raw.responses,
        });
    }

    Ok(Route {
        template,
        segments,
        operations,
        first_operation: 0,
    })
}

/// What identifies a parameter within a list.
#[derive(Debug, PartialEq, Eq)]
enum ParameterKey<'a> {
    Inline { name: &'a str, location: &'a str },
    Reference(&'a str),
}

/// The key of each parameter, or the (index, reason) of the first invalid one.
fn parameter_keys(parameters: &[Value]) -> Result<Vec<ParameterKey<'_>>, (usize, &'static str)> {
    parameters
        .iter()
        .enumerate()
        .map(|(index, parameter)| parameter_key(parameter).map_err(|reason| (index, reason)))
        .collect()
}

fn parameter_key(parameter: &Value) -> Result<ParameterKey<'_>, &'static str> {
    let object = parameter.as_object().ok_or("is not an object")?;
    if let Some(reference) = object.get("$ref") {
        return reference
            .as_str()
            .map(ParameterKey::Reference)
            .ok_or("has a $ref that is not a string");
    }
    let field = |name| object.get(name).and_then(Value::as_str);
    Ok(ParameterKey::Inline {
        name: field("name").ok_or("has no string `name`")?,
        location: field("in").ok_or("has no string `in`")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_3_0_x_and_3_1_x_versions_are_supported() {
        for good in ["3.0.0", "3.0.3", "3.1.0", "3.1.1", "3.1.0-rc1"] {
            assert!(is_supported_version(good), "{good}");
        }
        for bad in [
            "3.0", "3", "3.2.0", "2.0", "3.0.x", "3.1.", "4.0.0", " 3.0.3",
        ] {
            assert!(!is_supported_version(bad), "{bad}");
        }
    }

    #[test]
    fn json_extension_selects_json_and_anything_else_yaml() {
        assert!(matches!(Format::of(Path::new("a/spec.JSON")), Format::Json));
        assert!(matches!(Format::of(Path::new("spec.yml")), Format::Yaml));
        assert!(matches!(Format::of(Path::new("spec")), Format::Yaml));
    }
}
