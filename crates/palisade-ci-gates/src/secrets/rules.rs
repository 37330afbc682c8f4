//! Rule definitions: the TOML shape shared by the built-in rules and a
//! user's configuration, merging one over the other, and compilation.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::engine::Engine;
use super::filters;
use crate::error::{Error, RuleError};
use crate::report::{RuleInfo, Severity};

/// The built-in rules, `rules/secrets.toml`, embedded at compile time.
pub const BUILTIN_RULES: &str = include_str!("../../rules/secrets.toml");

const BUILTIN_NAME: &str = "<built-in rules/secrets.toml>";

/// Guidance attached to every secret rule (SARIF `help`).
const DEFAULT_HELP: &str = "Treat the credential as leaked: revoke or rotate it, remove it from the code \
(and from git history if it was committed), and load it from a secret store or the environment instead. \
If this is not a real credential, add `palisade:allow` to the line, or allowlist the path or rule in the \
scanner configuration.";

// ---------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------

/// One rules/config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// Format version; only 1 exists.
    #[serde(default)]
    version: Option<Spanned<u32>>,
    /// In a config file: start from the built-in rules (default) or from nothing.
    #[serde(default)]
    use_default_rules: Option<bool>,
    /// Rule ids to switch off.
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    /// Named stop-word lists rules can refer to.
    #[serde(default)]
    stopword_sets: BTreeMap<String, Vec<String>>,
    /// Global allowlist.
    #[serde(default)]
    allowlist: AllowlistFile,
    /// Rules to add, or to override field by field when the id exists.
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistFile {
    /// Path globs never scanned.
    #[serde(default)]
    paths: Vec<String>,
    /// A secret matching any of these regexes is not reported, whatever the rule.
    #[serde(default)]
    regexes: Vec<String>,
    /// A secret containing any of these (case-insensitive) is not reported, whatever the rule.
    #[serde(default)]
    stopwords: Vec<String>,
}

/// One `[[rules]]` entry. Every field is optional so that a config can
/// override only what it names; a new rule must give `regex` and `keywords`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: Spanned<String>,
    description: Option<String>,
    help: Option<String>,
    regex: Option<String>,
    keywords: Option<Vec<String>>,
    keywords_case_sensitive: Option<bool>,
    severity: Option<String>,
    entropy: Option<f64>,
    secret_group: Option<String>,
    allow_regexes: Option<Vec<String>>,
    allow_match_regexes: Option<Vec<String>>,
    requires_any: Option<Vec<String>>,
    stopwords: Option<Vec<String>>,
    stopword_sets: Option<Vec<String>>,
    multiline: Option<bool>,
    checksum: Option<String>,
    generic: Option<bool>,
    tags: Option<Vec<String>>,
    enabled: Option<bool>,
}

impl RuleFile {
    /// Field-by-field override: what `other` sets replaces what `self` had.
    fn override_with(&mut self, other: RuleFile) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            description,
            help,
            regex,
            keywords,
            keywords_case_sensitive,
            severity,
            entropy,
            secret_group,
            allow_regexes,
            allow_match_regexes,
            requires_any,
            stopwords,
            stopword_sets,
            multiline,
            checksum,
            generic,
            tags,
            enabled
        );
    }
}

// ---------------------------------------------------------------------------
// Compiled rules
// ---------------------------------------------------------------------------

/// A checksum a token must carry to be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// `github-crc32`: see [`filters::github_checksum_ok`].
    GithubCrc32,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) help: Option<String>,
    pub(crate) severity: Severity,
    pub(crate) tags: Vec<String>,
    pub(crate) regex: Regex,
    pub(crate) secret_group: Option<usize>,
    pub(crate) keywords: Vec<String>,
    pub(crate) keywords_case_sensitive: bool,
    pub(crate) entropy: Option<f64>,
    pub(crate) allow: Vec<Regex>,
    pub(crate) allow_match: Vec<Regex>,
    pub(crate) requires_any: Vec<Vec<u8>>,
    pub(crate) stopwords: Vec<Vec<u8>>,
    pub(crate) multiline: bool,
    pub(crate) checksum: Option<Checksum>,
    pub(crate) generic: bool,
}

impl Rule {
    /// Stable id (`aws-access-key-id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// One-line description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Severity of its findings.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// Tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The prefilter keywords (at least one must occur for the regex to run).
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// The regex source.
    pub fn regex(&self) -> &str {
        self.regex.as_str()
    }

    /// The checksum a match must carry, if any.
    pub fn checksum(&self) -> Option<Checksum> {
        self.checksum
    }

    /// Whether the rule is generic (yields to a specific rule that flags an
    /// overlapping secret).
    pub fn is_generic(&self) -> bool {
        self.generic
    }

    /// Its description for reports.
    pub fn info(&self) -> RuleInfo {
        RuleInfo {
            id: self.id.clone(),
            description: self.description.clone(),
            help: Some(self.help.clone().unwrap_or_else(|| DEFAULT_HELP.to_owned())),
            severity: self.severity,
            tags: self.tags.clone(),
            security: true,
        }
    }
}

/// The rules a [`crate::secrets::Scanner`] runs, with the global allowlist
/// and the compiled keyword prefilter.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) allow: Vec<Regex>,
    pub(crate) stopwords: Vec<Vec<u8>>,
    path_globs: Vec<String>,
    path_allow: GlobSet,
    pub(crate) engine: Arc<Engine>,
}

impl RuleSet {
    /// The built-in rules only.
    pub fn builtin() -> Result<Self, Error> {
        let mut drafts = Drafts::default();
        drafts.load(BUILTIN_NAME, BUILTIN_RULES, true)?;
        drafts.compile(BUILTIN_NAME)
    }

    /// The built-in rules with a user configuration (same TOML shape) merged
    /// over them: new rules are added, rules with an existing id are
    /// overridden field by field (a list given replaces the list), ids in
    /// `disable` (or rules with `enabled = false`) are dropped, the
    /// `[allowlist]` is appended to the built-in one. `use_default_rules =
    /// false` starts from no rules instead. `source_name` names the text in
    /// errors.
    pub fn with_config_str(source_name: &str, config: &str) -> Result<Self, Error> {
        let parsed = parse(source_name, config)?;
        let mut drafts = Drafts::default();
        if parsed.use_default_rules.unwrap_or(true) {
            drafts.load(BUILTIN_NAME, BUILTIN_RULES, true)?;
        }
        drafts.merge(source_name, config, parsed, false);
        drafts.compile(source_name)
    }

    /// [`RuleSet::with_config_str`] reading the configuration from `path`.
    pub fn with_config_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::with_config_str(&path.display().to_string(), &text)
    }

    /// The enabled rules, in definition order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Number of enabled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is enabled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The path allowlist globs, as configured.
    pub fn path_allowlist(&self) -> &[String] {
        &self.path_globs
    }

    /// Whether `path` (as reported: relative, `/`-separated) is allowlisted.
    pub fn is_path_allowlisted(&self, path: &str) -> bool {
        !self.path_globs.is_empty() && self.path_allow.is_match(path)
    }

    /// Whether a candidate `secret` (inside the regex match `matched`) that
    /// `rule` matched survives the rule's and the global filters (entropy,
    /// checksum, allow regexes on the secret and on the match, stop-words).
    pub(crate) fn accept(&self, rule: &Rule, matched: &[u8], secret: &[u8]) -> bool {
        if secret.is_empty() {
            return false;
        }
        if rule.allow_match.iter().any(|r| r.is_match(matched)) {
            return false;
        }
        if let Some(min) = rule.entropy {
            if filters::shannon_entropy(secret) < min {
                return false;
            }
        }
        if let Some(Checksum::GithubCrc32) = rule.checksum {
            if !filters::github_checksum_ok(secret) {
                return false;
            }
        }
        if rule
            .allow
            .iter()
            .chain(&self.allow)
            .any(|r| r.is_match(secret))
        {
            return false;
        }
        if !rule.stopwords.is_empty() || !self.stopwords.is_empty() {
            let lower = secret.to_ascii_lowercase();
            if rule
                .stopwords
                .iter()
                .chain(&self.stopwords)
                .any(|w| memmem::find(&lower, w).is_some())
            {
                return false;
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------
// Loading and merging
// ---------------------------------------------------------------------------

fn parse(source_name: &str, text: &str) -> Result<RulesFile, Error> {
    toml::from_str(text).map_err(|e| Error::RulesSyntax {
        source_name: source_name.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_owned(),
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Default)]
struct Drafts {
    order: Vec<String>,
    rules: HashMap<String, (RuleFile, usize)>,
    disabled: Vec<String>,
    stopword_sets: BTreeMap<String, Vec<String>>,
    allow_paths: Vec<String>,
    allow_regexes: Vec<String>,
    allow_stopwords: Vec<String>,
    errors: Vec<RuleError>,
}

impl Drafts {
    fn load(&mut self, source_name: &str, text: &str, builtin: bool) -> Result<(), Error> {
        let parsed = parse(source_name, text)?;
        self.merge(source_name, text, parsed, builtin);
        Ok(())
    }

    fn merge(&mut self, _source_name: &str, text: &str, file: RulesFile, builtin: bool) {
        if let Some(v) = &file.version {
            if *v.get_ref() != 1 {
                self.errors.push(RuleError {
                    line: Some(line_of(text, v.span().start)),
                    rule: None,
                    field: Some("version"),
                    message: format!("unsupported version {} (only 1 exists)", v.get_ref()),
                });
            }
        }
        for (name, words) in file.stopword_sets {
            self.stopword_sets.entry(name).or_default().extend(words);
        }
        self.allow_paths.extend(file.allowlist.paths);
        self.allow_regexes.extend(file.allowlist.regexes);
        self.allow_stopwords.extend(file.allowlist.stopwords);

        let mut seen_here: Vec<String> = Vec::new();
        for rule in file.rules {
            let id = rule.id.get_ref().trim().to_owned();
            let line = line_of(text, rule.id.span().start);
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                self.errors.push(RuleError {
                    line: Some(line),
                    rule: Some(id.clone()),
                    field: Some("id"),
                    message: "must be non-empty and use only letters, digits, `-`, `_`, `.`"
                        .to_owned(),
                });
                continue;
            }
            if seen_here.contains(&id) {
                self.errors.push(RuleError {
                    line: Some(line),
                    rule: Some(id.clone()),
                    field: Some("id"),
                    message: "defined twice in the same file".to_owned(),
                });
                continue;
            }
            seen_here.push(id.clone());
            match self.rules.get_mut(&id) {
                Some((existing, existing_line)) if !builtin => {
                    existing.override_with(rule);
                    *existing_line = line;
                }
                _ => {
                    self.order.push(id.clone());
                    self.rules.insert(id, (rule, line));
                }
            }
        }
        for d in file.disable {
            let id = d.get_ref().trim().to_owned();
            if !self.rules.contains_key(&id) {
                self.errors.push(RuleError {
                    line: Some(line_of(text, d.span().start)),
                    rule: Some(id),
                    field: Some("disable"),
                    message: "no rule has this id".to_owned(),
                });
            } else {
                self.disabled.push(id);
            }
        }
    }

    fn compile(mut self, source_name: &str) -> Result<RuleSet, Error> {
        let mut rules = Vec::new();
        let order = std::mem::take(&mut self.order);
        for id in order {
            if self.disabled.contains(&id) {
                continue;
            }
            let Some((draft, line)) = self.rules.remove(&id) else {
                continue;
            };
            if draft.enabled == Some(false) {
                continue;
            }
            if let Some(rule) = self.compile_rule(&id, draft, line) {
                rules.push(rule);
            }
        }

        let mut allow = Vec::new();
        for r in std::mem::take(&mut self.allow_regexes) {
            match build_regex(&r) {
                Ok(re) => allow.push(re),
                Err(message) => self.errors.push(RuleError {
                    line: None,
                    rule: None,
                    field: Some("allowlist.regexes"),
                    message,
                }),
            }
        }
        let stopwords = lower_words(&std::mem::take(&mut self.allow_stopwords));

        let mut globs = GlobSetBuilder::new();
        let path_globs = std::mem::take(&mut self.allow_paths);
        for pattern in &path_globs {
            let full = if pattern.contains('/') {
                pattern.trim_start_matches("./").to_owned()
            } else {
                format!("**/{pattern}")
            };
            match GlobBuilder::new(&full).literal_separator(true).build() {
                Ok(g) => {
                    globs.add(g);
                }
                Err(e) => self.errors.push(RuleError {
                    line: None,
                    rule: None,
                    field: Some("allowlist.paths"),
                    message: format!("`{pattern}`: {e}"),
                }),
            }
        }
        let path_allow = match globs.build() {
            Ok(set) => set,
            Err(e) => {
                self.errors.push(RuleError {
                    line: None,
                    rule: None,
                    field: Some("allowlist.paths"),
                    message: e.to_string(),
                });
                GlobSet::empty()
            }
        };

        let engine = match Engine::new(&rules) {
            Ok(engine) => engine,
            Err(message) => {
                self.errors.push(RuleError {
                    line: None,
                    rule: None,
                    field: Some("keywords"),
                    message,
                });
                Engine::empty()
            }
        };

        if !self.errors.is_empty() {
            return Err(Error::RulesInvalid {
                source_name: source_name.to_owned(),
                errors: self.errors,
            });
        }
        Ok(RuleSet {
            rules,
            allow,
            stopwords,
            path_globs,
            path_allow,
            engine: Arc::new(engine),
        })
    }

    fn compile_rule(&mut self, id: &str, d: RuleFile, line: usize) -> Option<Rule> {
        let before = self.errors.len();
        let err = |field: &'static str, message: String| RuleError {
            line: Some(line),
            rule: Some(id.to_owned()),
            field: Some(field),
            message,
        };
        let mut errors = Vec::new();

        let regex = match d.regex.as_deref() {
            None => {
                errors.push(err(
                    "regex",
                    "missing (a new rule needs a regex)".to_owned(),
                ));
                None
            }
            Some(src) => match build_regex(src) {
                Ok(re) => Some(re),
                Err(m) => {
                    errors.push(err("regex", m));
                    None
                }
            },
        };

        let keywords: Vec<String> = d
            .keywords
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|k| k.trim().to_owned())
            .collect();
        if keywords.is_empty() {
            errors.push(err(
                "keywords",
                "at least one keyword is needed (the regex runs only where a keyword occurs)"
                    .to_owned(),
            ));
        } else if keywords.iter().any(|k| k.len() < 2) {
            errors.push(err(
                "keywords",
                "keywords must be at least 2 characters long".to_owned(),
            ));
        }

        let severity = match d.severity.as_deref() {
            None => Severity::Medium,
            Some(s) => match s.parse() {
                Ok(sev) => sev,
                Err(e) => {
                    errors.push(err("severity", format!("{e}")));
                    Severity::Medium
                }
            },
        };

        if let Some(e) = d.entropy {
            if !(0.0..=8.0).contains(&e) {
                errors.push(err(
                    "entropy",
                    format!("{e} is outside 0.0..=8.0 bits per byte"),
                ));
            }
        }

        let checksum = match d.checksum.as_deref() {
            None | Some("none") => None,
            Some("github-crc32") => Some(Checksum::GithubCrc32),
            Some(other) => {
                errors.push(err(
                    "checksum",
                    format!("unknown checksum `{other}` (expected `github-crc32` or `none`)"),
                ));
                None
            }
        };

        let mut secret_group = None;
        if let Some(re) = &regex {
            let names: Vec<Option<&str>> = re.capture_names().collect();
            match d.secret_group.as_deref() {
                Some(name) => {
                    let by_name = names.iter().position(|n| *n == Some(name));
                    let by_index = name.parse::<usize>().ok().filter(|i| *i < names.len());
                    match by_name.or(by_index) {
                        Some(i) => secret_group = Some(i),
                        None => errors.push(err(
                            "secret_group",
                            format!("the regex has no capture group `{name}`"),
                        )),
                    }
                }
                None => secret_group = names.iter().position(|n| *n == Some("secret")),
            }
        }

        let mut allow = Vec::new();
        for src in d.allow_regexes.clone().unwrap_or_default() {
            match build_regex(&src) {
                Ok(re) => allow.push(re),
                Err(m) => errors.push(err("allow_regexes", m)),
            }
        }
        let mut allow_match = Vec::new();
        for src in d.allow_match_regexes.clone().unwrap_or_default() {
            match build_regex(&src) {
                Ok(re) => allow_match.push(re),
                Err(m) => errors.push(err("allow_match_regexes", m)),
            }
        }

        let mut words = d.stopwords.clone().unwrap_or_default();
        for set in d.stopword_sets.clone().unwrap_or_default() {
            match self.stopword_sets.get(&set) {
                Some(list) => words.extend(list.iter().cloned()),
                None => errors.push(err(
                    "stopword_sets",
                    format!("no stop-word set named `{set}`"),
                )),
            }
        }

        self.errors.extend(errors);
        if self.errors.len() > before {
            return None;
        }
        let regex = regex?;
        Some(Rule {
            id: id.to_owned(),
            description: d.description.clone().unwrap_or_else(|| id.to_owned()),
            help: d.help.clone(),
            severity,
            tags: d.tags.clone().unwrap_or_default(),
            regex,
            secret_group,
            keywords,
            keywords_case_sensitive: d.keywords_case_sensitive.unwrap_or(false),
            entropy: d.entropy,
            allow,
            allow_match,
            requires_any: d
                .requires_any
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| !r.is_empty())
                .map(String::into_bytes)
                .collect(),
            stopwords: lower_words(&words),
            multiline: d.multiline.unwrap_or(false),
            checksum,
            generic: d.generic.unwrap_or(false),
        })
    }
}

fn lower_words(words: &[String]) -> Vec<Vec<u8>> {
    words
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| w.as_bytes().to_ascii_lowercase())
        .collect()
}

/// Rule regexes are byte regexes with Unicode off: `\w`, `\s`, `\b` and
/// `(?i)` are ASCII-only, `.` and negated classes match any byte. That keeps
/// every regex on the fast DFA path over arbitrary (even non-UTF-8) input.
fn build_regex(src: &str) -> Result<Regex, String> {
    RegexBuilder::new(src)
        .unicode(false)
        .size_limit(1 << 22)
        .dfa_size_limit(1 << 22)
        .build()
        .map_err(|e| format!("invalid regex: {e}"))
}

#[cfg(test)]
mod tests;
