//! A YAML/JSON document tree that remembers where each value and each
//! mapping key is in the source.

/// A position in a source file: 1-based line, 1-based column counted in
/// Unicode code points (SARIF `columnKind: unicodeCodePoints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// A value of the document, with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub value: Value,
    /// Where it starts.
    pub pos: Pos,
}

/// The data model of YAML 1.2's core schema (a superset of JSON's).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string (also every quoted or block scalar).
    Str(String),
    /// A sequence (JSON array).
    Seq(Vec<Node>),
    /// A mapping (JSON object), in source order; keys are unique.
    Map(Vec<Entry>),
}

/// One key/value pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as written (`200:` is the key `"200"`).
    pub key: String,
    /// Where the key starts: a finding about this entry points here.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

impl Node {
    /// The entries, when this is a mapping.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, when this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The number, when this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Whether this is a mapping.
    pub fn is_map(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }

    /// The entry with this key, when this is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key == key)
    }

    /// The value under this key, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// Whether this is a mapping with this key (whatever its value).
    pub fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The string under this key.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Node::as_str)
    }

    /// JavaScript truthiness, as the rules Spectral's rulesets are written
    /// in use it: `false`, `null`, `0` and `""` are falsy; every mapping and
    /// sequence (even empty) is truthy.
    pub fn is_truthy(&self) -> bool {
        match &self.value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0 && !f.is_nan(),
            Value::Str(s) => !s.is_empty(),
            Value::Seq(_) | Value::Map(_) => true,
        }
    }

    /// A schema's `type` names: the string, or the strings of a 3.1 type
    /// array (`[string, "null"]`).
    pub fn type_names(&self) -> Vec<&str> {
        match self.get("type") {
            Some(t) => match &t.value {
                Value::Str(s) => vec![s.as_str()],
                Value::Seq(items) => items.iter().filter_map(Node::as_str).collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        }
    }

    /// Whether a schema's `type` is, or includes, `name`.
    pub fn has_type(&self, name: &str) -> bool {
        self.type_names().contains(&name)
    }

    /// How many nodes this tree holds (itself included).
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
            _ => 0,
        }
    }

    /// A short rendering of a scalar for messages (`null`, `true`, `42`,
    /// the string itself); collections render as `{...}` / `[...]`.
    pub fn scalar_text(&self) -> String {
        match &self.value {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            Value::Seq(_) => "[...]".to_owned(),
            Value::Map(_) => "{...}".to_owned(),
        }
    }
}
