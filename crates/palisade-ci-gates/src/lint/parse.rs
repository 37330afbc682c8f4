//! YAML 1.2 and JSON text to a [`Node`] tree with positions.
//!
//! `saphyr-parser` turns the text into events, each with a span; this module
//! builds the tree from them (iteratively: deep nesting cannot overflow the
//! stack), resolving plain scalars with the YAML 1.2 core schema (so `200`
//! is an integer value but the mapping key `"200"`), expanding aliases
//! (with a budget against "billion laughs" documents) and `<<` merge keys
//! (YAML 1.1, common in OpenAPI files). Duplicate keys, several documents in
//! one file and nesting deeper than [`MAX_DEPTH`] are errors: the document
//! would not mean one thing to every reader.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

use super::node::{Entry, Node, Pos, Value};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 512;

/// Most nodes aliases may add to a document.
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// Why a text is not a document, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

fn pos(marker: saphyr_parser::Marker) -> Pos {
    Pos {
        line: u32::try_from(marker.line()).unwrap_or(u32::MAX).max(1),
        column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
    }
}

fn err(at: Pos, message: impl Into<String>) -> ParseError {
    ParseError {
        pos: at,
        message: message.into(),
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        keys: HashMap<String, Pos>,
        pending: Option<(String, Pos)>,
        merges: Vec<(Node, Pos)>,
        pos: Pos,
        anchor: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_budget: usize,
    root: Option<Node>,
}

/// Parses one YAML (or JSON) document.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_budget: MAX_ALIAS_NODES,
        root: None,
    };
    let mut documents = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| err(pos(*e.marker()), e.info().to_owned()))?;
        let at = pos(span.start);
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        at,
                        "more than one YAML document in the file; an OpenAPI file holds one",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    value: resolve_scalar(&text, style, tag.as_deref(), at)?,
                    pos: at,
                };
                b.complete(node, anchor, Some((text, style)), at)?;
            }
            Event::SequenceStart(anchor, _) => {
                b.open(at)?;
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos: at,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                b.open(at)?;
                b.stack.push(Frame::Map {
                    entries: Vec::new(),
                    keys: HashMap::new(),
                    pending: None,
                    merges: Vec::new(),
                    pos: at,
                    anchor,
                });
            }
            Event::SequenceEnd => match b.stack.pop() {
                Some(Frame::Seq { items, pos, anchor }) => {
                    b.complete(
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                        None,
                        at,
                    )?;
                }
                _ => return Err(err(at, "unbalanced sequence end")),
            },
            Event::MappingEnd => match b.stack.pop() {
                Some(Frame::Map {
                    mut entries,
                    mut keys,
                    merges,
                    pos,
                    anchor,
                    ..
                }) => {
                    merge_into(&mut entries, &mut keys, merges)?;
                    b.complete(
                        Node {
                            value: Value::Map(entries),
                            pos,
                        },
                        anchor,
                        None,
                        at,
                    )?;
                }
                _ => return Err(err(at, "unbalanced mapping end")),
            },
            Event::Alias(id) => {
                let Some(node) = b.anchors.get(&id) else {
                    return Err(err(at, "alias to an unknown anchor"));
                };
                let size = node.size();
                if size > b.alias_budget {
                    return Err(err(
                        at,
                        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    ));
                }
                b.alias_budget -= size;
                let node = node.clone();
                b.complete(node, 0, None, at)?;
            }
        }
    }
    b.root.ok_or_else(|| {
        err(
            Pos { line: 1, column: 1 },
            "the file is empty: no YAML or JSON document",
        )
    })
}

impl Builder {
    fn open(&self, at: Pos) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(at, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        if let Some(Frame::Map { pending: None, .. }) = self.stack.last() {
            return Err(err(at, "mapping keys must be scalars (strings)"));
        }
        Ok(())
    }

    /// A value is complete: it goes into the enclosing collection, or is the
    /// root. `raw` is the scalar as written, for use as a mapping key.
    fn complete(
        &mut self,
        node: Node,
        anchor: usize,
        raw: Option<(Cow<'_, str>, ScalarStyle)>,
        at: Pos,
    ) -> Result<(), ParseError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                keys,
                pending,
                merges,
                ..
            }) => match pending.take() {
                None => {
                    let (key, plain) = match raw {
                        Some((text, style)) => (text.into_owned(), style == ScalarStyle::Plain),
                        None => match &node.value {
                            Value::Seq(_) | Value::Map(_) => {
                                return Err(err(at, "mapping keys must be scalars (strings)"))
                            }
                            _ => (node.scalar_text(), false),
                        },
                    };
                    // `<<` (plain) is a merge key; quoted, it is an ordinary key.
                    let key = if plain && key == "<<" {
                        MERGE_KEY.to_owned()
                    } else {
                        key
                    };
                    if key != MERGE_KEY {
                        if let Some(first) = keys.get(&key) {
                            return Err(err(
                                node.pos,
                                format!(
                                    "duplicate key `{key}` (first at line {}, column {})",
                                    first.line, first.column
                                ),
                            ));
                        }
                        keys.insert(key.clone(), node.pos);
                    }
                    *pending = Some((key, node.pos));
                    Ok(())
                }
                Some((key, key_pos)) => {
                    if key == MERGE_KEY {
                        merges.push((node, key_pos));
                    } else {
                        entries.push(Entry {
                            key,
                            key_pos,
                            value: node,
                        });
                    }
                    Ok(())
                }
            },
        }
    }
}

/// Stands for a plain `<<` key while its mapping is open; it cannot clash
/// with a real key (keys never contain NUL).
const MERGE_KEY: &str = "\0<<";

/// Applies `<<` merge keys: entries of the merged mappings that the mapping
/// does not set itself are added (the first merged mapping wins).
fn merge_into(
    entries: &mut Vec<Entry>,
    keys: &mut HashMap<String, Pos>,
    merges: Vec<(Node, Pos)>,
) -> Result<(), ParseError> {
    for (node, at) in merges {
        let sources: Vec<Node> = match node.value {
            Value::Map(_) => vec![node],
            Value::Seq(items) => items,
            _ => {
                return Err(err(
                    at,
                    "a `<<` merge key needs a mapping or a list of mappings",
                ))
            }
        };
        for source in sources {
            let Value::Map(merged) = source.value else {
                return Err(err(
                    source.pos,
                    "a `<<` merge key needs a mapping or a list of mappings",
                ));
            };
            for entry in merged {
                if !keys.contains_key(&entry.key) {
                    keys.insert(entry.key.clone(), entry.key_pos);
                    entries.push(entry);
                }
            }
        }
    }
    Ok(())
}

/// A scalar's value under the YAML 1.2 core schema. Quoted and block
/// scalars are strings; plain ones may be null, booleans or numbers; the
/// core tags (`!!str`, `!!int`, ...) force a type.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    at: Pos,
) -> Result<Value, ParseError> {
    if let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) {
        let value = match tag.suffix.as_str() {
            "str" => Some(Value::Str(text.to_owned())),
            "null" => Some(Value::Null),
            "bool" => parse_bool(text).map(Value::Bool),
            "int" => parse_int(text).map(Value::Int),
            "float" => parse_float(text).map(Value::Float),
            _ => None,
        };
        return value.ok_or_else(|| err(at, format!("`{text}` is not a valid !!{}", tag.suffix)));
    }
    if style != ScalarStyle::Plain || tag.is_some() {
        return Ok(Value::Str(text.to_owned()));
    }
    Ok(if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        Value::Null
    } else if let Some(b) = parse_bool(text) {
        Value::Bool(b)
    } else if let Some(i) = parse_int(text) {
        Value::Int(i)
    } else if let Some(f) = parse_float(text) {
        Value::Float(f)
    } else {
        Value::Str(text.to_owned())
    })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let bytes = unsigned.as_bytes();
    let mut i = 0;
    let int_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != bytes.len() {
        return None;
    }
    text.parse().ok()
}
