//! The secret scanner: rules as data, a keyword-prefiltered regex engine,
//! working-tree and git-history scans. See the crate documentation for the
//! overview; this module holds the API.

mod baseline;
mod engine;
pub mod filters;
mod git;
mod progress;
mod rules;
mod walk;

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use memchr::{memchr, memchr_iter, memmem};

pub use baseline::Baseline;
pub use engine::{LONG_LINE, MULTILINE_WINDOW};
pub use progress::{NoProgress, Progress, TerminalProgress};
pub use rules::{Checksum, Rule, RuleSet, BUILTIN_RULES};

use crate::error::Error;
use crate::report::{Commit, Finding, Location, Report, Tool};
use engine::{RawMatch, Scratch};

/// The comment marker that suppresses findings on its line.
pub const ALLOW_MARKER: &str = "palisade:allow";

/// Directories never descended into when [`ScanOptions::default_excludes`]
/// is on (vendored dependencies and caches). `.git` is always skipped.
pub const DEFAULT_EXCLUDED_DIRS: &[&str] = &[
    "node_modules",
    "vendor",
    "bower_components",
    "jspm_packages",
    "site-packages",
    ".venv",
    "__pycache__",
];

/// File-name globs skipped when [`ScanOptions::default_excludes`] is on:
/// lock files, minified bundles and source maps (generated, huge, full of
/// hashes), and formats that are binary anyway (skipping them by name saves
/// reading them).
pub const DEFAULT_EXCLUDED_FILES: &[&str] = &[
    "*.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "go.sum",
    "*.min.js",
    "*.min.mjs",
    "*.min.css",
    "*.map",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.ico",
    "*.webp",
    "*.pdf",
    "*.zip",
    "*.gz",
    "*.tgz",
    "*.bz2",
    "*.xz",
    "*.zst",
    "*.7z",
    "*.jar",
    "*.class",
    "*.so",
    "*.dylib",
    "*.dll",
    "*.exe",
    "*.o",
    "*.a",
    "*.rlib",
    "*.wasm",
    "*.woff",
    "*.woff2",
    "*.ttf",
    "*.otf",
];

/// How a scan walks and what it skips. `Default` is what `palisade secrets
/// scan` does without flags.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Honour `.gitignore`, `.git/info/exclude` (default: on). The user's
    /// global git excludes are not read, so results do not depend on who runs
    /// the scan.
    pub respect_gitignore: bool,
    /// Skip [`DEFAULT_EXCLUDED_DIRS`] and [`DEFAULT_EXCLUDED_FILES`]
    /// (default: on). Paths given explicitly are scanned regardless.
    pub default_excludes: bool,
    /// Scan dotfiles such as `.env` and `.npmrc` (default: on; `.git` is
    /// never scanned).
    pub include_hidden: bool,
    /// Files (and, in history, added text per file and commit) larger than
    /// this are skipped as `too_large` (default: 10 MiB).
    pub max_file_size: u64,
    /// Worker threads; 0 picks one per CPU (default).
    pub threads: usize,
    /// Reported paths are made relative to this directory (give it in the
    /// same form as the scanned paths, e.g. both relative). Default: paths
    /// as walked, without a leading `./`.
    pub base_dir: Option<PathBuf>,
    /// Known findings to leave out (counted as `suppressed.baseline`).
    pub baseline: Option<Baseline>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            respect_gitignore: true,
            default_excludes: true,
            include_hidden: true,
            max_file_size: 10 * 1024 * 1024,
            threads: 0,
            base_dir: None,
            baseline: None,
        }
    }
}

/// Scans text for secrets with a [`RuleSet`]. Build once, use from any
/// thread (`Send + Sync`).
pub struct Scanner {
    rules: RuleSet,
    options: ScanOptions,
    progress: Arc<dyn Progress>,
    excluded_files: GlobSet,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.rules.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Where a buffer came from, for turning candidates into findings.
pub(crate) struct Source<'a> {
    /// Reported path.
    pub path: &'a str,
    /// The commit, for history scans.
    pub commit: Option<&'a Commit>,
    /// For history scans: the file line number of each buffer line.
    pub line_map: Option<&'a [u32]>,
}

/// Suppression counts of one worker.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub inline: u64,
    pub baseline: u64,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scanner {
    /// A scanner running `rules` with `options`, reporting no progress.
    pub fn new(rules: RuleSet, options: ScanOptions) -> Self {
        let mut excluded = GlobSetBuilder::new();
        for pattern in DEFAULT_EXCLUDED_FILES {
            if let Ok(glob) = Glob::new(pattern) {
                excluded.add(glob);
            }
        }
        Scanner {
            rules,
            options,
            progress: Arc::new(NoProgress),
            excluded_files: excluded.build().unwrap_or_else(|_| GlobSet::empty()),
        }
    }

    /// Reports progress to `progress` (e.g. [`TerminalProgress::stderr`]).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The options.
    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// Scans files and directories (recursively, in parallel, honouring the
    /// options). A path that does not exist is an error; a file that cannot
    /// be read becomes a warning notification in the report.
    pub fn scan_paths<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Report, Error> {
        let roots: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
        walk::scan_paths(self, &roots)
    }

    /// Scans the lines each commit added, for every commit reachable from
    /// `HEAD` in the repository at `repo` — or only those not reachable from
    /// `since` (`since..HEAD`). Findings carry the commit, its author date
    /// and the file line. Runs the `git` binary.
    pub fn scan_git_history(
        &self,
        repo: impl AsRef<Path>,
        since: Option<&str>,
    ) -> Result<Report, Error> {
        git::scan_history(self, repo.as_ref(), since)
    }

    /// Scans one in-memory text as if it were the file `path` (no skipping:
    /// binary content, size and path allowlists are not checked). Inline
    /// allows and the baseline apply.
    pub fn scan_bytes(&self, path: &str, content: &[u8]) -> Vec<Finding> {
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            self.rules.engine.scan(&self.rules, content, &mut scratch);
            let mut out = Vec::new();
            let mut tally = Tally::default();
            let source = Source {
                path,
                commit: None,
                line_map: None,
            };
            self.findings_from(&source, content, &scratch.out, &mut tally, &mut out);
            out
        })
    }

    /// An empty report naming this tool and its rules.
    pub fn new_report(&self) -> Report {
        let repo = env!("CARGO_PKG_REPOSITORY");
        Report::new(
            Tool {
                name: "palisade-secrets".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                information_uri: (!repo.is_empty()).then(|| repo.to_owned()),
            },
            self.rules.rules().iter().map(Rule::info).collect(),
        )
    }

    /// Whether a file name is skipped by default.
    pub(crate) fn is_default_excluded_file(&self, name: &str) -> bool {
        self.options.default_excludes && self.excluded_files.is_match(name)
    }

    /// Scans `hay` into `scratch.out`.
    pub(crate) fn scan_into(&self, hay: &[u8], scratch: &mut Scratch) {
        self.rules.engine.scan(&self.rules, hay, scratch);
    }

    /// Turns accepted candidates into findings: locates them, applies the
    /// inline allow marker and the baseline, fingerprints and redacts.
    pub(crate) fn findings_from(
        &self,
        source: &Source<'_>,
        hay: &[u8],
        raws: &[RawMatch],
        tally: &mut Tally,
        out: &mut Vec<Finding>,
    ) {
        let mut cursor = LineCursor::default();
        for raw in raws {
            let rule = &self.rules.rules[raw.rule];
            let (_, match_line_start) = cursor.locate(hay, raw.match_start);
            let (line_idx, line_start) = cursor.locate(hay, raw.start);
            let allowed = |from: usize| {
                let end = memchr(b'\n', &hay[from..]).map_or(hay.len(), |i| from + i);
                memmem::find(&hay[from..end], ALLOW_MARKER.as_bytes()).is_some()
            };
            if allowed(line_start) || (match_line_start != line_start && allowed(match_line_start))
            {
                tally.inline += 1;
                continue;
            }
            let secret = &hay[raw.start..raw.end];
            let fingerprint = filters::fingerprint(&rule.id, source.path, secret);
            if let Some(baseline) = &self.options.baseline {
                if baseline.contains(&fingerprint) {
                    tally.baseline += 1;
                    continue;
                }
            }
            let (end_idx, end_line_start) = cursor.locate(hay, raw.end);
            let to_line = |idx: usize| -> u32 {
                match source.line_map {
                    Some(map) => map.get(idx).copied().unwrap_or(0),
                    None => u32::try_from(idx + 1).unwrap_or(u32::MAX),
                }
            };
            let redacted = filters::redact(secret);
            out.push(Finding {
                rule_id: rule.id.clone(),
                severity: rule.severity,
                message: format!("{}: {}", rule.description, redacted),
                location: Location {
                    path: source.path.to_owned(),
                    line: to_line(line_idx),
                    column: columns(&hay[line_start..raw.start]) + 1,
                    end_line: Some(to_line(end_idx)),
                    end_column: Some(columns(&hay[end_line_start..raw.end]) + 1),
                },
                fingerprint,
                redacted: Some(redacted),
                commit: source.commit.cloned(),
                properties: Default::default(),
            });
        }
    }
}

/// Code points in `bytes` (bytes that are not UTF-8 continuation bytes).
fn columns(bytes: &[u8]) -> u32 {
    let n = bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Finds line index and line start for increasing offsets without
/// rescanning from the top each time.
#[derive(Default)]
struct LineCursor {
    pos: usize,
    line: usize,
    line_start: usize,
}

impl LineCursor {
    fn locate(&mut self, hay: &[u8], offset: usize) -> (usize, usize) {
        if offset < self.pos {
            *self = LineCursor::default();
        }
        for nl in memchr_iter(b'\n', &hay[self.pos..offset]) {
            self.line += 1;
            self.line_start = self.pos + nl + 1;
        }
        self.pos = offset;
        (self.line, self.line_start)
    }
}

#[cfg(test)]
mod tests;
