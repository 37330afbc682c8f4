//! Serialized-object payloads: the markers of formats whose deserializers
//! run code chosen by the data (Java serialization, PHP `unserialize`,
//! Python pickle, .NET BinaryFormatter, Ruby Marshal, YAML language tags,
//! node-serialize), in text (base64, hex, PHP's text form, pickle protocol
//! 0) and as raw bytes, plus the polymorphic type hints of JSON libraries
//! (`$type`, `@type`, `@class`, jsonpickle's `py/…`).
//!
//! Text markers are looked for only at the start of a token (the previous
//! character is not a letter or digit), and base64/hex markers must start a
//! run of at least [`MIN_ENCODED_RUN`] encoded characters, so that a marker
//! occurring by chance inside an unrelated blob or word does not count.

use crate::profile::{self, Profile};

/// Shortest base64/hex run that counts as an encoded object.
const MIN_ENCODED_RUN: usize = 12;

/// Modules whose globals a pickle uses to run commands (`cos\nsystem\n`).
const PICKLE_MODULES: &[&str] = &[
    "__builtin__",
    "builtins",
    "commands",
    "importlib",
    "nt",
    "os",
    "posix",
    "pty",
    "runpy",
    "shutil",
    "socket",
    "subprocess",
    "sys",
];

/// Base64 prefixes of pickles: protocols 4 and 5 start `\x80\x04\x95` /
/// `\x80\x05\x95`; protocols 2 and 3 start `\x80\x02` / `\x80\x03` and one of
/// the usual first opcodes (`c`, `}`, `]`, `(`, `X`, `K`).
const PICKLE_BASE64: &[&str] = &[
    "gASV", "gAWV", "gAJj", "gAJ9", "gAJd", "gAIo", "gAJY", "gAJL", "gANj", "gAN9", "gANd", "gAMo",
    "gANY", "gANL",
];

/// YAML tags that make a YAML loader construct arbitrary objects.
const YAML_TAGS: &[&str] = &[
    "!!python/",
    "!!javax.",
    "!!java.",
    "!!com.",
    "!!org.",
    "!!net.",
    "!ruby/",
    "!!ruby/",
];

/// Package prefixes of well-known Java deserialization gadgets.
const JAVA_GADGET_PACKAGES: &[&str] = &[
    "bsh.",
    "ch.qos.logback.",
    "clojure.",
    "com.alibaba.",
    "com.mchange.",
    "com.sun.",
    "com.zaxxer.",
    "groovy.",
    "java.",
    "javax.",
    "oracle.",
    "org.apache.",
    "org.codehaus.",
    "org.hibernate.",
    "org.mozilla.",
    "org.springframework.",
    "sun.",
];

/// jsonpickle's tags.
const JSONPICKLE_KEYS: &[&str] = &[
    "py/function",
    "py/newargs",
    "py/newargsex",
    "py/newobj",
    "py/object",
    "py/reduce",
    "py/repr",
    "py/type",
];

/// Byte flags for the marker scan: a letter or digit, the first byte of a
/// marker that must start a token, the first byte of a marker found anywhere.
const ALNUM: u8 = 1;
const TOKEN_START: u8 = 2;
const ANYWHERE: u8 = 4;

const START: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_alphanumeric() {
            table[b] = ALNUM;
        }
        b += 1;
    }
    let token_starts = b"raA0gOCpPct";
    let mut i = 0;
    while i < token_starts.len() {
        table[token_starts[i] as usize] |= TOKEN_START;
        i += 1;
    }
    table[b'!' as usize] |= ANYWHERE;
    table[b'_' as usize] |= ANYWHERE;
    table[0xC2] |= ANYWHERE;
    table
};

/// Returns the rule that flags `text` as a serialized object, if any.
pub(crate) fn detect(text: &str, profile: Profile) -> Option<&'static str> {
    let bytes = text.as_bytes();
    // Short values can only hold the markers that carry punctuation.
    if bytes.len() < MIN_ENCODED_RUN
        && !profile.any(profile::COLON | profile::BANG | profile::UNDERSCORE | profile::NON_ASCII)
    {
        return None;
    }
    let has_newline = profile.any(profile::NEWLINE);
    let mut prev_alnum = false;
    for (i, &b) in bytes.iter().enumerate() {
        let at_token_start = !prev_alnum;
        let start = START[usize::from(b)];
        prev_alnum = start & ALNUM != 0;
        let candidate = start & ANYWHERE != 0 || (at_token_start && start & TOKEN_START != 0);
        if !candidate {
            continue;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        // Every marker is told apart from ordinary words by its second byte.
        let second = rest.get(1).copied().unwrap_or_default();
        let rule = match b {
            b'!' => YAML_TAGS
                .iter()
                .any(|tag| rest.starts_with(tag.as_bytes()))
                .then_some("yaml_tag"),
            b'_' => rest
                .starts_with(b"_$$ND_FUNC$$_")
                .then_some("node_serialize"),
            0xC2 => latin1_marker(rest),
            _ if !at_token_start => None,
            b'r' if second == b'O' => (rest.starts_with(b"rO0AB")
                && base64_run(rest) >= MIN_ENCODED_RUN)
                .then_some("java_serialized_base64"),
            b'a' | b'A' if matches!(second, b'c' | b'C' | b'A' | b':') => {
                if starts_with_ignore_case(rest, b"aced0005") && hex_run(rest) >= MIN_ENCODED_RUN {
                    Some("java_serialized_hex")
                } else if rest.starts_with(b"AAEAAAD/////") {
                    Some("dotnet_binaryformatter_base64")
                } else if b == b'a' && php_array(rest) {
                    Some("php_serialized")
                } else {
                    None
                }
            }
            b'0' if matches!(second, b'x' | b'X' | b'0') => {
                if starts_with_ignore_case(rest, b"0xaced0005") {
                    Some("java_serialized_hex")
                } else if starts_with_ignore_case(rest, b"0001000000ffffffff") {
                    Some("dotnet_binaryformatter_hex")
                } else {
                    None
                }
            }
            b'g' if second == b'A' => {
                (PICKLE_BASE64.iter().any(|p| rest.starts_with(p.as_bytes()))
                    && base64_run(rest) >= MIN_ENCODED_RUN)
                    .then_some("pickle_base64")
            }
            b'O' | b'C' if second == b':' => php_object(rest).then_some("php_serialized"),
            b'p' | b'P' if matches!(second, b'h' | b'H') => {
                starts_with_ignore_case(rest, b"phar://").then_some("php_phar_wrapper")
            }
            b'c' if has_newline => pickle_protocol0(rest).then_some("pickle_protocol0"),
            b't' if second == b'a' => rest
                .starts_with(b"tag:yaml.org,2002:python/")
                .then_some("yaml_tag"),
            _ => None,
        };
        if rule.is_some() {
            return rule;
        }
    }
    None
}

/// Markers of binary serializations at the start of `bytes` (a raw body or
/// one part of a multipart body).
pub(crate) fn detect_binary(bytes: &[u8]) -> Option<&'static str> {
    match *bytes {
        [0xAC, 0xED, 0x00, 0x05, ..] => Some("java_serialized_raw"),
        [0x80, 0x04 | 0x05, 0x95, ..] => Some("pickle_raw"),
        [0x80, 0x02 | 0x03, op, ..] if b"c}](XKqUC\x8c\x95".contains(&op) => Some("pickle_raw"),
        [0x00, 0x01, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, ..] => {
            Some("dotnet_binaryformatter_raw")
        }
        [0x04, 0x08, t, ..] if b"o{[Iu\"U:;@0TFicmle/".contains(&t) => Some("ruby_marshal_raw"),
        _ => None,
    }
}

/// A JSON member that asks a polymorphic deserializer for a class:
/// `"$type": "System.…, Assembly"` (Json.NET), `"@type"`/`"@class"` with a
/// Java class name (fastjson, Jackson, json-io), or a jsonpickle `py/…` key.
pub(crate) fn type_hint(key: &str, value: &serde_json::Value) -> Option<&'static str> {
    if !matches!(key.as_bytes().first(), Some(b'p' | b'$' | b'@')) {
        return None;
    }
    if JSONPICKLE_KEYS.contains(&key) {
        return Some("jsonpickle_tag");
    }
    let serde_json::Value::String(name) = value else {
        return None;
    };
    match key {
        "$type" if dotnet_type_name(name) => Some("dotnet_type_hint"),
        "@type" | "@class" | "@c" if java_class_name(name) => Some("java_type_hint"),
        _ => None,
    }
}

/// Jackson's array form of default typing: `["org.springframework.…", {…}]`.
pub(crate) fn typed_array(items: &[serde_json::Value]) -> Option<&'static str> {
    match items {
        [serde_json::Value::String(class), _] if java_class_name(class) => JAVA_GADGET_PACKAGES
            .iter()
            .any(|p| class.starts_with(p))
            .then_some("java_type_hint"),
        _ => None,
    }
}

/// `Namespace.Type, Assembly` or a `System.`/`Microsoft.` type name.
fn dotnet_type_name(name: &str) -> bool {
    let type_part = name.split(',').next().unwrap_or(name).trim();
    let dotted = type_part.contains('.')
        && type_part.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_`+[]".contains(c))
        });
    dotted
        && (name.contains(',')
            || type_part.starts_with("System.")
            || type_part.starts_with("Microsoft."))
}

/// A fully qualified Java class name: lower-case package segments and a
/// capitalised class (`com.sun.rowset.JdbcRowSetImpl`).
fn java_class_name(name: &str) -> bool {
    let mut segments = name.split('.').peekable();
    let mut count = 0;
    while let Some(seg) = segments.next() {
        count += 1;
        let mut chars = seg.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        if !(first.is_ascii_alphabetic() || first == '_' || first == '$')
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return false;
        }
        let is_last = segments.peek().is_none();
        if is_last != first.is_ascii_uppercase() {
            return false;
        }
    }
    count >= 2
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}

fn base64_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
        })
        .count()
}

fn hex_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_hexdigit()).count()
}

/// Java or pickle headers that were decoded as Latin-1 into a string:
/// `\u{80}\u{2}`–`\u{80}\u{5}` and `\u{AC}\u{ED}\u{0}\u{5}`.
fn latin1_marker(rest: &[u8]) -> Option<&'static str> {
    match *rest {
        [0xC2, 0x80, 0x02..=0x05, ..] => Some("pickle_latin1"),
        [0xC2, 0xAC, 0xC3, 0xAD, 0x00, 0x05, ..] => Some("java_serialized_latin1"),
        _ => None,
    }
}

/// A tiny cursor over bytes for the PHP and pickle grammars.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    fn eat(&mut self, literal: &[u8]) -> bool {
        let matches = self
            .bytes
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(literal));
        if matches {
            self.pos += literal.len();
        }
        matches
    }

    fn eat_while(&mut self, pred: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(|&b| pred(b)) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn digits(&mut self) -> bool {
        self.eat_while(|b| b.is_ascii_digit()) > 0
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }
}

/// `O:8:"stdClass":1:{` or `C:11:"ArrayObject":21:{` (with PHP's optional `+`).
fn php_object(rest: &[u8]) -> bool {
    let mut c = Cursor::new(rest);
    (c.eat(b"O:") || c.eat(b"C:"))
        && {
            c.eat(b"+");
            c.digits()
        }
        && c.eat(b":\"")
        && c.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'\\') > 0
        && c.eat(b"\":")
        && c.digits()
        && c.eat(b":{")
}

/// `a:2:{i:0;…` — an array whose first element (or `}`) follows.
fn php_array(rest: &[u8]) -> bool {
    let mut c = Cursor::new(rest);
    c.eat(b"a:")
        && c.digits()
        && c.eat(b":{")
        && match c.peek() {
            Some(b'}') => true,
            Some(b'i' | b's' | b'a' | b'O' | b'b' | b'd') => c.bytes.get(c.pos + 1) == Some(&b':'),
            Some(b'N') => c.bytes.get(c.pos + 1) == Some(&b';'),
            _ => false,
        }
}

/// Protocol-0 `GLOBAL` opcode: `c<module>\n<name>\n` with a dangerous module.
fn pickle_protocol0(rest: &[u8]) -> bool {
    let Some(body) = rest.get(1..) else {
        return false;
    };
    PICKLE_MODULES.iter().any(|module| {
        let mut c = Cursor::new(body);
        c.eat(module.as_bytes())
            && c.eat(b"\n")
            && c.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') > 0
            && c.eat(b"\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detect(text: &str) -> Option<&'static str> {
        super::detect(text, Profile::of(text))
    }

    #[test]
    fn java() {
        assert_eq!(
            detect("rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA=="),
            Some("java_serialized_base64")
        );
        assert_eq!(
            detect("session=rO0ABXQABHRlc3Q="),
            Some("java_serialized_base64")
        );
        assert_eq!(
            detect("aced00057372001b6a617661"),
            Some("java_serialized_hex")
        );
        assert_eq!(detect("0xACED000573"), Some("java_serialized_hex"));
        assert_eq!(
            detect_binary(b"\xac\xed\x00\x05sr\x00"),
            Some("java_serialized_raw")
        );
        // Not at a token start, or too short to be an object.
        assert_eq!(detect("xrO0ABXNyABFqYXZhLnV0aWwu"), None);
        assert_eq!(detect("rO0AB"), None);
        assert_eq!(detect("acme0005"), None);
    }

    #[test]
    fn php() {
        assert_eq!(
            detect(r#"O:8:"stdClass":1:{s:4:"name";}"#),
            Some("php_serialized")
        );
        assert_eq!(detect(r#"O:+4:"User":1:{}"#), Some("php_serialized"));
        assert_eq!(detect(r#"x=a:2:{i:0;s:3:"foo";}"#), Some("php_serialized"));
        assert_eq!(detect("phar://uploads/a.jpg"), Some("php_phar_wrapper"));
        assert_eq!(detect("O: 8 items"), None);
        assert_eq!(detect("Section A:2 {draft}"), None);
        assert_eq!(detect("data:text/plain,a:2:{x}"), None);
    }

    #[test]
    fn pickle() {
        assert_eq!(
            detect("gASVJgAAAAAAAACMBXBvc2l4lIwGc3lzdGVt"),
            Some("pickle_base64")
        );
        assert_eq!(
            detect("gAJjcG9zaXgKc3lzdGVtCnEAWAIAAABpZHEBhXEC"),
            Some("pickle_base64")
        );
        assert_eq!(detect("cos\nsystem\n(S'id'\ntR."), Some("pickle_protocol0"));
        assert_eq!(detect("(cposix\nsystem\n"), Some("pickle_protocol0"));
        assert_eq!(detect("\u{80}\u{4}\u{95}abc"), Some("pickle_latin1"));
        assert_eq!(detect_binary(b"\x80\x04\x95\x1c\x00"), Some("pickle_raw"));
        assert_eq!(detect_binary(b"\x80\x02cposix\nsystem"), Some("pickle_raw"));
        assert_eq!(detect("gAS is an abbreviation"), None);
        assert_eq!(detect("Nachos\nsystem\n"), None);
    }

    #[test]
    fn dotnet_ruby_yaml_node() {
        assert_eq!(
            detect("AAEAAAD/////AQAAAAAAAAAMAgAAAF5N"),
            Some("dotnet_binaryformatter_base64")
        );
        assert_eq!(
            detect("0001000000ffffffff01"),
            Some("dotnet_binaryformatter_hex")
        );
        assert_eq!(
            detect_binary(b"\x00\x01\x00\x00\x00\xff\xff\xff\xff\x01"),
            Some("dotnet_binaryformatter_raw")
        );
        assert_eq!(
            detect_binary(b"\x04\x08o:\x08Foo"),
            Some("ruby_marshal_raw")
        );
        assert_eq!(
            detect("!!python/object/apply:os.system [id]"),
            Some("yaml_tag")
        );
        assert_eq!(detect("--- !ruby/object:Gem::Installer"), Some("yaml_tag"));
        assert_eq!(detect("_$$ND_FUNC$$_function(){}"), Some("node_serialize"));
        assert_eq!(detect_binary(b"\x89PNG\r\n\x1a\n"), None);
    }

    #[test]
    fn json_type_hints() {
        let s = |v: &str| json!(v);
        assert_eq!(
            type_hint(
                "$type",
                &s("System.Windows.Data.ObjectDataProvider, PresentationFramework")
            ),
            Some("dotnet_type_hint")
        );
        assert_eq!(
            type_hint("@type", &s("com.sun.rowset.JdbcRowSetImpl")),
            Some("java_type_hint")
        );
        assert_eq!(
            type_hint("py/object", &s("__main__.X")),
            Some("jsonpickle_tag")
        );
        // JSON-LD and Mongo's `$type` with a number are not type hints.
        assert_eq!(type_hint("@type", &s("Person")), None);
        assert_eq!(type_hint("@type", &s("schema:Person")), None);
        assert_eq!(type_hint("$type", &json!(2)), None);
        assert_eq!(
            typed_array(&[
                s("org.springframework.context.support.ClassPathXmlApplicationContext"),
                s("x")
            ]),
            Some("java_type_hint")
        );
        assert_eq!(typed_array(&[s("com.example.MyApp"), s("x")]), None);
    }
}
