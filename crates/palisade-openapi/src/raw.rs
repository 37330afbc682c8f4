//! The parts of an OpenAPI document this crate reads, as they are written.
//!
//! `paths` and path items are read with hand-written visitors so that spec
//! order is kept (`serde_json::Map` would sort the keys) and so that the
//! parser's line/column is reported for a wrongly typed field.

use std::fmt;

use serde::de::{Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The HTTP methods a path item can hold: (field name, method name).
const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("trace", "TRACE"),
];

/// The version fields alone, read before anything else so that a Swagger 2.0
/// document gets a clear error rather than a complaint about its structure.
#[derive(Debug, Deserialize)]
#[serde(expecting = "an OpenAPI document (a mapping)")]
pub(crate) struct VersionProbe {
    pub(crate) openapi: Option<Value>,
    pub(crate) swagger: Option<Value>,
}

/// An OpenAPI 3.0/3.1 document, reduced to what the crate uses.
#[derive(Debug, Deserialize)]
#[serde(expecting = "an OpenAPI document (a mapping)")]
pub(crate) struct RawSpec {
    pub(crate) info: Option<RawInfo>,
    pub(crate) paths: Option<RawPaths>,
    pub(crate) components: Option<Value>,
}

/// The `info` object.
#[derive(Debug, Deserialize)]
#[serde(expecting = "an info object")]
pub(crate) struct RawInfo {
    pub(crate) title: Option<String>,
}

/// The `paths` object: (template, path item) in spec order, `x-` extensions skipped.
#[derive(Debug, Default)]
pub(crate) struct RawPaths(pub(crate) Vec<(String, RawPathItem)>);

/// A path item.
#[derive(Debug, Default)]
pub(crate) struct RawPathItem {
    /// (upper-case method, operation) in spec order.
    pub(crate) operations: Vec<(&'static str, RawOperation)>,
    /// Path-level parameters.
    pub(crate) parameters: Vec<Value>,
    /// The `$ref` field, if any.
    pub(crate) reference: Option<Value>,
}

/// An operation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an operation object")]
pub(crate) struct RawOperation {
    pub(crate) operation_id: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Vec<Value>,
    pub(crate) request_body: Option<Value>,
    #[serde(default)]
    pub(crate) deprecated: bool,
    pub(crate) responses: Option<Value>,
}

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathsVisitor;

        impl<'de> Visitor<'de> for PathsVisitor {
            type Value = RawPaths;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from path templates to path items")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPaths, A::Error> {
                let mut items = Vec::new();
                while let Some(template) = map.next_key::<String>()? {
                    if template.starts_with("x-") {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        items.push((template, map.next_value()?));
                    }
                }
                Ok(RawPaths(items))
            }
        }

        deserializer.deserialize_map(PathsVisitor)
    }
}

impl<'de> Deserialize<'de> for RawPathItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathItemVisitor;

        impl<'de> Visitor<'de> for PathItemVisitor {
            type Value = RawPathItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path item object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPathItem, A::Error> {
                let mut item = RawPathItem::default();
                let mut has_parameters = false;
                while let Some(key) = map.next_key::<String>()? {
                    if let Some(&(field, method)) = METHODS.iter().find(|(field, _)| *field == key)
                    {
                        if item.operations.iter().any(|(m, _)| *m == method) {
                            return Err(A::Error::duplicate_field(field));
                        }
                        item.operations.push((method, map.next_value()?));
                    } else if key == "parameters" {
                        if has_parameters {
                            return Err(A::Error::duplicate_field("parameters"));
                        }
                        has_parameters = true;
                        item.parameters = map.next_value()?;
                    } else if key == "$ref" {
                        item.reference = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(item)
            }
        }

        deserializer.deserialize_map(PathItemVisitor)
    }
}
