//! Loading and checking a directory of `*.cedar` files.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy as cedar;
use miette::Diagnostic;

use crate::error::{PolicyLoadError, PolicyProblem, ProblemKind};
use crate::schema::{PolicySchema, ENDPOINT_TYPE};

/// A validated policy set loaded from a directory of `*.cedar` files
/// (non-recursive, files in name order).
#[derive(Debug, Clone)]
pub struct PolicySet {
    set: cedar::PolicySet,
    ids: Vec<String>,
    files: Vec<PathBuf>,
}

/// Where a policy was defined, for error messages.
struct Origin {
    file: PathBuf,
    line: Option<usize>,
}

impl PolicySet {
    /// Loads every `*.cedar` file in `dir` (not its subdirectories), in name
    /// order, and checks the result against `schema`.
    ///
    /// A directory without `.cedar` files loads as an empty set, which denies
    /// everything.
    ///
    /// # Errors
    /// Every problem found: the directory or a file cannot be read, a file
    /// does not parse, a policy fails strict validation, two policies share
    /// an id, or a policy names an endpoint that does not exist.
    pub fn load_dir(dir: &Path, schema: &PolicySchema) -> Result<Self, PolicyLoadError> {
        let fail = |problems| PolicyLoadError {
            dir: dir.to_path_buf(),
            problems,
        };
        let mut problems = Vec::new();
        let files = list_policy_files(dir, &mut problems).map_err(|p| fail(vec![p]))?;

        let mut set = cedar::PolicySet::new();
        let mut ids = Vec::new();
        let mut seen: HashMap<String, Origin> = HashMap::new();
        for file in &files {
            let text = match fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(PolicyProblem {
                        kind: ProblemKind::Io,
                        file: file.clone(),
                        line: None,
                        message: format!("cannot read file: {e}"),
                    });
                    continue;
                }
            };
            let mut file_problems = Vec::new();
            let loaded = load_file(file, &text, schema, &mut seen, &mut file_problems);
            // Stable: problems on one line keep the order they were found in.
            file_problems.sort_by_key(|p| p.line);
            problems.append(&mut file_problems);
            for policy in loaded {
                let id = policy.id().to_string();
                // Ids were checked unique in `load_file`; report rather than
                // assume should Cedar still disagree.
                match set.add(policy) {
                    Ok(()) => ids.push(id),
                    Err(e) => problems.push(PolicyProblem {
                        kind: ProblemKind::DuplicateId,
                        file: file.clone(),
                        line: None,
                        message: e.to_string(),
                    }),
                }
            }
        }
        if problems.is_empty() {
            Ok(Self { set, ids, files })
        } else {
            Err(fail(problems))
        }
    }

    /// The ids of all policies, in file order.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// The number of policies.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the set has no policies (and so denies everything).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `.cedar` files the set was loaded from, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The underlying Cedar policy set.
    pub fn cedar_policies(&self) -> &cedar::PolicySet {
        &self.set
    }
}

/// The `*.cedar` regular files directly inside `dir`, sorted by name. An
/// unreadable directory is returned as the error; unreadable entries are
/// recorded in `problems`.
fn list_policy_files(
    dir: &Path,
    problems: &mut Vec<PolicyProblem>,
) -> Result<Vec<PathBuf>, PolicyProblem> {
    let entries = fs::read_dir(dir).map_err(|e| PolicyProblem {
        kind: ProblemKind::Io,
        file: dir.to_path_buf(),
        line: None,
        message: format!("cannot read policy directory: {e}"),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                problems.push(PolicyProblem {
                    kind: ProblemKind::Io,
                    file: dir.to_path_buf(),
                    line: None,
                    message: format!("cannot list policy directory: {e}"),
                });
                continue;
            }
        };
        // `is_file` follows symlinks, so linked policy files are loaded.
        if path.extension().is_some_and(|ext| ext == "cedar") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses and checks one file, returning its policies with their final ids.
/// Problems are appended to `problems`; `seen` maps ids to where they were
/// first defined, across files.
fn load_file(
    file: &Path,
    text: &str,
    schema: &PolicySchema,
    seen: &mut HashMap<String, Origin>,
    problems: &mut Vec<PolicyProblem>,
) -> Vec<cedar::Policy> {
    let problem = |kind, offset: Option<usize>, message: String| PolicyProblem {
        kind,
        file: file.to_path_buf(),
        line: offset.map(|o| line_of(text, o)),
        message,
    };
    let parsed = match cedar::PolicySet::from_str(text) {
        Ok(parsed) => parsed,
        Err(errors) => {
            for error in errors.iter() {
                problems.push(problem(
                    ProblemKind::Parse,
                    Some(first_label_offset(error).unwrap_or(0)),
                    describe(error),
                ));
            }
            return Vec::new();
        }
    };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();

    // Cedar names the statements of a text `policy0`, `policy1`, ... in
    // order; their texts are slices of `text`, in the same order.
    let count = parsed.num_of_policies() + parsed.num_of_templates();
    let mut cursor = 0;
    let mut file_set = cedar::PolicySet::new();
    let mut policies = Vec::new();
    let mut starts: HashMap<String, usize> = HashMap::new();
    for index in 0..count {
        let generated = cedar::PolicyId::new(format!("policy{index}"));
        if let Some(template) = parsed.template(&generated) {
            let start = locate(text, &template.to_cedar(), &mut cursor);
            problems.push(problem(
                ProblemKind::Parse,
                start,
                "policy templates (`?principal`/`?resource` slots) are not supported; \
                 write a static policy"
                    .to_owned(),
            ));
            continue;
        }
        let Some(policy) = parsed.policy(&generated) else {
            continue;
        };
        let start = policy
            .to_cedar()
            .and_then(|src| locate(text, &src, &mut cursor));
        let id = match policy.annotation("id") {
            Some("") => {
                problems.push(problem(
                    ProblemKind::Parse,
                    start,
                    "the @id annotation must not be empty".to_owned(),
                ));
                continue;
            }
            Some(id) => id.to_owned(),
            None => format!("{stem}.{index}"),
        };
        let line = start.map(|o| line_of(text, o));
        if let Some(first) = seen.get(&id) {
            problems.push(problem(
                ProblemKind::DuplicateId,
                start,
                format!(
                    "policy id `{id}` is already used by the policy at {}{}",
                    first.file.display(),
                    first.line.map(|l| format!(":{l}")).unwrap_or_default()
                ),
            ));
            continue;
        }
        seen.insert(
            id.clone(),
            Origin {
                file: file.to_path_buf(),
                line,
            },
        );
        let policy = policy.new_id(cedar::PolicyId::new(&id));
        check_endpoints(&policy, text, start, schema, problems, file);
        if let Some(start) = start {
            starts.insert(id, start);
        }
        if let Err(e) = file_set.add(policy.clone()) {
            problems.push(problem(ProblemKind::DuplicateId, start, e.to_string()));
            continue;
        }
        policies.push(policy);
    }

    let result = schema
        .validator()
        .validate(&file_set, cedar::ValidationMode::Strict);
    for error in result.validation_errors() {
        let offset = first_label_offset(error)
            .or_else(|| starts.get::<str>(error.policy_id().as_ref()).copied());
        problems.push(problem(
            ProblemKind::Validation,
            offset,
            // Cedar's message already names the policy.
            describe(error),
        ));
    }
    for warning in result.validation_warnings() {
        let offset = first_label_offset(warning);
        tracing::warn!(
            file = %file.display(),
            line = offset.map(|o| line_of(text, o)),
            "policy validation warning: {warning}"
        );
    }
    policies
}

/// Reports every `Palisade::Endpoint` literal of `policy` that cannot exist.
fn check_endpoints(
    policy: &cedar::Policy,
    text: &str,
    start: Option<usize>,
    schema: &PolicySchema,
    problems: &mut Vec<PolicyProblem>,
    file: &Path,
) {
    let policy_text = policy.to_cedar().unwrap_or_default();
    for uid in policy.entity_literals() {
        if uid.type_name().to_string() != ENDPOINT_TYPE {
            continue;
        }
        let id = uid.id().unescaped();
        let Some(message) = endpoint_problem(id, schema) else {
            continue;
        };
        // Point at the literal itself when it can be found, else at the policy.
        let quoted = format!("\"{}\"", uid.id().escaped());
        let offset = match (start, policy_text.find(&quoted)) {
            (Some(start), Some(within)) => Some(start + within),
            (start, _) => start,
        };
        problems.push(PolicyProblem {
            kind: ProblemKind::UnknownEndpoint,
            file: file.to_path_buf(),
            line: offset.map(|o| line_of(text, o)),
            message: format!("policy `{}`: {message}", policy.id()),
        });
    }
}

/// Why endpoint id `id` cannot exist, or `None` when it can.
fn endpoint_problem(id: &str, schema: &PolicySchema) -> Option<String> {
    let Some((service, route)) = id.split_once(':') else {
        return Some(format!(
            "endpoint `{id}` is not of the form `<service>:<route>`"
        ));
    };
    let Some(info) = schema.service(service) else {
        let known: Vec<&str> = schema.services().iter().map(|s| s.name.as_str()).collect();
        return Some(format!(
            "endpoint `{id}` names `{service}`, which is not a configured service (configured: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    };
    match &info.routes {
        Some(routes) if !routes.iter().any(|r| r == route) => Some(format!(
            "endpoint `{id}`: service `{service}` has no route `{route}` in its OpenAPI spec (routes: {})",
            if routes.is_empty() {
                "none".to_owned()
            } else {
                routes.join(", ")
            }
        )),
        Some(_) => None,
        None if !route.starts_with('/') => Some(format!(
            "endpoint `{id}`: the path `{route}` must start with `/`"
        )),
        None => None,
    }
}

/// Finds `needle` in `text` at or after `*cursor`, advancing the cursor past
/// it. Returns the byte offset of the match.
fn locate(text: &str, needle: &str, cursor: &mut usize) -> Option<usize> {
    let found = *cursor + text.get(*cursor..)?.find(needle)?;
    *cursor = found + needle.len();
    Some(found)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The byte offset of a diagnostic's first labelled span.
fn first_label_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
}

/// A diagnostic's message with its help text, if any.
fn describe<D: Diagnostic + ?Sized>(diagnostic: &D) -> String {
    match diagnostic.help() {
        Some(help) => format!("{diagnostic} (help: {help})"),
        None => diagnostic.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_newlines_before_offset() {
        let text = "a\nbc\n\nd";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 6), 4);
        assert_eq!(line_of(text, 100), 4);
    }

    #[test]
    fn locate_finds_repeated_texts_in_order() {
        let text = "permit(principal,action,resource);\npermit(principal,action,resource);";
        let needle = "permit(principal,action,resource);";
        let mut cursor = 0;
        assert_eq!(locate(text, needle, &mut cursor), Some(0));
        assert_eq!(locate(text, needle, &mut cursor), Some(35));
        assert_eq!(locate(text, needle, &mut cursor), None);
    }
}
