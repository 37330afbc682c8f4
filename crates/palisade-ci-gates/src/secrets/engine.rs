//! The hot path: find candidate secrets in one buffer.
//!
//! 1. One Aho-Corasick automaton holds every rule's keywords (ASCII
//!    case-insensitive) and runs once over the whole buffer, reporting every
//!    (overlapping) keyword occurrence.
//! 2. A hit marks the keyword's rules as pending for the hit's line (a rule
//!    whose keywords are case-sensitive first compares the exact bytes).
//!    When the scan moves past the line, each pending rule's regex runs once
//!    over that line. Lines longer than [`LONG_LINE`] (minified code, data
//!    blobs) get a window around each hit instead; multi-line rules (PEM
//!    blocks, service-account JSON) get a window from the hit's line start
//!    forward.
//!    A rule with `requires_any` runs only if the line (window) also holds
//!    one of those strings (one `memchr`/`memmem`).
//! 3. A regex match is a candidate; the rule's filters (entropy, checksum,
//!    allow regexes on the secret and on the match, stop-words —
//!    `RuleSet::accept`) decide.
//!
//! Text without keywords costs one automaton pass and nothing else; nothing
//! allocates unless a candidate is found (the [`Scratch`] buffers are
//! reused across calls).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::{memchr, memrchr};

use super::rules::{Rule, RuleSet};

/// Lines longer than this are searched in windows around keyword hits.
pub const LONG_LINE: usize = 8 * 1024;
/// A long-line window starts this many bytes before the keyword...
const LONG_LINE_BEFORE: usize = 512;
/// ...and ends this many bytes after it.
const LONG_LINE_AFTER: usize = 4 * 1024;
/// A multi-line rule searches this many bytes from its keyword on.
pub const MULTILINE_WINDOW: usize = 32 * 1024;

/// The compiled keyword prefilter.
#[derive(Debug, Clone)]
pub struct Engine {
    ac: Option<AhoCorasick>,
    /// For each automaton pattern, the rules it gates.
    gates: Vec<Vec<Gate>>,
    rules: usize,
}

#[derive(Debug, Clone)]
struct Gate {
    rule: usize,
    /// The keyword's exact bytes when the rule's keywords are case-sensitive.
    exact: Option<Box<[u8]>>,
}

/// A candidate that passed its rule's filters. Offsets are into the scanned
/// buffer; `start..end` is the secret, `match_start` where the whole regex
/// match began (used for the inline-allow check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMatch {
    pub rule: usize,
    pub match_start: usize,
    pub start: usize,
    pub end: usize,
}

/// Per-thread reusable state.
#[derive(Debug, Default)]
pub struct Scratch {
    pending: Vec<usize>,
    marked: Vec<bool>,
    multiline_until: Vec<usize>,
    /// The accepted candidates of the last [`Engine::scan`], sorted by offset.
    pub out: Vec<RawMatch>,
}

impl Scratch {
    fn prepare(&mut self, rules: usize) {
        self.out.clear();
        self.pending.clear();
        if self.marked.len() != rules {
            self.marked = vec![false; rules];
            self.multiline_until = vec![0; rules];
        } else {
            self.marked.iter_mut().for_each(|m| *m = false);
            self.multiline_until.iter_mut().for_each(|m| *m = 0);
        }
    }
}

impl Engine {
    /// Builds the automaton over every rule's keywords.
    pub fn new(rules: &[Rule]) -> Result<Self, String> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut gates: Vec<Vec<Gate>> = Vec::new();
        let mut index: std::collections::HashMap<Vec<u8>, usize> = Default::default();
        for (ri, rule) in rules.iter().enumerate() {
            for kw in &rule.keywords {
                let key = kw.as_bytes().to_ascii_lowercase();
                let pid = *index.entry(key.clone()).or_insert_with(|| {
                    patterns.push(key);
                    gates.push(Vec::new());
                    patterns.len() - 1
                });
                let exact = rule
                    .keywords_case_sensitive
                    .then(|| kw.as_bytes().to_vec().into_boxed_slice());
                if !gates[pid].iter().any(|g| g.rule == ri && g.exact == exact) {
                    gates[pid].push(Gate { rule: ri, exact });
                }
            }
        }
        if patterns.is_empty() {
            return Ok(Engine::empty());
        }
        let build = |kind| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .kind(kind)
                .build(&patterns)
        };
        let ac = build(Some(AhoCorasickKind::DFA))
            .or_else(|_| build(None))
            .map_err(|e| format!("cannot build the keyword automaton: {e}"))?;
        Ok(Engine {
            ac: Some(ac),
            gates,
            rules: rules.len(),
        })
    }

    /// An engine that finds nothing.
    pub fn empty() -> Self {
        Engine {
            ac: None,
            gates: Vec::new(),
            rules: 0,
        }
    }

    /// Scans `hay`; the accepted candidates end up in `scratch.out`, sorted
    /// by offset, without duplicates, and without generic-rule candidates
    /// that overlap a specific rule's.
    pub fn scan(&self, set: &RuleSet, hay: &[u8], scratch: &mut Scratch) {
        scratch.prepare(self.rules);
        let Some(ac) = &self.ac else {
            return;
        };
        let mut line: Option<(usize, usize)> = None;
        for m in ac.find_overlapping_iter(hay) {
            let (p, e) = (m.start(), m.end());
            let (ls, le) = match line {
                Some((ls, le)) if p >= ls && p <= le => (ls, le),
                _ => {
                    self.flush(set, hay, line, scratch);
                    let ls = memrchr(b'\n', &hay[..p]).map_or(0, |i| i + 1);
                    let le = memchr(b'\n', &hay[e..]).map_or(hay.len(), |i| e + i);
                    line = Some((ls, le));
                    (ls, le)
                }
            };
            for gate in &self.gates[m.pattern().as_usize()] {
                if let Some(exact) = &gate.exact {
                    if hay[p..e] != exact[..] {
                        continue;
                    }
                }
                let ri = gate.rule;
                if set.rules[ri].multiline {
                    if p < scratch.multiline_until[ri] {
                        continue;
                    }
                    let end = p.saturating_add(MULTILINE_WINDOW).min(hay.len());
                    let last = run(set, ri, hay, ls, end, scratch);
                    scratch.multiline_until[ri] = last.max(p + 1);
                } else if le - ls > LONG_LINE {
                    let ws = p.saturating_sub(LONG_LINE_BEFORE).max(ls);
                    let we = e.saturating_add(LONG_LINE_AFTER).min(le);
                    run(set, ri, hay, ws, we, scratch);
                } else if !scratch.marked[ri] {
                    scratch.marked[ri] = true;
                    scratch.pending.push(ri);
                }
            }
        }
        self.flush(set, hay, line, scratch);
        if !scratch.out.is_empty() {
            finish(set, &mut scratch.out);
        }
    }

    /// Runs the pending rules over the line `ls..le`.
    fn flush(&self, set: &RuleSet, hay: &[u8], line: Option<(usize, usize)>, s: &mut Scratch) {
        let Some((ls, mut le)) = line else {
            return;
        };
        if le > ls && hay[le - 1] == b'\r' {
            le -= 1;
        }
        while let Some(ri) = s.pending.pop() {
            s.marked[ri] = false;
            run(set, ri, hay, ls, le, s);
        }
    }
}

/// Runs rule `ri` over `hay[ws..we]`; returns the end of the last match
/// (or `ws`).
fn run(set: &RuleSet, ri: usize, hay: &[u8], ws: usize, we: usize, s: &mut Scratch) -> usize {
    let rule = &set.rules[ri];
    let window = &hay[ws..we];
    let mut last = ws;
    if !rule.requires_any.is_empty() && !rule.requires_any.iter().any(|r| contains(window, r)) {
        return last;
    }
    for m in rule.regex.find_iter(window) {
        last = ws + m.end();
        let (ss, se) = match rule.secret_group {
            None => (m.start(), m.end()),
            Some(g) => match rule
                .regex
                .captures_at(window, m.start())
                .and_then(|c| c.get(g))
            {
                Some(c) => (c.start(), c.end()),
                None => (m.start(), m.end()),
            },
        };
        if set.accept(rule, &window[m.start()..m.end()], &window[ss..se]) {
            s.out.push(RawMatch {
                rule: ri,
                match_start: ws + m.start(),
                start: ws + ss,
                end: ws + se,
            });
        }
    }
    last
}

/// Whether `needle` occurs in `hay` (memchr for a single byte).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    match needle {
        [b] => memchr(*b, hay).is_some(),
        _ => memchr::memmem::find(hay, needle).is_some(),
    }
}

/// Sorts, removes duplicates (a multi-line or long-line window can see the
/// same match twice), then resolves overlaps: a generic candidate yields to
/// any specific candidate it overlaps, and a candidate strictly inside
/// another's secret (a PEM body inside a service-account key) yields to
/// the larger one, unless only the larger one is generic.
fn finish(set: &RuleSet, out: &mut Vec<RawMatch>) {
    out.sort_unstable_by_key(|m| (m.start, m.end, m.rule));
    out.dedup_by_key(|m| (m.start, m.end, m.rule));
    if out.len() < 2 {
        return;
    }
    let spans: Vec<(usize, usize, bool)> = out
        .iter()
        .map(|m| (m.start, m.end, set.rules[m.rule].generic))
        .collect();
    out.retain(|m| {
        let generic = set.rules[m.rule].generic;
        !spans.iter().any(|&(s, e, other_generic)| {
            let overlaps = m.start < e && s < m.end;
            let strictly_inside = s <= m.start && m.end <= e && e - s > m.end - m.start;
            (generic && !other_generic && overlaps)
                || (strictly_inside && (generic || !other_generic))
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_keywords_compile_to_a_dfa() {
        // The NFA fallback is about 2.5 times slower; a rules change that
        // pushes the automaton past the DFA size limit should be noticed.
        let set = RuleSet::builtin().unwrap();
        let ac = set.engine.ac.as_ref().unwrap();
        assert_eq!(ac.kind(), AhoCorasickKind::DFA);
    }

    #[test]
    fn an_empty_rule_set_finds_nothing() {
        let set = RuleSet::with_config_str("cfg", "use_default_rules = false\n").unwrap();
        let mut scratch = Scratch::default();
        set.engine.scan(&set, b"anything at all", &mut scratch);
        assert!(scratch.out.is_empty());
    }
}
