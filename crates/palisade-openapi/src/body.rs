//! Request bodies: media types, the limits pre-scan, and strict JSON parsing.

use serde_json::Value;

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
    /// Right after `[`, `{` or `,`: the next token starts a member.
    expecting: bool,
}

/// Checks nesting depth, keys per object and items per array in one pass
/// over the bytes, before anything is allocated for the values: strings are
/// skipped (brackets inside them do not count) and everything else is
/// counted, without checking that the text is JSON (the parser does that
/// next). Memory is bounded by the depth limit. Returns the number of
/// object keys in the whole text.
pub(crate) fn prescan(bytes: &[u8], limits: Limits) -> Result<usize, Violation> {
    let mut open: Vec<Open> = Vec::with_capacity(limits.depth.min(64));
    let mut keys = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => {}
            b',' => {
                if let Some(top) = open.last_mut() {
                    top.expecting = true;
                }
            }
            b']' | b'}' => {
                open.pop();
            }
            _ => {
                if let Some(top) = open.last_mut() {
                    if top.expecting {
                        top.expecting = false;
                        top.members += 1;
                        keys += usize::from(top.object);
                        check_members(top, limits)?;
                    }
                }
                match byte {
                    b'"' => at = string_end(bytes, at + 1),
                    b'[' | b'{' => {
                        if open.len() >= limits.depth {
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
                        open.push(Open {
                            object: byte == b'{',
                            members: 0,
                            expecting: true,
                        });
                    }
                    _ => {}
                }
            }
        }
        at += 1;
    }
    Ok(keys)
}

fn check_members(container: &Open, limits: Limits) -> Result<(), Violation> {
    let (limit, rule, what) = if container.object {
        (limits.keys, "maxObjectKeys", "an object has more than")
    } else {
        (limits.items, "maxArrayItems", "an array has more than")
    };
    if container.members > limit {
        let unit = if container.object { "keys" } else { "items" };
        return Err(Violation::new(
            Violation::TOO_LARGE,
            400,
            None,
            Some(rule),
            format!("{what} {limit} {unit}"),
        ));
    }
    Ok(())
}

/// The index of the `"` closing the string whose contents start at `at`
/// (or the end of the input).
fn string_end(bytes: &[u8], mut at: usize) -> usize {
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
/// upstream's parser might keep the other one). `keys` is the number of
/// object keys [`prescan`] counted: the parsed objects hold fewer exactly
/// when a key was repeated (the parser keeps the last).
pub(crate) fn parse(bytes: &[u8], keys: usize) -> Result<Value, Violation> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        let what = if error.is_eof() {
            "the body ends before the JSON value does"
        } else {
            "the body is not valid JSON"
        };
        Violation::new(
            Violation::MALFORMED_JSON,
            400,
            None,
            Some("syntax"),
            format!("{what} (line {}, column {})", error.line(), error.column()),
        )
    })?;
    if count_keys(&value) != keys {
        return Err(Violation::new(
            Violation::MALFORMED_JSON,
            400,
            None,
            Some("uniqueKeys"),
            "an object has a duplicate key",
        ));
    }
    Ok(value)
}

/// The number of keys of all the objects in `value`.
fn count_keys(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(count_keys).sum(),
        Value::Object(map) => map.len() + map.values().map(count_keys).sum::<usize>(),
        _ => 0,
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

    fn scan_and_parse(bytes: &[u8]) -> Result<Value, Violation> {
        let limits = Limits {
            depth: 8,
            keys: 8,
            items: 8,
        };
        parse(bytes, prescan(bytes, limits)?)
    }

    #[test]
    fn prescan_counts_every_object_key_and_nothing_else() {
        let limits = Limits {
            depth: 8,
            keys: 8,
            items: 8,
        };
        let text = br#"{"a": {"b": "c,d", "e": [{"f": 1}, {}]}, "g": ["h", "i"]}"#;
        assert_eq!(prescan(text, limits), Ok(5));
    }

    #[test]
    fn parse_refuses_duplicate_keys_and_trailing_text() {
        assert_eq!(
            scan_and_parse(br#"{"a": {"b": 1, "c": [1.5, null, true, "{\"x\": 1}"]}}"#),
            Ok(serde_json::json!({"a": {"b": 1, "c": [1.5, null, true, "{\"x\": 1}"]}}))
        );
        let duplicate =
            scan_and_parse(br#"{"a": [{"token": 1, "token": "s3cret"}]}"#).expect_err("duplicate");
        assert_eq!(duplicate.rule.as_deref(), Some("uniqueKeys"));
        assert!(!duplicate.message.contains("s3cret"), "{duplicate:?}");
        assert_eq!(
            scan_and_parse(b"{} {}").expect_err("trailing").code,
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
