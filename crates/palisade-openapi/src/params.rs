//! Path, query, header and cookie parameters: reading their declarations,
//! and checking a request's values against them.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, COOKIE};
use jsonschema::Validator;
use serde_json::{Number, Value};

use crate::dialect::{self, RefError};
use crate::template::{self, Segment};
use crate::violation::{first_error, from_schema_error, Subject, Violation};

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    fn parse(text: &str) -> Option<In> {
        match text {
            "path" => Some(In::Path),
            "query" => Some(In::Query),
            "header" => Some(In::Header),
            "cookie" => Some(In::Cookie),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }

    fn default_style(self) -> &'static str {
        match self {
            In::Path | In::Header => "simple",
            In::Query | In::Cookie => "form",
        }
    }
}

/// A parameter declaration read from the spec, before its schema is compiled.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    location: In,
    name: String,
    required: bool,
    allow_empty: bool,
    style: String,
    explode: bool,
    /// Pointer of the parameter object (after following `$ref`s), for errors.
    pub(crate) pointer: String,
    /// Pointer of its `schema`, if it has one.
    pub(crate) schema: Option<String>,
}

/// Why a parameter declaration cannot be used.
#[derive(Debug)]
pub(crate) enum DeclarationError {
    /// A `$ref` that cannot be followed.
    Reference(RefError),
    /// Something unsupported or malformed: (pointer, reason).
    Unsupported(String, String),
}

/// Reads an operation's parameters (at `pointer`/parameters in `document`),
/// following `$ref`s. Headers that OpenAPI says to ignore (`Accept`,
/// `Content-Type`, `Authorization`) are left out; when two declare the same
/// (`name`, `in`), the later one (the operation's own) wins.
pub(crate) fn declare(
    document: &Value,
    pointer: &str,
    template: &str,
) -> Result<Vec<Declared>, DeclarationError> {
    let list_pointer = format!("{pointer}/parameters");
    let list = document
        .pointer(&list_pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let template_params = template_parameters(template);
    let mut declared: Vec<Declared> = Vec::new();
    for (index, parameter) in list.iter().enumerate() {
        let (at, parameter) =
            dialect::follow(document, format!("{list_pointer}/{index}"), parameter)
                .map_err(DeclarationError::Reference)?;
        let unsupported = |reason: String| DeclarationError::Unsupported(at.clone(), reason);
        let field = |name| parameter.get(name).and_then(Value::as_str);
        let name = field("name")
            .ok_or_else(|| unsupported("the parameter has no string `name`".to_owned()))?;
        let location = field("in")
            .and_then(In::parse)
            .ok_or_else(|| unsupported(format!("parameter `{name}` has no valid `in`")))?;
        let what = format!("{} parameter `{name}`", location.as_str());
        if location == In::Header
            && ["accept", "content-type", "authorization"].contains(&&*name.to_ascii_lowercase())
        {
            continue;
        }
        if location == In::Header && HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(unsupported(format!("{what} is not a valid header name")));
        }
        if location == In::Path && !template_params.iter().any(|p| p == name) {
            return Err(unsupported(format!(
                "{what} is not a parameter of the template"
            )));
        }
        if parameter.get("content").is_some() {
            return Err(unsupported(format!(
                "{what} is described with `content`, which is not supported; use `schema`"
            )));
        }
        let flag = |key| parameter.get(key).and_then(Value::as_bool);
        let style = field("style")
            .unwrap_or(location.default_style())
            .to_owned();
        let explode = flag("explode").unwrap_or(style == "form");
        let schema = parameter
            .get("schema")
            .is_some()
            .then(|| format!("{at}/schema"));
        let entry = Declared {
            location,
            name: name.to_owned(),
            required: location == In::Path || flag("required").unwrap_or(false),
            allow_empty: location == In::Query && flag("allowEmptyValue").unwrap_or(false),
            style,
            explode,
            pointer: at.clone(),
            schema,
        };
        declared.retain(|d| !(d.location == location && d.name == entry.name));
        declared.push(entry);
    }
    Ok(declared)
}

fn template_parameters(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    for segment in template::parse(template).unwrap_or_default() {
        match segment {
            Segment::Literal(_) => {}
            Segment::Param(name) => names.push(name),
            Segment::Mixed(mixed) => names.extend(mixed.param_names().map(str::to_owned)),
        }
    }
    names
}

/// Which JSON types a raw string may become.
#[derive(Debug, Clone, Copy, Default)]
struct Coercion {
    integer: bool,
    number: bool,
    boolean: bool,
}

impl Coercion {
    fn from_types(types: &[String]) -> Coercion {
        let has = |t: &str| types.iter().any(|x| x == t);
        Coercion {
            integer: has("integer"),
            number: has("number"),
            boolean: has("boolean"),
        }
    }

    /// A number when the schema allows one and the text is a JSON number, a
    /// boolean likewise for `true`/`false`, otherwise the string.
    fn apply(self, text: &str) -> Value {
        if (self.integer || self.number) && !text.starts_with(char::is_whitespace) {
            if let Ok(number) = serde_json::from_str::<Number>(text) {
                if !text.ends_with(char::is_whitespace) {
                    return Value::Number(number);
                }
            }
        }
        if self.boolean && (text == "true" || text == "false") {
            return Value::Bool(text == "true");
        }
        Value::String(text.to_owned())
    }
}

/// How the values of one parameter become one JSON value.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One value.
    Scalar(Coercion),
    /// An array: from repeated occurrences (`form` exploded) or from one
    /// value split on a delimiter.
    Array {
        items: Coercion,
        split: Option<char>,
    },
}

/// A parameter ready to check requests.
pub(crate) struct Parameter {
    location: In,
    name: String,
    /// `query/limit`, `header/X-Request-Id`...
    label: String,
    header: Option<HeaderName>,
    required: bool,
    allow_empty: bool,
    shape: Shape,
    validator: Option<Validator>,
}

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameter")
            .field("label", &self.label)
            .field("required", &self.required)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl Declared {
    /// Works out how to read the parameter from its (rewritten) schema,
    /// refusing styles that are not supported. `validator` checks the value.
    pub(crate) fn finish(
        self,
        document: &Value,
        validator: Option<Validator>,
    ) -> Result<Parameter, DeclarationError> {
        let what = format!("{} parameter `{}`", self.location.as_str(), self.name);
        let unsupported =
            |reason: String| DeclarationError::Unsupported(self.pointer.clone(), reason);
        let schema = self.schema.as_deref().and_then(|p| document.pointer(p));
        let types = schema.map(|s| types_of(document, s)).unwrap_or_default();
        let has = |t: &str| types.iter().any(|x| x == t);
        if has("object") {
            return Err(unsupported(format!(
                "{what} is an object, which is not supported; only primitives and arrays of primitives are"
            )));
        }
        let style = self.style.as_str();
        let shape = if has("array") {
            let items = schema
                .and_then(|s| items_of(document, s))
                .map(|items| types_of(document, items))
                .unwrap_or_default();
            if items.iter().any(|t| t == "array" || t == "object") {
                return Err(unsupported(format!(
                    "{what} is an array of arrays or objects, which is not supported"
                )));
            }
            let split = match (self.location, style, self.explode) {
                (In::Query, "form", true) => None,
                (In::Query | In::Cookie, "form", false)
                | (In::Path | In::Header, "simple", _) => Some(','),
                (In::Query, "spaceDelimited", false) => Some(' '),
                (In::Query, "pipeDelimited", false) => Some('|'),
                _ => {
                    return Err(unsupported(format!(
                        "{what} is an array with style `{style}` and explode {}, which is not supported",
                        self.explode
                    )))
                }
            };
            Shape::Array {
                items: Coercion::from_types(&items),
                split,
            }
        } else {
            match (self.location, style) {
                (In::Query | In::Cookie, "form") | (In::Path | In::Header, "simple") => {}
                _ => {
                    return Err(unsupported(format!(
                        "{what} has style `{style}`, which is not supported for a primitive value"
                    )))
                }
            }
            Shape::Scalar(Coercion::from_types(&types))
        };
        let header = match self.location {
            In::Header => Some(
                HeaderName::from_bytes(self.name.as_bytes())
                    .map_err(|_| unsupported(format!("{what} is not a valid header name")))?,
            ),
            _ => None,
        };
        Ok(Parameter {
            label: format!("{}/{}", self.location.as_str(), self.name),
            location: self.location,
            name: self.name,
            header,
            required: self.required,
            allow_empty: self.allow_empty,
            shape,
            validator,
        })
    }
}

/// The `type`s a schema allows, through `$ref`, `allOf`, `anyOf` and `oneOf`.
fn types_of(document: &Value, schema: &Value) -> Vec<String> {
    let mut types = Vec::new();
    for part in parts(document, schema) {
        match part.get("type") {
            Some(Value::String(t)) => types.push(t.clone()),
            Some(Value::Array(list)) => {
                types.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    types
}

/// The first `items` schema found through `$ref`, `allOf`, `anyOf` and `oneOf`.
fn items_of<'a>(document: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    parts(document, schema)
        .into_iter()
        .find_map(|part| part.get("items").filter(|items| items.is_object()))
}

/// `schema` and what it reaches through `$ref`, `allOf`, `anyOf`, `oneOf` (bounded).
fn parts<'a>(document: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let mut parts = Vec::new();
    let mut work = vec![schema];
    while let Some(part) = work.pop() {
        if parts.len() >= 64 {
            break;
        }
        if let Some(target) = part
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(dialect::local_pointer)
            .and_then(|pointer| document.pointer(&pointer))
        {
            work.push(target);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(children)) = part.get(key) {
                work.extend(children);
            }
        }
        parts.push(part);
    }
    parts
}

/// An operation's parameters, checked together.
#[derive(Debug, Default)]
pub(crate) struct Parameters(pub(crate) Vec<Parameter>);

impl Parameters {
    /// Checks the path parameters (as matched, still percent-encoded), the
    /// raw query string and the headers.
    pub(crate) fn check(
        &self,
        path_params: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
        strict: bool,
    ) -> Result<(), Violation> {
        let pairs = match query {
            Some(query) => parse_query(query)?,
            None => Vec::new(),
        };
        if strict {
            if let Some((name, _)) = pairs.iter().find(|(name, _)| {
                !self
                    .0
                    .iter()
                    .any(|p| p.location == In::Query && p.name == *name)
            }) {
                return Err(Violation::new(
                    Violation::UNKNOWN_PARAMETER,
                    400,
                    Some(format!("query/{name}")),
                    Some("unknownParameter"),
                    format!("the query parameter `{name}` is not defined for this operation"),
                ));
            }
        }
        for parameter in &self.0 {
            let values: Vec<Cow<'_, str>> = match parameter.location {
                In::Path => path_params
                    .iter()
                    .filter(|(name, _)| *name == parameter.name)
                    .map(|(_, value)| {
                        percent_decode(value, false).ok_or_else(|| parameter.encoding_violation())
                    })
                    .collect::<Result<_, _>>()?,
                In::Query => pairs
                    .iter()
                    .filter(|(name, _)| *name == parameter.name)
                    .map(|(_, value)| Cow::Borrowed(value.as_ref()))
                    .collect(),
                In::Header => parameter.header_values(headers)?,
                In::Cookie => cookies(headers)
                    .filter(|(name, _)| *name == parameter.name)
                    .map(|(_, value)| Cow::Borrowed(value))
                    .collect(),
            };
            parameter.check(&values)?;
        }
        Ok(())
    }
}

impl Parameter {
    fn violation(&self, rule: &str, what: &str) -> Violation {
        Violation::new(
            Violation::INVALID_PARAMETER,
            400,
            Some(self.label.clone()),
            Some(rule),
            format!(
                "{} parameter `{}` {what}",
                self.location.as_str(),
                self.name
            ),
        )
    }

    fn encoding_violation(&self) -> Violation {
        self.violation("encoding", "is not valid percent-encoded UTF-8")
    }

    fn header_values<'h>(&self, headers: &'h HeaderMap) -> Result<Vec<Cow<'h, str>>, Violation> {
        let Some(name) = &self.header else {
            return Ok(Vec::new());
        };
        let mut values = Vec::new();
        for value in headers.get_all(name) {
            let text = value
                .to_str()
                .map_err(|_| self.violation("encoding", "is not visible ASCII"))?;
            values.push(Cow::Borrowed(text));
        }
        // Header arrays may be split over several lines (RFC 9110, 5.3).
        if values.len() > 1 && matches!(self.shape, Shape::Array { .. }) {
            return Ok(vec![Cow::Owned(values.join(","))]);
        }
        Ok(values)
    }

    fn check(&self, values: &[Cow<'_, str>]) -> Result<(), Violation> {
        let value = match (values, self.shape) {
            ([], _) if self.required => return Err(self.violation("required", "is required")),
            ([], _) => return Ok(()),
            ([single], _) if single.is_empty() && self.allow_empty => return Ok(()),
            ([single], Shape::Scalar(coercion)) => coercion.apply(single),
            (_, Shape::Scalar(_)) => {
                return Err(self.violation("duplicate", "is given more than once"))
            }
            (_, Shape::Array { items, split: None }) => {
                Value::Array(values.iter().map(|v| items.apply(v)).collect())
            }
            (
                [single],
                Shape::Array {
                    items,
                    split: Some(delimiter),
                },
            ) => Value::Array(if single.is_empty() {
                Vec::new()
            } else {
                single
                    .split(delimiter)
                    .map(|item| {
                        let item = if self.location == In::Header {
                            item.trim_matches([' ', '\t'])
                        } else {
                            item
                        };
                        items.apply(item)
                    })
                    .collect()
            }),
            (_, Shape::Array { .. }) => {
                return Err(self.violation("duplicate", "is given more than once"))
            }
        };
        match self
            .validator
            .as_ref()
            .and_then(|validator| first_error(validator, &value))
        {
            Some(error) => Err(from_schema_error(&error, &Subject::Parameter(&self.label))),
            None => Ok(()),
        }
    }
}

/// A decoded `name=value` pair of a query string.
type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The `name=value` pairs of a query string, decoded as
/// `application/x-www-form-urlencoded` (`+` is a space). Empty pieces
/// (`a=1&&b=2`) are skipped.
fn parse_query(query: &str) -> Result<Vec<Pair<'_>>, Violation> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = percent_decode(name, true).ok_or_else(|| {
                Violation::new(
                    Violation::INVALID_PARAMETER,
                    400,
                    Some("query".to_owned()),
                    Some("encoding"),
                    "a query parameter name is not valid percent-encoded UTF-8",
                )
            })?;
            let value = percent_decode(value, true).ok_or_else(|| {
                Violation::new(
                    Violation::INVALID_PARAMETER,
                    400,
                    Some(format!("query/{name}")),
                    Some("encoding"),
                    format!("query parameter `{name}` is not valid percent-encoded UTF-8"),
                )
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set); `None` if
/// an escape is malformed or the result is not UTF-8.
fn percent_decode(text: &str, plus: bool) -> Option<Cow<'_, str>> {
    if !(text.contains('%') || plus && text.contains('+')) {
        return Some(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'%' => {
                let hex = text.get(at + 1..at + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                at += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                at += 1;
            }
            _ => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// The `name=value` pairs of the Cookie headers (quotes around a value removed).
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim(), value.trim().trim_matches('"')))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_makes_numbers_and_booleans_only_where_the_schema_allows() {
        let numeric = Coercion {
            integer: true,
            ..Coercion::default()
        };
        assert_eq!(numeric.apply("42"), Value::from(42));
        assert_eq!(numeric.apply("-1.5e3"), Value::from(-1500.0));
        for text in ["+1", " 1", "1 ", "0x10", "NaN", "inf", "1e999", ""] {
            assert_eq!(numeric.apply(text), Value::from(text), "{text}");
        }
        let boolean = Coercion {
            boolean: true,
            ..Coercion::default()
        };
        assert_eq!(boolean.apply("true"), Value::Bool(true));
        assert_eq!(boolean.apply("True"), Value::from("True"));
        assert_eq!(Coercion::default().apply("42"), Value::from("42"));
    }

    #[test]
    fn query_strings_decode_as_forms() {
        let pairs = parse_query("a=1+2&&b=%C3%A9&c&d=").expect("valid");
        let pairs: Vec<_> = pairs
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(pairs, [("a", "1 2"), ("b", "é"), ("c", ""), ("d", "")]);
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%FF").is_err());
        assert_eq!(percent_decode("a+b%20c", false).as_deref(), Some("a+b c"));
    }
}
