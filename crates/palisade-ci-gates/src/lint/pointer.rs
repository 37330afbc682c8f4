//! JSON Pointers (RFC 6901): building them token by token, reading them
//! back (also from a `$ref`'s URI fragment, which is percent-encoded, RFC
//! 6901 §6), and finding the position of what one points at.

use super::node::{Node, Pos, Value};

/// Appends one reference token to a pointer, escaping `~` as `~0` and `/`
/// as `~1`.
pub fn push(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// Appends several tokens.
pub fn join(pointer: &str, tokens: &[&str]) -> String {
    tokens.iter().fold(pointer.to_owned(), |p, t| push(&p, t))
}

/// A malformed pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPointer(pub String);

/// The reference tokens of a pointer (`""` is the whole document).
pub fn tokens(pointer: &str) -> Result<Vec<String>, BadPointer> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(BadPointer(format!(
            "`{pointer}` is not a JSON Pointer: it must start with `/`"
        )));
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(BadPointer(format!(
                                "`{pointer}`: `~` must be followed by 0 or 1"
                            )))
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Decodes `%XX` escapes of a URI fragment (UTF-8).
pub fn percent_decode(text: &str) -> Result<String, BadPointer> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| BadPointer(format!("`{text}`: bad percent-encoding")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadPointer(format!("`{text}`: not UTF-8 once decoded")))
}

/// The node a pointer names in `root`.
pub fn resolve<'a>(root: &'a Node, pointer: &str) -> Result<&'a Node, BadPointer> {
    let mut node = root;
    for token in tokens(pointer)? {
        node = step(node, &token)
            .ok_or_else(|| BadPointer(format!("`{pointer}`: nothing at `{token}`")))?;
    }
    Ok(node)
}

fn step<'a>(node: &'a Node, token: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(_) => node.get(token),
        Value::Seq(items) => {
            if token != "0" && token.starts_with('0') {
                return None;
            }
            items.get(token.parse::<usize>().ok()?)
        }
        _ => None,
    }
}

/// Where what `pointer` names is written: for a mapping entry, its key;
/// for a sequence item or the root, the value. A pointer that goes past
/// the document stops at the deepest node it reaches.
pub fn position(root: &Node, pointer: &str) -> Pos {
    let Ok(tokens) = tokens(pointer) else {
        return root.pos;
    };
    let mut node = root;
    let mut at = root.pos;
    for token in &tokens {
        match &node.value {
            Value::Map(_) => match node.entry(token) {
                Some(e) => {
                    at = e.key_pos;
                    node = &e.value;
                }
                None => return at,
            },
            Value::Seq(_) => match step(node, token) {
                Some(n) => {
                    at = n.pos;
                    node = n;
                }
                None => return at,
            },
            _ => return at,
        }
    }
    at
}

/// Whether `prefix` is `pointer` or one of its ancestors (token-wise:
/// `/a` is an ancestor of `/a/b`, not of `/ab`).
pub fn is_within(pointer: &str, prefix: &str) -> bool {
    pointer == prefix
        || (pointer.starts_with(prefix) && pointer.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::lint::parse::parse;

    #[test]
    fn escapes_and_reads_back_rfc6901_tokens() {
        let p = join("", &["paths", "/users/{id}", "a~b"]);
        assert_eq!(p, "/paths/~1users~1{id}/a~0b");
        assert_eq!(tokens(&p).unwrap(), vec!["paths", "/users/{id}", "a~b"]);
        // RFC 6901 §4: `~01` is `~1`, not `/`.
        assert_eq!(tokens("/~01").unwrap(), vec!["~1"]);
        assert!(tokens("a/b").is_err());
        assert!(tokens("/~2").is_err());
        assert_eq!(tokens("").unwrap(), Vec::<String>::new());
        assert_eq!(tokens("/").unwrap(), vec![""]);
    }

    #[test]
    fn resolves_the_rfc6901_examples() {
        // The document and pointers of RFC 6901 §5 (and §6 for fragments).
        let doc = parse(
            r#"{"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4,
                "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8}"#,
        )
        .unwrap();
        let cases = [
            ("/foo/0", "bar"),
            ("/", "0"),
            ("/a~1b", "1"),
            ("/c%d", "2"),
            ("/e^f", "3"),
            ("/g|h", "4"),
            ("/i\\j", "5"),
            ("/k\"l", "6"),
            ("/ ", "7"),
            ("/m~0n", "8"),
        ];
        for (p, want) in cases {
            assert_eq!(resolve(&doc, p).unwrap().scalar_text(), want, "{p}");
        }
        assert_eq!(
            resolve(&doc, &percent_decode("/c%25d").unwrap())
                .unwrap()
                .scalar_text(),
            "2"
        );
        assert!(resolve(&doc, "/foo/01").is_err(), "leading zeros");
        assert!(resolve(&doc, "/foo/2").is_err());
        assert!(resolve(&doc, "/nope").is_err());
    }

    #[test]
    fn positions_point_at_keys_and_items() {
        let doc = parse("a:\n  b: 1\n  list:\n    - x\n    - y\n").unwrap();
        assert_eq!(position(&doc, "/a/b"), Pos { line: 2, column: 3 });
        assert_eq!(position(&doc, "/a/list/1"), Pos { line: 5, column: 7 });
        assert_eq!(position(&doc, ""), Pos { line: 1, column: 1 });
        assert_eq!(position(&doc, "/a/missing"), Pos { line: 1, column: 1 });
    }

    #[test]
    fn within_is_token_wise() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(is_within("/a", ""));
        assert!(!is_within("/ab", "/a"));
    }
}
