//! Working-tree scans: a parallel walk (the `ignore` crate, as in ripgrep)
//! where each walker thread reads and scans the files it visits.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};
use memchr::memchr;

use super::engine::Scratch;
use super::{Scanner, Source, Tally, DEFAULT_EXCLUDED_DIRS};
use crate::error::Error;
use crate::report::{Finding, Notification, NotificationLevel, Report};

/// Bytes examined by the binary heuristic.
const SNIFF: usize = 8 * 1024;

#[derive(Default)]
struct Shared {
    findings: Mutex<Vec<Finding>>,
    notifications: Mutex<Vec<Notification>>,
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    too_large: AtomicU64,
    excluded: AtomicU64,
    allowlisted: AtomicU64,
    inline: AtomicU64,
    baseline: AtomicU64,
}

impl Shared {
    fn note(&self, message: String, path: Option<String>) {
        if let Ok(mut n) = self.notifications.lock() {
            n.push(Notification {
                level: NotificationLevel::Warning,
                message,
                path,
            });
        }
    }
}

pub(super) fn scan_paths(scanner: &Scanner, roots: &[PathBuf]) -> Result<Report, Error> {
    let mut report = scanner.new_report();
    let Some((first, rest)) = roots.split_first() else {
        return Ok(report);
    };
    for root in roots {
        std::fs::symlink_metadata(root).map_err(|source| Error::Io {
            path: root.clone(),
            source,
        })?;
    }
    let opts = scanner.options();
    let mut builder = WalkBuilder::new(first);
    for root in rest {
        builder.add(root);
    }
    let default_excludes = opts.default_excludes;
    builder
        .hidden(!opts.include_hidden)
        .git_ignore(opts.respect_gitignore)
        .git_exclude(opts.respect_gitignore)
        .parents(opts.respect_gitignore)
        .git_global(false)
        .ignore(false)
        .require_git(false)
        .follow_links(false)
        .threads(opts.threads)
        .filter_entry(move |entry| {
            let name = entry.file_name();
            if name == ".git" {
                return false;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(default_excludes
                && is_dir
                && entry.depth() > 0
                && DEFAULT_EXCLUDED_DIRS.iter().any(|d| name == *d))
        });

    let shared = Shared::default();
    scanner.progress.begin("files", None);
    builder.build_parallel().run(|| {
        let mut scratch = Scratch::default();
        let mut buf = Vec::new();
        let shared = &shared;
        Box::new(move |entry| {
            match entry {
                Err(e) => shared.note(e.to_string(), None),
                Ok(entry) => {
                    if entry.file_type().is_some_and(|t| t.is_file()) {
                        scan_file(
                            scanner,
                            entry.path(),
                            entry.depth(),
                            &mut buf,
                            &mut scratch,
                            shared,
                        );
                    }
                }
            }
            WalkState::Continue
        })
    });
    scanner.progress.finish();

    report.findings = shared.findings.into_inner().unwrap_or_default();
    report.notifications = shared.notifications.into_inner().unwrap_or_default();
    report
        .notifications
        .sort_by(|a, b| (&a.path, &a.message).cmp(&(&b.path, &b.message)));
    report.sort_findings();
    let stats = &mut report.stats;
    stats.files_scanned = shared.files.into_inner();
    stats.bytes_scanned = shared.bytes.into_inner();
    for (reason, count) in [
        ("binary", shared.binary.into_inner()),
        ("too_large", shared.too_large.into_inner()),
        ("excluded", shared.excluded.into_inner()),
        ("allowlisted", shared.allowlisted.into_inner()),
    ] {
        if count > 0 {
            stats.files_skipped.insert(reason.to_owned(), count);
        }
    }
    for (reason, count) in [
        ("inline", shared.inline.into_inner()),
        ("baseline", shared.baseline.into_inner()),
    ] {
        if count > 0 {
            report.suppressed.insert(reason.to_owned(), count);
        }
    }
    Ok(report)
}

fn scan_file(
    scanner: &Scanner,
    path: &Path,
    depth: usize,
    buf: &mut Vec<u8>,
    scratch: &mut Scratch,
    shared: &Shared,
) {
    let shown = display_path(scanner, path);
    if depth > 0 {
        let name = path.file_name().map(|n| n.to_string_lossy());
        if name.is_some_and(|n| scanner.is_default_excluded_file(&n)) {
            shared.excluded.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    if scanner.rules().is_path_allowlisted(&shown) {
        shared.allowlisted.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let max = scanner.options().max_file_size;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return shared.note(format!("cannot open: {e}"), Some(shown)),
    };
    if file.metadata().is_ok_and(|m| m.len() > max) {
        shared.too_large.fetch_add(1, Ordering::Relaxed);
        return;
    }
    buf.clear();
    if let Err(e) = (&mut file).take(max.saturating_add(1)).read_to_end(buf) {
        return shared.note(format!("cannot read: {e}"), Some(shown));
    }
    if buf.len() as u64 > max {
        shared.too_large.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if looks_binary(buf) {
        shared.binary.fetch_add(1, Ordering::Relaxed);
        return;
    }
    shared.files.fetch_add(1, Ordering::Relaxed);
    shared.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
    scanner.scan_into(buf, scratch);
    if !scratch.out.is_empty() {
        let mut tally = Tally::default();
        let mut found = Vec::new();
        let source = Source {
            path: &shown,
            commit: None,
            line_map: None,
        };
        scanner.findings_from(&source, buf, &scratch.out, &mut tally, &mut found);
        shared.inline.fetch_add(tally.inline, Ordering::Relaxed);
        shared.baseline.fetch_add(tally.baseline, Ordering::Relaxed);
        if !found.is_empty() {
            if let Ok(mut all) = shared.findings.lock() {
                all.extend(found);
            }
        }
    }
    scanner.progress.advance(1, buf.len() as u64);
}

/// Binary heuristic: a NUL byte, or bytes that are not UTF-8, in the first
/// 8 KiB (a multi-byte character cut at the 8 KiB boundary is fine).
pub(crate) fn looks_binary(buf: &[u8]) -> bool {
    let head = &buf[..buf.len().min(SNIFF)];
    if memchr(0, head).is_some() {
        return true;
    }
    match std::str::from_utf8(head) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    }
}

/// The path as reported: relative to `base_dir` when set, `/`-separated,
/// without a leading `./`.
pub(crate) fn display_path(scanner: &Scanner, path: &Path) -> String {
    let rel = match &scanner.options().base_dir {
        Some(base) => path.strip_prefix(base).unwrap_or(path),
        None => path,
    };
    let rel = rel.strip_prefix(".").unwrap_or(rel);
    let mut s = rel.to_string_lossy().into_owned();
    if std::path::MAIN_SEPARATOR != '/' {
        s = s.replace(std::path::MAIN_SEPARATOR, "/");
    }
    if s.is_empty() {
        s = path.to_string_lossy().into_owned();
    }
    s
}
