//! The JSON walker: per field path, the JSON types seen and the data classes.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::Value;

use super::names::Hints;
use super::{scalar, DataClasses};

/// Values nested deeper than this many arrays and objects are not visited
/// (the limit `serde_json` puts on parsing, so a parsed document is always
/// visited whole).
pub const MAX_DEPTH: usize = 128;

/// The type of a JSON value, as JSON Schema names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JsonType {
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean,
    /// A number with no fractional part that fits in 64 bits.
    Integer,
    /// Any other number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// Every type, in declaration order.
    pub const ALL: [JsonType; 7] = [
        JsonType::Null,
        JsonType::Boolean,
        JsonType::Integer,
        JsonType::Number,
        JsonType::String,
        JsonType::Array,
        JsonType::Object,
    ];

    /// The type of `value`.
    pub fn of(value: &Value) -> JsonType {
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => JsonType::Integer,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// The JSON Schema name: `null`, `boolean`, `integer`, `number`,
    /// `string`, `array`, `object`.
    pub const fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`JsonType`]s: a field can be a string in one array element and
/// `null` in the next.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct JsonTypes(u8);

impl JsonTypes {
    /// The empty set.
    pub const EMPTY: JsonTypes = JsonTypes(0);

    /// Whether `ty` is in the set.
    pub const fn contains(self, ty: JsonType) -> bool {
        self.0 & ty.bit() != 0
    }

    /// Adds `ty`.
    pub fn insert(&mut self, ty: JsonType) {
        self.0 |= ty.bit();
    }

    /// How many types the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = JsonType> {
        JsonType::ALL
            .into_iter()
            .filter(move |ty| self.contains(*ty))
    }
}

impl From<JsonType> for JsonTypes {
    fn from(ty: JsonType) -> Self {
        JsonTypes(ty.bit())
    }
}

impl fmt::Debug for JsonTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// `string, null`.
impl fmt::Display for JsonTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ty) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(ty.as_str())?;
        }
        Ok(())
    }
}

/// An array of type names, e.g. `["null","string"]`.
impl Serialize for JsonTypes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for ty in self.iter() {
            seq.serialize_element(ty.as_str())?;
        }
        seq.end()
    }
}

/// What was seen at one field path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldProfile {
    types: JsonTypes,
    classes: DataClasses,
}

impl FieldProfile {
    /// The JSON types the field had.
    pub fn types(&self) -> JsonTypes {
        self.types
    }

    /// The data classes of its values (empty for arrays and objects: their
    /// members have their own paths).
    pub fn classes(&self) -> DataClasses {
        self.classes
    }
}

/// `{"types": [...], "classes": [...]}`.
impl Serialize for FieldProfile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FieldProfile", 2)?;
        s.serialize_field("types", &self.types)?;
        s.serialize_field("classes", &self.classes)?;
        s.end()
    }
}

/// The shape of one JSON document: every field path with its types and data
/// classes. Holds no value.
///
/// Paths are JSON Pointers (RFC 6901, `~` and `/` in names escaped as `~0`
/// and `~1`) in which every array index is `*`: `/user/email`,
/// `/items/*/card`, `/*/id` for an array of objects; the document itself is
/// `""`. A member literally named `*` shares the path of array elements.
/// Iteration is in path order, so equal documents give equal profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonProfile {
    fields: BTreeMap<String, FieldProfile>,
    classes: DataClasses,
}

impl JsonProfile {
    /// The fields, in path order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, FieldProfile)> + '_ {
        self.fields
            .iter()
            .map(|(path, field)| (path.as_str(), *field))
    }

    /// The field at `path`, if the document had one.
    pub fn get(&self, path: &str) -> Option<FieldProfile> {
        self.fields.get(path).copied()
    }

    /// How many distinct paths the document has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the profile has no path (never true for a profiled document,
    /// which has at least `""`).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Every class found anywhere in the document: the audit record's
    /// `data_classes`.
    pub fn classes(&self) -> DataClasses {
        self.classes
    }

    fn record(&mut self, path: &str, ty: JsonType, classes: DataClasses) {
        self.classes |= classes;
        if let Some(field) = self.fields.get_mut(path) {
            field.types.insert(ty);
            field.classes |= classes;
        } else {
            self.fields.insert(
                path.to_owned(),
                FieldProfile {
                    types: ty.into(),
                    classes,
                },
            );
        }
    }
}

/// A map from path to `{"types", "classes"}`.
impl Serialize for JsonProfile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (path, field) in &self.fields {
            map.serialize_entry(path, field)?;
        }
        map.end()
    }
}

/// Profiles a JSON document: for every field path, the JSON types seen and
/// the data classes of its values ([`classify_value`](crate::classify_value)
/// rules, with the member name as the hint and the enclosing member name as
/// the object's name). Values are never stored or returned.
///
/// Allocates one `String` per distinct path, nothing per value.
///
/// ```
/// use palisade_inventory::{classify_json, DataClass, JsonType};
/// use serde_json::json;
///
/// let profile = classify_json(&json!({
///     "user": {"email": "ada@example.com", "phone": null},
///     "items": [{"card": "4111 1111 1111 1111"}, {"card": "4012 8888 8888 1881"}],
/// }));
/// let email = profile.get("/user/email").unwrap();
/// assert!(email.classes().contains(DataClass::Email));
/// assert!(email.types().contains(JsonType::String));
/// assert!(profile.get("/items/*/card").unwrap().classes().contains(DataClass::PaymentCard));
/// assert_eq!(profile.classes().to_string(), "email, payment_card");
/// ```
pub fn classify_json(value: &Value) -> JsonProfile {
    let mut profile = JsonProfile::default();
    let mut path = String::with_capacity(64);
    walk(value, None, None, &mut path, 0, &mut profile);
    profile
}

fn walk(
    value: &Value,
    name: Option<&str>,
    parent: Option<&str>,
    path: &mut String,
    depth: usize,
    profile: &mut JsonProfile,
) {
    let classes = match value {
        Value::String(_) | Value::Number(_) => scalar(&Hints::new(name, parent), value),
        _ => DataClasses::EMPTY,
    };
    profile.record(path, JsonType::of(value), classes);
    if depth >= MAX_DEPTH {
        return;
    }
    let len = path.len();
    match value {
        Value::Array(items) => {
            path.push_str("/*");
            for item in items {
                walk(item, name, parent, path, depth + 1, profile);
            }
        }
        Value::Object(members) => {
            for (key, member) in members {
                path.push('/');
                for c in key.chars() {
                    match c {
                        '~' => path.push_str("~0"),
                        '/' => path.push_str("~1"),
                        c => path.push(c),
                    }
                }
                walk(member, Some(key), name, path, depth + 1, profile);
                path.truncate(len);
            }
        }
        _ => {}
    }
    path.truncate(len);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::DataClass;

    #[test]
    fn paths_are_json_pointers_with_star_for_array_elements() {
        let profile = classify_json(&json!({
            "a/b": {"~x": 1},
            "list": [[{"ip": "10.0.0.1"}], [{"ip": null}], []],
            "n": 1.5,
            "ok": true,
        }));
        let paths: Vec<_> = profile.iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "",
                "/a~1b",
                "/a~1b/~0x",
                "/list",
                "/list/*",
                "/list/*/*",
                "/list/*/*/ip",
                "/n",
                "/ok"
            ]
        );
        let ip = profile.get("/list/*/*/ip").unwrap();
        assert_eq!(ip.types().to_string(), "null, string");
        assert_eq!(ip.classes(), DataClass::Ipv4.into());
        assert_eq!(profile.get("/n").unwrap().types(), JsonType::Number.into());
        assert_eq!(
            profile.get("/a~1b/~0x").unwrap().types(),
            JsonType::Integer.into()
        );
        assert_eq!(profile.get("").unwrap().types(), JsonType::Object.into());
        assert!(profile.get("/missing").is_none());
    }

    #[test]
    fn the_enclosing_member_names_the_object() {
        let profile = classify_json(&json!({
            "customers": [{"name": "Ada Lovelace", "address": {"line1": "12 Acacia Avenue"}}],
            "products": [{"name": "Analytical Engine"}],
        }));
        assert_eq!(
            profile.get("/customers/*/name").unwrap().classes(),
            DataClass::PersonName.into()
        );
        assert_eq!(
            profile.get("/customers/*/address/line1").unwrap().classes(),
            DataClass::Address.into()
        );
        assert!(profile
            .get("/products/*/name")
            .unwrap()
            .classes()
            .is_empty());
    }

    #[test]
    fn deep_documents_stop_at_the_depth_limit() {
        let mut value = json!("ada@example.com");
        for _ in 0..(MAX_DEPTH + 10) {
            value = json!([value]);
        }
        let profile = classify_json(&value);
        assert_eq!(profile.len(), MAX_DEPTH + 1);
        assert!(
            profile.classes().is_empty(),
            "the e-mail is below the limit"
        );
    }

    #[test]
    fn serializes_as_a_map_of_paths() {
        let profile = classify_json(&json!({"email": "ada@example.com"}));
        assert_eq!(
            serde_json::to_value(&profile).unwrap(),
            json!({
                "": {"types": ["object"], "classes": []},
                "/email": {"types": ["string"], "classes": ["email"]},
            })
        );
    }
}
