//! A spec and every file its `$ref`s reach, loaded once, and `$ref`
//! resolution over them.
//!
//! A `$ref` is `[relative-path][#fragment]`: no path means this file, a
//! relative path is resolved against the directory of the file the `$ref`
//! is written in, and the fragment is a (percent-encoded) JSON Pointer.
//! Remote references (`https://...`, `urn:...`) are not fetched: the
//! linter never touches the network. Files are loaded up front (every
//! `$ref` in a loaded file, transitively), so the rules work on an
//! immutable set of trees.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::node::{Node, Value};
use super::parse;
use super::pointer;
use crate::error::Error;

/// Index of a file in a [`Workspace`].
pub type FileId = usize;

/// One loaded file.
#[derive(Debug)]
pub struct SourceFile {
    /// Canonical path (or the name given to an in-memory text).
    pub path: PathBuf,
    /// The path as reported.
    pub display: String,
    /// The document.
    pub root: Node,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The OpenAPI version of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 3.0.x: JSON Schema draft-04-ish schemas, `exclusiveMinimum: true`.
    V30,
    /// 3.1.x: JSON Schema 2020-12, `type` arrays, `unevaluatedProperties`.
    V31,
}

/// Why a `$ref` leads nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// A URL: not followed.
    Remote(String),
    /// The file or the pointer inside it does not exist, or a `$ref` chain loops.
    Broken(String),
}

/// Files and where each one came from.
#[derive(Debug, Default)]
pub struct Workspace {
    files: Vec<SourceFile>,
    by_path: HashMap<PathBuf, FileId>,
    /// Files a `$ref` names that could not be read: (file, reason).
    unreadable: HashMap<PathBuf, String>,
}

/// A node, its file and its JSON Pointer.
#[derive(Debug, Clone)]
pub struct Located<'a> {
    /// The file.
    pub file: FileId,
    /// Pointer from the file's root.
    pub pointer: String,
    /// The node.
    pub node: &'a Node,
}

impl<'a> Located<'a> {
    /// The child under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<Located<'a>> {
        self.node.get(key).map(|node| Located {
            file: self.file,
            pointer: pointer::push(&self.pointer, key),
            node,
        })
    }

    /// The entries of a mapping, each located.
    pub fn entries(&self) -> Vec<(&'a str, Located<'a>)> {
        self.node
            .as_map()
            .map(|m| {
                m.iter()
                    .map(|e| {
                        (
                            e.key.as_str(),
                            Located {
                                file: self.file,
                                pointer: pointer::push(&self.pointer, &e.key),
                                node: &e.value,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The items of a sequence, each located.
    pub fn items(&self) -> Vec<Located<'a>> {
        self.node
            .as_seq()
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, node)| Located {
                        file: self.file,
                        pointer: pointer::push(&self.pointer, &i.to_string()),
                        node,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Same place, as a key for sets.
    pub fn key(&self) -> (FileId, String) {
        (self.file, self.pointer.clone())
    }
}

impl Workspace {
    /// Loads the spec at `path` and every file it references; `display`
    /// turns a path into the form findings report.
    pub fn load(path: &Path, display: &dyn Fn(&Path) -> String) -> Result<(Self, FileId), Error> {
        let mut ws = Workspace::default();
        let root = ws.add_file(path, display)?;
        ws.load_references(root, display)?;
        Ok((ws, root))
    }

    /// A workspace of one in-memory text; relative `$ref`s resolve against
    /// `base_dir` when given.
    pub fn from_text(
        name: &str,
        text: &str,
        base_dir: Option<&Path>,
        display: &dyn Fn(&Path) -> String,
    ) -> Result<(Self, FileId), Error> {
        let root = parse::parse(text).map_err(|e| Error::SpecSyntax {
            path: PathBuf::from(name),
            line: e.pos.line,
            column: e.pos.column,
            message: e.message,
        })?;
        let mut ws = Workspace::default();
        let path = match base_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        };
        ws.by_path.insert(path.clone(), 0);
        ws.files.push(SourceFile {
            path,
            display: name.to_owned(),
            root,
            bytes: text.len() as u64,
        });
        if base_dir.is_some() {
            ws.load_references(0, display)?;
        }
        Ok((ws, 0))
    }

    fn add_file(
        &mut self,
        path: &Path,
        display: &dyn Fn(&Path) -> String,
    ) -> Result<FileId, Error> {
        let canonical = path.canonicalize().map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if let Some(&id) = self.by_path.get(&canonical) {
            return Ok(id);
        }
        let shown = display(&canonical);
        let syntax = |line: u32, column: u32, message: String| Error::SpecSyntax {
            path: PathBuf::from(&shown),
            line,
            column,
            message,
        };
        let bytes = std::fs::read(&canonical).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            syntax(
                1,
                1,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        let is_json = canonical
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            // YAML accepts more than JSON (trailing commas, comments, single
            // quotes): a .json file must be JSON.
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                let line = u32::try_from(e.line()).unwrap_or(u32::MAX);
                let column = u32::try_from(e.column()).unwrap_or(u32::MAX);
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m)
                    .to_owned();
                return Err(syntax(line.max(1), column.max(1), message));
            }
        }
        let root = parse::parse(&text).map_err(|e| syntax(e.pos.line, e.pos.column, e.message))?;
        let id = self.files.len();
        self.files.push(SourceFile {
            display: shown.clone(),
            path: canonical.clone(),
            root,
            bytes: text.len() as u64,
        });
        self.by_path.insert(canonical, id);
        Ok(id)
    }

    /// Loads every file reachable through `$ref`s from `start`. A file that
    /// is missing is remembered (its `$ref`s are reported as broken); one
    /// that exists but does not parse is an error, like the spec itself.
    fn load_references(
        &mut self,
        start: FileId,
        display: &dyn Fn(&Path) -> String,
    ) -> Result<(), Error> {
        let mut queue = VecDeque::from([start]);
        while let Some(file) = queue.pop_front() {
            let mut targets = Vec::new();
            for_each_ref(&self.files[file].root, &mut |r: &str, _: &str| {
                if let Some(path) = self.file_part(file, r) {
                    targets.push(path);
                }
            });
            for target in targets {
                if self.unreadable.contains_key(&target) {
                    continue;
                }
                let known = target
                    .canonicalize()
                    .ok()
                    .and_then(|c| self.by_path.get(&c).copied());
                if known.is_some() {
                    continue;
                }
                match std::fs::metadata(&target) {
                    Ok(meta) if meta.is_file() => {
                        let id = self.add_file(&target, display)?;
                        queue.push_back(id);
                    }
                    Ok(_) => {
                        self.unreadable
                            .insert(target, "is not a regular file".to_owned());
                    }
                    Err(e) => {
                        self.unreadable.insert(target, e.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// The file a `$ref` written in `file` names, when it names another
    /// local file.
    fn file_part(&self, file: FileId, reference: &str) -> Option<PathBuf> {
        let (path, _) = reference.split_once('#').unwrap_or((reference, ""));
        if path.is_empty() || is_remote(path) {
            return None;
        }
        let path = pointer::percent_decode(path).ok()?;
        let base = self.files[file].path.parent().unwrap_or(Path::new("."));
        Some(base.join(path))
    }

    /// The files, in load order (the spec first).
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// One file.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    /// The root of a file, located.
    pub fn root(&self, id: FileId) -> Located<'_> {
        Located {
            file: id,
            pointer: String::new(),
            node: &self.files[id].root,
        }
    }

    /// What `reference`, written in `file`, points at.
    pub fn resolve_ref(&self, file: FileId, reference: &str) -> Result<Located<'_>, RefError> {
        let (path, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if is_remote(path) {
            return Err(RefError::Remote(reference.to_owned()));
        }
        let target = if path.is_empty() {
            file
        } else {
            let Some(full) = self.file_part(file, reference) else {
                return Err(RefError::Broken(format!("`{reference}`: bad file path")));
            };
            if let Some(reason) = self.unreadable.get(&full) {
                return Err(RefError::Broken(format!("`{path}`: {reason}")));
            }
            match full
                .canonicalize()
                .ok()
                .and_then(|c| self.by_path.get(&c).copied())
            {
                Some(id) => id,
                None => {
                    return Err(RefError::Broken(format!("`{path}`: file not loaded")));
                }
            }
        };
        let fragment = pointer::percent_decode(fragment).map_err(|e| RefError::Broken(e.0))?;
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return Err(RefError::Broken(format!(
                "`{reference}`: plain-name fragments (`$anchor`) are not supported; use a JSON Pointer"
            )));
        }
        let node = pointer::resolve(&self.files[target].root, &fragment).map_err(|e| {
            RefError::Broken(if path.is_empty() {
                e.0
            } else {
                format!("{path}#{}", e.0)
            })
        })?;
        Ok(Located {
            file: target,
            pointer: fragment,
            node,
        })
    }

    /// Follows `$ref`s from `at` until a node that is not a reference
    /// (at most 64 hops; a loop is an error).
    pub fn deref<'a>(&'a self, at: Located<'a>) -> Result<Located<'a>, RefError> {
        let mut current = at;
        for _ in 0..64 {
            match current.node.get_str("$ref") {
                Some(r) => current = self.resolve_ref(current.file, r)?,
                None => return Ok(current),
            }
        }
        Err(RefError::Broken(format!(
            "`$ref` chain from {} loops or is longer than 64",
            if current.pointer.is_empty() {
                "the root"
            } else {
                &current.pointer
            }
        )))
    }

    /// Like [`Workspace::deref`], but a reference that leads nowhere gives
    /// `None` (the unresolved-ref rule reports it once, where it is written).
    pub fn follow<'a>(&'a self, at: Located<'a>) -> Option<Located<'a>> {
        self.deref(at).ok()
    }

    /// The OpenAPI version of the spec in `file`, or why it is not one.
    pub fn version(&self, file: FileId) -> Result<Version, Error> {
        let f = &self.files[file];
        let err = |pos: super::node::Pos, message: String| Error::NotOpenApi {
            path: PathBuf::from(&f.display),
            line: pos.line,
            column: pos.column,
            message,
        };
        if !f.root.is_map() {
            return Err(err(
                f.root.pos,
                "the document is not a mapping (object)".to_owned(),
            ));
        }
        if let Some(swagger) = f.root.entry("swagger") {
            return Err(err(
                swagger.key_pos,
                format!(
                    "Swagger {} (OpenAPI 2.0) is not supported; convert it to OpenAPI 3 (e.g. with swagger2openapi)",
                    swagger.value.scalar_text()
                ),
            ));
        }
        let Some(entry) = f.root.entry("openapi") else {
            return Err(err(f.root.pos, "no `openapi` version field".to_owned()));
        };
        match &entry.value.value {
            Value::Str(v) if v.starts_with("3.0.") => Ok(Version::V30),
            Value::Str(v) if v.starts_with("3.1.") => Ok(Version::V31),
            _ => Err(err(
                entry.value.pos,
                format!(
                    "unsupported `openapi` version `{}`; expected a \"3.0.x\" or \"3.1.x\" string",
                    entry.value.scalar_text()
                ),
            )),
        }
    }
}

/// Whether a `$ref`'s path part is a URL rather than a relative path.
fn is_remote(path: &str) -> bool {
    let scheme_len = path.find(':').filter(|&i| i > 1).filter(|&i| {
        path[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    scheme_len.is_some() || path.starts_with("//")
}

/// Keys whose values are data, not OpenAPI structure: a `$ref` under them
/// is an example's content, not a reference.
const DATA_KEYS: [&str; 5] = ["example", "default", "const", "enum", "value"];

/// Keys whose values are maps of user-chosen names (a property may be
/// called `example`), where [`DATA_KEYS`] mean nothing.
const NAMED_MAPS: [&str; 18] = [
    "properties",
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
    "schemas",
    "parameters",
    "responses",
    "headers",
    "examples",
    "requestBodies",
    "securitySchemes",
    "links",
    "callbacks",
    "pathItems",
    "content",
    "encoding",
    "variables",
];

/// Calls `f(reference, pointer)` for every `$ref` string in the tree,
/// outside example values and `x-` extensions; `pointer` is the object
/// holding the `$ref`.
pub fn for_each_ref(root: &Node, f: &mut dyn FnMut(&str, &str)) {
    let mut stack: Vec<(&Node, String, bool)> = vec![(root, String::new(), false)];
    while let Some((node, ptr, named)) = stack.pop() {
        match &node.value {
            Value::Map(entries) => {
                for e in entries {
                    if e.key == "$ref" && !named {
                        if let Some(r) = e.value.as_str() {
                            f(r, &ptr);
                            continue;
                        }
                    }
                    if !named && (DATA_KEYS.contains(&e.key.as_str()) || e.key.starts_with("x-")) {
                        continue;
                    }
                    let child_named = !named && NAMED_MAPS.contains(&e.key.as_str());
                    stack.push((&e.value, pointer::push(&ptr, &e.key), child_named));
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((item, pointer::push(&ptr, &i.to_string()), false));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn remote_references_are_recognised() {
        assert!(is_remote("https://example.com/a.yaml"));
        assert!(is_remote("urn:x:y"));
        assert!(is_remote("//host/a.yaml"));
        assert!(!is_remote("schemas/a.yaml"));
        assert!(!is_remote("./a.yaml"));
        assert!(!is_remote("C"));
    }
}
