//! History scans: `git log -p --unified=0` parsed line by line; the lines
//! each commit added to each file become one buffer (with a map back to file
//! line numbers) that worker threads scan like a file.
//!
//! Only added lines are examined, so a secret is reported once, in the
//! commit that introduced it, even if later commits delete it. Merge
//! commits show no diff in `git log -p`, so lines that exist only in a
//! merge's conflict resolution are not seen. Renames are detected (`-M`),
//! so moving a file does not report its secrets again under the new path.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use memchr::memchr;

use super::engine::Scratch;
use super::{Scanner, Source, Tally};
use crate::error::Error;
use crate::report::{Commit, Finding, Notification, NotificationLevel, Report};

/// Marker that starts each commit header in our `--format`.
const COMMIT_MARKER: &[u8] = b"\0commit\0";

/// The added lines of one file in one commit.
struct Unit {
    commit: Arc<Commit>,
    path: String,
    text: Vec<u8>,
    lines: Vec<u32>,
}

#[derive(Default)]
struct Totals {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    inline: AtomicU64,
    baseline: AtomicU64,
}

fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--no-pager")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "core.quotePath=false",
            "-c",
            "log.showSignature=false",
        ])
        .stdin(Stdio::null());
    cmd
}

/// Runs a short git command; its stdout, or an error with its stderr.
fn run_git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, Error> {
    let out = git(repo).args(args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::GitNotFound(e),
        _ => Error::Git {
            command: args.join(" "),
            message: e.to_string(),
        },
    })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(Error::Git {
            command: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

pub(super) fn scan_history(
    scanner: &Scanner,
    repo: &Path,
    since: Option<&str>,
) -> Result<Report, Error> {
    let mut report = scanner.new_report();
    run_git(repo, &["rev-parse", "--git-dir"])?;
    if run_git(repo, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).is_err() {
        report.notifications.push(Notification {
            level: NotificationLevel::Note,
            message: "the repository has no commits".to_owned(),
            path: None,
        });
        return Ok(report);
    }
    let range = match since {
        None => "HEAD".to_owned(),
        Some(rev) => {
            let rev = rev.trim();
            if rev.is_empty() || rev.starts_with('-') {
                return Err(Error::Git {
                    command: "rev-parse".to_owned(),
                    message: format!("`{rev}` is not a revision"),
                });
            }
            let spec = format!("{rev}^{{commit}}");
            run_git(
                repo,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    &spec,
                ],
            )
            .map_err(|_| Error::Git {
                command: format!("rev-parse {rev}"),
                message: format!("unknown revision `{rev}`"),
            })?;
            format!("{rev}..HEAD")
        }
    };
    let total = run_git(repo, &["rev-list", "--count", "--end-of-options", &range])
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out).trim().parse::<u64>().ok());

    let mut child = git(repo)
        .args([
            "log",
            "-p",
            "-M",
            "--unified=0",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            "--format=%x00commit%x00%H%x00%aI%x00%an",
            "--end-of-options",
            &range,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::GitNotFound(e),
            _ => Error::Git {
                command: "log".to_owned(),
                message: e.to_string(),
            },
        })?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::Git {
            command: "log".to_owned(),
            message: "no output pipes".to_owned(),
        });
    };

    let workers = match scanner.options().threads {
        0 => std::thread::available_parallelism().map_or(2, usize::from),
        n => n,
    };
    let totals = Totals::default();
    let findings: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    scanner.progress.begin("commits", total);

    let (tx, rx) = sync_channel::<Unit>(workers * 4);
    let rx = Mutex::new(rx);
    let parsed = std::thread::scope(|scope| {
        let err_reader = scope.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (rx, totals, findings) = (&rx, &totals, &findings);
        for _ in 0..workers {
            scope.spawn(move || worker(scanner, rx, totals, findings));
        }
        let parsed = parse_log(scanner, stdout, |unit| {
            // A send fails only if every worker is gone, which cannot
            // happen before `tx` is dropped.
            let _ = tx.send(unit);
        });
        drop(tx);
        let stderr_text = err_reader.join().unwrap_or_default();
        (parsed, stderr_text)
    });
    scanner.progress.finish();
    let (parsed, stderr_text) = parsed;
    let status = child.wait().map_err(|e| Error::Git {
        command: "log".to_owned(),
        message: e.to_string(),
    })?;
    let parsed = parsed.map_err(|e| Error::Git {
        command: "log".to_owned(),
        message: format!("reading output: {e}"),
    })?;
    if !status.success() {
        return Err(Error::Git {
            command: "log".to_owned(),
            message: stderr_text.trim().to_owned(),
        });
    }

    report.findings = findings.into_inner().unwrap_or_default();
    report.sort_findings();
    let stats = &mut report.stats;
    stats.commits_scanned = parsed.commits;
    stats.files_scanned = totals.files.into_inner();
    stats.bytes_scanned = totals.bytes.into_inner();
    for (reason, count) in [
        ("binary", totals.binary.into_inner()),
        ("too_large", parsed.too_large),
        ("excluded", parsed.excluded),
        ("allowlisted", parsed.allowlisted),
    ] {
        if count > 0 {
            stats.files_skipped.insert(reason.to_owned(), count);
        }
    }
    for (reason, count) in [
        ("inline", totals.inline.into_inner()),
        ("baseline", totals.baseline.into_inner()),
    ] {
        if count > 0 {
            report.suppressed.insert(reason.to_owned(), count);
        }
    }
    Ok(report)
}

fn worker(
    scanner: &Scanner,
    rx: &Mutex<Receiver<Unit>>,
    totals: &Totals,
    findings: &Mutex<Vec<Finding>>,
) {
    let mut scratch = Scratch::default();
    loop {
        let unit = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(unit) = unit else { return };
        if memchr(0, &unit.text).is_some() {
            totals.binary.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        totals.files.fetch_add(1, Ordering::Relaxed);
        totals
            .bytes
            .fetch_add(unit.text.len() as u64, Ordering::Relaxed);
        scanner.scan_into(&unit.text, &mut scratch);
        if scratch.out.is_empty() {
            continue;
        }
        let mut tally = Tally::default();
        let mut found = Vec::new();
        let source = Source {
            path: &unit.path,
            commit: Some(&unit.commit),
            line_map: Some(&unit.lines),
        };
        scanner.findings_from(&source, &unit.text, &scratch.out, &mut tally, &mut found);
        totals.inline.fetch_add(tally.inline, Ordering::Relaxed);
        totals.baseline.fetch_add(tally.baseline, Ordering::Relaxed);
        if !found.is_empty() {
            if let Ok(mut all) = findings.lock() {
                all.extend(found);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Parsed {
    commits: u64,
    too_large: u64,
    excluded: u64,
    allowlisted: u64,
}

/// Where the parser is within the `git log -p` stream.
enum State {
    /// Between commits, or in a commit message.
    Outside,
    /// Between `diff --git` and the first hunk; `path` is the new path once
    /// `+++` was seen (None for a deletion or an excluded file).
    Header { path: Option<String> },
    /// In the hunks of a file.
    Hunk { next_line: u32 },
}

fn parse_log<R: Read>(
    scanner: &Scanner,
    out: R,
    mut emit: impl FnMut(Unit),
) -> std::io::Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut reader = BufReader::with_capacity(1 << 16, out);
    let mut line = Vec::with_capacity(256);
    let mut commit: Option<Arc<Commit>> = None;
    let mut state = State::Outside;
    let mut unit: Option<Unit> = None;
    let mut oversized = false;
    let max = scanner.options().max_file_size;

    let flush = |unit: &mut Option<Unit>, oversized: &mut bool, emit: &mut dyn FnMut(Unit)| {
        if let Some(u) = unit.take() {
            if !*oversized && !u.text.is_empty() {
                emit(u);
            }
        }
        *oversized = false;
    };

    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.starts_with(COMMIT_MARKER) {
            flush(&mut unit, &mut oversized, &mut emit);
            let mut fields = line[COMMIT_MARKER.len()..].split(|&b| b == 0);
            let mut next = || {
                fields
                    .next()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .unwrap_or_default()
            };
            let (id, date, author) = (next(), next(), next());
            commit = Some(Arc::new(Commit { id, author, date }));
            parsed.commits += 1;
            scanner.progress.advance(1, 0);
            state = State::Outside;
            continue;
        }
        if line.starts_with(b"diff --git ") {
            flush(&mut unit, &mut oversized, &mut emit);
            state = State::Header { path: None };
            continue;
        }
        match &mut state {
            State::Outside => {}
            State::Header { path } => {
                if let Some(rest) = line.strip_prefix(b"+++ ") {
                    *path = new_path(rest);
                    if let Some(p) = path.as_deref() {
                        let name = p.rsplit('/').next().unwrap_or(p);
                        if scanner.is_default_excluded_file(name) || in_excluded_dir(scanner, p) {
                            parsed.excluded += 1;
                            *path = None;
                        } else if scanner.rules().is_path_allowlisted(p) {
                            parsed.allowlisted += 1;
                            *path = None;
                        }
                    }
                } else if line.starts_with(b"@@ ") {
                    let start = hunk_new_start(&line);
                    if let (Some(p), Some(c)) = (path.take(), commit.clone()) {
                        unit = Some(Unit {
                            commit: c,
                            path: p,
                            text: Vec::new(),
                            lines: Vec::new(),
                        });
                    }
                    state = State::Hunk { next_line: start };
                }
            }
            State::Hunk { next_line } => match line.first() {
                Some(b'+') => {
                    if let Some(u) = unit.as_mut() {
                        if !oversized {
                            if u.text.len() as u64 + line.len() as u64 > max {
                                oversized = true;
                                parsed.too_large += 1;
                            } else {
                                u.text.extend_from_slice(&line[1..]);
                                u.text.push(b'\n');
                                u.lines.push(*next_line);
                            }
                        }
                    }
                    *next_line = next_line.saturating_add(1);
                }
                Some(b'@') if line.starts_with(b"@@ ") => *next_line = hunk_new_start(&line),
                _ => {}
            },
        }
    }
    flush(&mut unit, &mut oversized, &mut emit);
    Ok(parsed)
}

fn in_excluded_dir(scanner: &Scanner, path: &str) -> bool {
    scanner.options().default_excludes && {
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        parts
            .iter()
            .any(|p| super::DEFAULT_EXCLUDED_DIRS.contains(p))
    }
}

/// The path of a `+++ ` header: `b/dir/file`, a C-quoted `"b/dir/\tfile"`,
/// or `/dev/null` (None).
fn new_path(rest: &[u8]) -> Option<String> {
    let rest = rest.strip_suffix(b"\t").unwrap_or(rest);
    if rest == b"/dev/null" {
        return None;
    }
    let raw = if rest.first() == Some(&b'"') {
        unquote_c(rest)?
    } else {
        rest.to_vec()
    };
    let raw = raw.strip_prefix(b"b/").map(<[u8]>::to_vec).unwrap_or(raw);
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// Undoes git's C-style path quoting (`"a\tb\303\274"`).
fn unquote_c(quoted: &[u8]) -> Option<Vec<u8>> {
    let inner = quoted.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let next = *inner.get(i + 1)?;
        match next {
            b'0'..=b'7' => {
                let digits = inner.get(i + 1..i + 4)?;
                let mut v: u32 = 0;
                for d in digits {
                    if !(b'0'..=b'7').contains(d) {
                        return None;
                    }
                    v = v * 8 + u32::from(d - b'0');
                }
                out.push(u8::try_from(v).ok()?);
                i += 4;
                continue;
            }
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            other => out.push(other),
        }
        i += 2;
    }
    Some(out)
}

/// `@@ -12,3 +40,5 @@ fn x()` → 40. A zero-line new range (`+40,0`)
/// names the line before; no `+` lines follow it, so that does not matter.
fn hunk_new_start(line: &[u8]) -> u32 {
    let Some(plus) = memchr::memmem::find(line, b" +") else {
        return 1;
    };
    let digits = line[plus + 2..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |acc, d| {
            acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        });
    digits.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunk_headers_give_the_new_start_line() {
        assert_eq!(hunk_new_start(b"@@ -12,3 +40,5 @@ fn x()"), 40);
        assert_eq!(hunk_new_start(b"@@ -0,0 +1 @@"), 1);
        assert_eq!(hunk_new_start(b"@@ -3 +7,0 @@"), 7);
    }

    #[test]
    fn paths_are_unprefixed_and_unquoted() {
        assert_eq!(new_path(b"b/src/main.rs"), Some("src/main.rs".to_owned()));
        assert_eq!(new_path(b"/dev/null"), None);
        assert_eq!(
            new_path(b"\"b/dir/tab\\there \\303\\274.txt\""),
            Some("dir/tab\there ü.txt".to_owned())
        );
        assert_eq!(
            new_path(b"b/with space.txt\t"),
            Some("with space.txt".to_owned())
        );
    }
}
