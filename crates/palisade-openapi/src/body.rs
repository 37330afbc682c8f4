//! Request bodies: media types, the limits pre-scan, and strict JSON parsing.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::violation::Violation;

/// A media type from a Content-Type header or a `content` key, reduced to
/// what matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaType {
    /// `type/subtype`, lower-case, without parameters (`*` allowed in spec keys).
    pub(crate) essence: String,
    /// The `charset` parameter, lower-case, without quotes.
    pub(crate) charset: Option<String>,
}

impl MediaType {
    /// Parses `type/subtype; param=value; ...`; `None` if there is no
    /// `type/subtype` with both parts non-empty.
    pub(crate) fn parse(text: &str) -> Option<MediaType> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = essence.split_once('/')?;
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        if !token(kind) || !token(subtype) {
            return None;
        }
        let charset = parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
        });
        Some(MediaType { essence, charset })
    }

    /// `application/json` or any `+json` type (`application/merge-patch+json`).
    pub(crate) fn is_json(&self) -> bool {
        self.essence == "application/json"
            || self
                .essence
                .split_once('/')
                .is_some_and(|(_, subtype)| subtype.ends_with("+json"))
    }

    /// How well this (spec) media range matches a request's media type:
    /// 2 for the same type, 1 for `type/*`, 0 for `*/*`, `None` for no match.
    pub(crate) fn matches(&self, request: &MediaType) -> Option<u8> {
        if self.essence == request.essence {
            return Some(2);
        }
        let (kind, subtype) = self.essence.split_once('/')?;
        match (kind, subtype) {
            ("*", "*") => Some(0),
            (kind, "*") if request.essence.split_once('/')?.0 == kind => Some(1),
            _ => None,
        }
    }
}

/// The limits the pre-scan enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) depth: usize,
    pub(crate) keys: usize,
    pub(crate) items: usize,
}

/// An array or object the pre-scan is inside of.
#[derive(Debug, Clone, Copy)]
struct Open {
    object: bool,
    members: usize,
    /// The most members it may have.
    limit: usize,
    /// Right after `[`, `{` or `,`: the next token starts a member.
    expecting: bool,
}

/// Checks nesting depth, keys per object and items per array in one pass
/// over the bytes, before anything is allocated for the values: strings are
/// skipped (brackets inside them do not count) and everything else is
/// counted, without checking that the text is JSON (the parser does that
/// next). Memory is bounded by the depth limit.
pub(crate) fn prescan(bytes: &[u8], limits: Limits) -> Result<(), Violation> {
    // The containers around `current`, innermost last. `current` starts as
    // the top level, which holds one value and is not counted.
    let mut enclosing: Vec<Open> = Vec::new();
    let mut current = Open {
        object: false,
        members: 0,
        limit: usize::MAX,
        expecting: false,
    };
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => continue,
            b',' => {
                current.expecting = true;
                continue;
            }
            b']' | b'}' => {
                if let Some(outer) = enclosing.pop() {
                    current = outer;
                }
                continue;
            }
            _ => {}
        }
        if current.expecting {
            current.expecting = false;
            current.members += 1;
            if current.members > current.limit {
                return Err(too_large(current.object, limits));
            }
        }
        match byte {
            b'"' => at = string_end(bytes, at) + 1,
            b'[' | b'{' => {
                if enclosing.len() >= limits.depth {
                    return Err(Violation::new(
                        Violation::TOO_DEEP,
                        400,
                        None,
                        Some("maxDepth"),
                        format!(
                            "the body nests arrays and objects deeper than {} levels",
                            limits.depth
                        ),
                    ));
                }
                let object = byte == b'{';
                enclosing.push(current);
                current = Open {
                    object,
                    members: 0,
                    limit: if object { limits.keys } else { limits.items },
                    expecting: true,
                };
            }
            _ => {}
        }
    }
    Ok(())
}

fn too_large(object: bool, limits: Limits) -> Violation {
    let (rule, what) = if object {
        (
            "maxObjectKeys",
            format!("an object has more than {} keys", limits.keys),
        )
    } else {
        (
            "maxArrayItems",
            format!("an array has more than {} items", limits.items),
        )
    };
    Violation::new(Violation::TOO_LARGE, 400, None, Some(rule), what)
}

/// The index of the `"` closing the string whose contents start at `at`
/// (or the end of the input). Most strings are short keys: their first 64
/// bytes are looked at one by one, the rest of a longer string with `memchr`.
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    let short = at.saturating_add(64).min(bytes.len());
    while at < short {
        match bytes.get(at) {
            Some(b'"') => return at,
            Some(b'\\') => at += 2,
            _ => at += 1,
        }
    }
    while let Some(rest) = bytes.get(at..) {
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(found) if rest.get(found) == Some(&b'"') => return at + found,
            // A backslash: skip it and the character it escapes.
            Some(found) => at += found + 2,
            None => break,
        }
    }
    bytes.len()
}

/// Parses JSON into a [`Value`], refusing objects with a duplicate key (the
/// upstream's parser might keep the other one).
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, Violation> {
    let malformed =
        |rule, what: String| Violation::new(Violation::MALFORMED_JSON, 400, None, Some(rule), what);
    // Checking UTF-8 up front (vectorized) and parsing text is faster than
    // parsing bytes, whose strings are checked one by one.
    let text = std::str::from_utf8(bytes)
        .map_err(|_| malformed("encoding", "the body is not UTF-8".to_owned()))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    value.map_err(|error| {
        let (rule, what) = if error.is_data() {
            ("uniqueKeys", "an object has a duplicate key")
        } else if error.is_eof() {
            ("syntax", "the body ends before the JSON value does")
        } else {
            ("syntax", "the body is not valid JSON")
        };
        let (line, column) = (error.line(), error.column());
        malformed(rule, format!("{what} (line {line}, column {column})"))
    })
}

/// Builds a [`Value`] as serde_json does, failing on a duplicate key (the
/// only error it raises itself: the parser's data errors all come from it).
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    #[inline]
    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    #[inline]
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    #[inline]
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    #[inline]
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    #[inline]
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    #[inline]
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    #[inline]
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry_seed(PhantomData::<String>, StrictValue)? {
            if object.insert(key, value).is_some() {
                return Err(A::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        depth: 3,
        keys: 2,
        items: 3,
    };

    fn code(bytes: &str) -> Option<&'static str> {
        prescan(bytes.as_bytes(), LIMITS).err().map(|v| v.code)
    }

    #[test]
    fn prescan_counts_depth_keys_and_items_outside_strings() {
        assert_eq!(code(r#"{"a": [[1, 2, 3]], "b": "]]]]{{{{,,,,"}"#), None);
        assert_eq!(code("[[[[]]]]"), Some(Violation::TOO_DEEP));
        assert_eq!(code(r#"["[[[[", "\"[[[["]"#), None);
        assert_eq!(code("[1, 2, 3, 4]"), Some(Violation::TOO_LARGE));
        assert_eq!(
            code(r#"{"a": 1, "b": {"c": 1}, "d": 2}"#),
            Some(Violation::TOO_LARGE)
        );
        assert_eq!(code(r#"{"a": [1, 2, 3], "b": [{}, {}, {}]}"#), None);
        assert_eq!(code("[[], [], []]"), None);
    }

    #[test]
    fn prescan_of_garbage_leaves_the_verdict_to_the_parser() {
        for garbage in ["]]]]", "}{", "\"unterminated", "[1,,,,]", ""] {
            assert_eq!(code(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn parse_refuses_duplicate_keys_and_trailing_text() {
        assert_eq!(
            parse(br#"{"a": {"b": 1, "c": [1.5, null, true, "{\"x\": 1}"]}}"#),
            Ok(serde_json::json!({"a": {"b": 1, "c": [1.5, null, true, "{\"x\": 1}"]}}))
        );
        let duplicate =
            parse(br#"{"a": [{"token": 1, "token": "s3cret"}]}"#).expect_err("duplicate");
        assert_eq!(duplicate.rule.as_deref(), Some("uniqueKeys"));
        assert!(!duplicate.message.contains("s3cret"), "{duplicate:?}");
        assert_eq!(
            parse(b"{} {}").expect_err("trailing").code,
            Violation::MALFORMED_JSON
        );
    }

    #[test]
    fn media_types_parse_and_match_by_specificity() {
        let request = MediaType::parse("Application/Merge-Patch+JSON; charset=\"UTF-8\"")
            .expect("valid media type");
        assert_eq!(request.essence, "application/merge-patch+json");
        assert_eq!(request.charset.as_deref(), Some("utf-8"));
        assert!(request.is_json());
        let range = |text| MediaType::parse(text).expect("valid range");
        assert_eq!(
            range("application/merge-patch+json").matches(&request),
            Some(2)
        );
        assert_eq!(range("application/*").matches(&request), Some(1));
        assert_eq!(range("*/*").matches(&request), Some(0));
        assert_eq!(range("application/json").matches(&request), None);
        assert_eq!(MediaType::parse("json"), None);
        assert_eq!(MediaType::parse("text/"), None);
    }
}
