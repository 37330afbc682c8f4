//! The linter's configuration file (TOML): switch rules off, change their
//! level, accept findings with a reason.
//!
//! ```toml
//! [rules]
//! owasp-define-cors-origin = "off"              # error | warn | info | off
//! "owasp:api4:2023-string-restricted" = "info"  # Spectral ids work too
//!
//! [[ignore]]                                    # accept findings, with a reason
//! rule = "owasp-rate-limit"
//! files = ["specs/legacy/*.yaml"]               # globs, relative to this file; default: all
//! pointer = "/paths/~1legacy"                   # at or under this JSON Pointer; default: anywhere
//! reason = "legacy API behind the gateway, which sets the headers"
//! ```
//!
//! Unknown keys, unknown rules, bad levels, bad globs or pointers and
//! ignores without a reason are errors, all reported at once with their
//! line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::pointer;
use super::rules::{self, Level, RuleDef};
use crate::error::{Error, RuleError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    rules: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<IgnoreFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreFile {
    rule: String,
    #[serde(default)]
    files: Vec<String>,
    pointer: Option<String>,
    reason: Option<String>,
}

/// An accepted finding, from the configuration.
#[derive(Debug, Clone)]
pub struct ConfigIgnore {
    /// The rule.
    pub rule: &'static str,
    files: Option<GlobSet>,
    /// At or under this pointer only.
    pub pointer: Option<String>,
    /// Why it is accepted.
    pub reason: String,
}

impl ConfigIgnore {
    /// Whether this applies to a file (its canonical path).
    pub fn matches_file(&self, path: &Path) -> bool {
        self.files.as_ref().is_none_or(|g| g.is_match(path))
    }
}

/// The linter's configuration: each rule's level (or off) and accepted
/// findings.
#[derive(Debug, Clone, Default)]
pub struct LintConfig {
    levels: HashMap<&'static str, Option<Level>>,
    ignores: Vec<ConfigIgnore>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl LintConfig {
    /// Reads a configuration file; globs are relative to its directory.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::from_str(&text, &path.display().to_string(), dir)
    }

    /// Reads a configuration text; `source_name` names it in errors and
    /// globs are relative to `base_dir`.
    pub fn from_str(text: &str, source_name: &str, base_dir: &Path) -> Result<Self, Error> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| Error::RulesSyntax {
            source_name: source_name.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        let base: PathBuf = base_dir
            .canonicalize()
            .unwrap_or_else(|_| base_dir.to_owned());
        let mut errors = Vec::new();
        let mut config = LintConfig::default();
        for (id, level) in &file.rules {
            let line = Some(line_of(text, level.span().start));
            let Some(rule) = rules::find(id) else {
                errors.push(RuleError {
                    line,
                    rule: Some(id.clone()),
                    field: Some("rules"),
                    message: "no such rule (see docs/lint-rules.md)".to_owned(),
                });
                continue;
            };
            let value = level.get_ref();
            let parsed = if value.eq_ignore_ascii_case("off") {
                Some(None)
            } else {
                Level::parse(value).map(Some)
            };
            match parsed {
                Some(l) => {
                    config.levels.insert(rule.id, l);
                }
                None => errors.push(RuleError {
                    line,
                    rule: Some(id.clone()),
                    field: Some("rules"),
                    message: format!("unknown level `{value}` (expected error, warn, info or off)"),
                }),
            }
        }
        for entry in &file.ignore {
            let line = Some(line_of(text, entry.span().start));
            let e = entry.get_ref();
            let mut problem = |field: &'static str, message: String| {
                errors.push(RuleError {
                    line,
                    rule: Some(e.rule.clone()),
                    field: Some(field),
                    message,
                });
            };
            let rule = rules::find(&e.rule);
            if rule.is_none() {
                problem("rule", "no such rule (see docs/lint-rules.md)".to_owned());
            }
            let reason = e.reason.as_deref().map(str::trim).unwrap_or("");
            if reason.is_empty() {
                problem(
                    "reason",
                    "an ignore needs a reason: say why the finding is accepted".to_owned(),
                );
            }
            if let Some(p) = &e.pointer {
                if let Err(bad) = pointer::tokens(p) {
                    problem("pointer", bad.0);
                }
            }
            let mut globs = GlobSetBuilder::new();
            let mut globs_ok = true;
            for pattern in &e.files {
                let full = base.join(pattern);
                match GlobBuilder::new(&full.to_string_lossy())
                    .literal_separator(true)
                    .build()
                {
                    Ok(g) => {
                        globs.add(g);
                    }
                    Err(err) => {
                        globs_ok = false;
                        problem("files", format!("bad glob `{pattern}`: {err}"));
                    }
                }
            }
            let files = if e.files.is_empty() || !globs_ok {
                None
            } else {
                match globs.build() {
                    Ok(set) => Some(set),
                    Err(err) => {
                        problem("files", err.to_string());
                        None
                    }
                }
            };
            if let (Some(rule), false) = (rule, reason.is_empty()) {
                config.ignores.push(ConfigIgnore {
                    rule: rule.id,
                    files,
                    pointer: e.pointer.clone(),
                    reason: reason.to_owned(),
                });
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(Error::RulesInvalid {
                source_name: source_name.to_owned(),
                errors,
            })
        }
    }

    /// A rule's level, or `None` when it is off.
    pub fn level(&self, rule: &RuleDef) -> Option<Level> {
        self.levels
            .get(rule.id)
            .copied()
            .unwrap_or(Some(rule.level))
    }

    /// The rules that run, with their levels.
    pub fn enabled(&self) -> Vec<(&'static RuleDef, Level)> {
        rules::RULES
            .iter()
            .filter_map(|r| self.level(r).map(|l| (r, l)))
            .collect()
    }

    /// Accepted findings.
    pub fn ignores(&self) -> &[ConfigIgnore] {
        &self.ignores
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn levels_and_spectral_ids() {
        let c = LintConfig::from_str(
            "[rules]\nowasp-define-cors-origin = \"off\"\n\"owasp:api4:2023-string-restricted\" = \"info\"\n",
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        let cors = rules::find("owasp-define-cors-origin").unwrap();
        let restricted = rules::find("owasp-string-restricted").unwrap();
        assert_eq!(c.level(cors), None);
        assert_eq!(c.level(restricted), Some(Level::Info));
        assert!(!c.enabled().iter().any(|(r, _)| r.id == cors.id));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "[rules]\nno-such-rule = \"off\"\nowasp-rate-limit = \"loud\"\n\n[[ignore]]\nrule = \"owasp-array-limit\"\nfiles = [\"a/[\"]\npointer = \"x\"\n";
        let Err(Error::RulesInvalid { errors, .. }) =
            LintConfig::from_str(text, "t.toml", Path::new("."))
        else {
            panic!("accepted");
        };
        let fields: Vec<_> = errors.iter().map(|e| (e.field, e.line)).collect();
        assert!(fields.contains(&(Some("rules"), Some(2))), "{errors:?}");
        assert!(fields.contains(&(Some("rules"), Some(3))), "{errors:?}");
        assert!(fields.contains(&(Some("reason"), Some(5))), "{errors:?}");
        assert!(fields.contains(&(Some("files"), Some(5))), "{errors:?}");
        assert!(fields.contains(&(Some("pointer"), Some(5))), "{errors:?}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = LintConfig::from_str("[rulez]\n", "t.toml", Path::new(".")).unwrap_err();
        assert!(
            matches!(err, Error::RulesSyntax { line: Some(1), .. }),
            "{err}"
        );
    }
}
