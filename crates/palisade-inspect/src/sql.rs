//! SQL injection: libinjection (the `libinjectionrs` port) decides, behind a
//! cheap syntactic gate, with structural rules for the shapes libinjection
//! leaves alone.
//!
//! libinjection tokenizes a value as SQL in three contexts (as is, after a
//! `'`, after a `"`), folds the first tokens into a fingerprint such as
//! `s&sos` and looks the fingerprint up in a list of ~8 000 known injection
//! shapes. It is precise on prose (no false positive on the benign corpus),
//! but the Rust port allocates on every keyword lookup and costs 1–7 µs per
//! value. The gate skips values that contain nothing that can change the
//! structure of a SQL statement:
//!
//! - no quote other than prose punctuation (`O'Brien`, `don't`, `'World's
//!   Best Boss'`, `"The Rock"`, with no SQL keyword after it), no comment
//!   opener (`--`, `#`, `/*`), `||`, `&&`, brace, backslash, backtick or
//!   variable (`@`, except inside an e-mail address), and no `;` followed by
//!   a statement keyword;
//! - no SQL keyword that never occurs in prose (`information_schema`,
//!   `xp_cmdshell`, ...);
//! - no statement keyword followed by SQL (`union select`, `drop table`,
//!   `select *`, `sleep(`, `limit 1`): "Select your size" and "Union Jack"
//!   are prose;
//! - no operator or bracket (`= < > ! | & ( )`) next to a boolean keyword
//!   (`x=1 or 2`): `?lang=en&page=2`, `:)` and `(555) 010-1234` are not SQL;
//! - and, when the value starts with a number (numeric context: `1 or 1`,
//!   `-1 union select`), no SQL keyword at all.
//!
//! A test checks that the gate admits every corpus line libinjection flags.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::profile::{self, Profile};

/// How a word matters to the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keyword {
    /// Never prose: always worth a libinjection run.
    Always,
    /// Starts an injection when SQL follows it (`union`, `select`, `drop`).
    Lead,
    /// A boolean operator or constant (`or`, `and`, `like`, `null`): makes
    /// operators and brackets in the value significant.
    Logic,
    /// Other SQL that makes a preceding [`Keyword::Lead`] count (`all`,
    /// `from`, `table`).
    Follow,
}

/// The gate's keywords, each packed into a `u128` (see [`pack`]) and
/// sorted for binary search.
const KEYWORDS: [(u128, Keyword); 74] = sorted([
    (pack(b"xp_cmdshell"), Keyword::Always),
    (pack(b"sp_executesql"), Keyword::Always),
    (pack(b"sysobjects"), Keyword::Always),
    (pack(b"syscolumns"), Keyword::Always),
    (pack(b"all_tables"), Keyword::Always),
    (pack(b"sqlite_master"), Keyword::Always),
    (pack(b"load_file"), Keyword::Always),
    (pack(b"outfile"), Keyword::Always),
    (pack(b"dumpfile"), Keyword::Always),
    (pack(b"pg_sleep"), Keyword::Always),
    (pack(b"dbms_pipe"), Keyword::Always),
    (pack(b"utl_http"), Keyword::Always),
    (pack(b"extractvalue"), Keyword::Always),
    (pack(b"updatexml"), Keyword::Always),
    (pack(b"union"), Keyword::Lead),
    (pack(b"select"), Keyword::Lead),
    (pack(b"insert"), Keyword::Lead),
    (pack(b"update"), Keyword::Lead),
    (pack(b"delete"), Keyword::Lead),
    (pack(b"drop"), Keyword::Lead),
    (pack(b"exec"), Keyword::Lead),
    (pack(b"execute"), Keyword::Lead),
    (pack(b"declare"), Keyword::Lead),
    (pack(b"waitfor"), Keyword::Lead),
    (pack(b"truncate"), Keyword::Lead),
    (pack(b"alter"), Keyword::Lead),
    (pack(b"create"), Keyword::Lead),
    (pack(b"grant"), Keyword::Lead),
    (pack(b"revoke"), Keyword::Lead),
    (pack(b"having"), Keyword::Lead),
    (pack(b"shutdown"), Keyword::Lead),
    (pack(b"procedure"), Keyword::Lead),
    (pack(b"limit"), Keyword::Lead),
    (pack(b"sleep"), Keyword::Lead),
    (pack(b"benchmark"), Keyword::Lead),
    (pack(b"or"), Keyword::Logic),
    (pack(b"and"), Keyword::Logic),
    (pack(b"xor"), Keyword::Logic),
    (pack(b"not"), Keyword::Logic),
    (pack(b"like"), Keyword::Logic),
    (pack(b"rlike"), Keyword::Logic),
    (pack(b"regexp"), Keyword::Logic),
    (pack(b"between"), Keyword::Logic),
    (pack(b"div"), Keyword::Logic),
    (pack(b"mod"), Keyword::Logic),
    (pack(b"is"), Keyword::Logic),
    (pack(b"in"), Keyword::Logic),
    (pack(b"null"), Keyword::Logic),
    (pack(b"true"), Keyword::Logic),
    (pack(b"false"), Keyword::Logic),
    (pack(b"all"), Keyword::Follow),
    (pack(b"distinct"), Keyword::Follow),
    (pack(b"from"), Keyword::Follow),
    (pack(b"into"), Keyword::Follow),
    (pack(b"table"), Keyword::Follow),
    (pack(b"database"), Keyword::Follow),
    (pack(b"schema"), Keyword::Follow),
    (pack(b"set"), Keyword::Follow),
    (pack(b"delay"), Keyword::Follow),
    (pack(b"master"), Keyword::Follow),
    (pack(b"where"), Keyword::Follow),
    (pack(b"values"), Keyword::Follow),
    (pack(b"top"), Keyword::Follow),
    (pack(b"case"), Keyword::Follow),
    (pack(b"version"), Keyword::Follow),
    (pack(b"user"), Keyword::Follow),
    (pack(b"users"), Keyword::Follow),
    (pack(b"password"), Keyword::Follow),
    (pack(b"concat"), Keyword::Follow),
    (pack(b"char"), Keyword::Follow),
    (pack(b"order"), Keyword::Follow),
    (pack(b"group"), Keyword::Follow),
    (pack(b"by"), Keyword::Follow),
    (pack(b"offset"), Keyword::Follow),
]);

/// Packs up to 16 lower-case ASCII bytes into an integer; longer words do
/// not fit (the longest keyword here has 13 bytes).
const fn pack(word: &[u8]) -> u128 {
    let mut packed = 0u128;
    let mut i = 0;
    while i < word.len() && i < 16 {
        packed = packed << 8 | word[i].to_ascii_lowercase() as u128;
        i += 1;
    }
    packed
}

const fn sorted<const N: usize>(mut table: [(u128, Keyword); N]) -> [(u128, Keyword); N] {
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && table[j - 1].0 > table[j].0 {
            let tmp = table[j - 1];
            table[j - 1] = table[j];
            table[j] = tmp;
            j -= 1;
        }
        i += 1;
    }
    table
}

/// For each first letter, a bit per word length and a bit per second
/// letter that some keyword has, for `[all keywords, only Always and Lead]`.
/// Most words are rejected here without a table lookup.
const SHAPES: [[(u32, u32); 26]; 2] = {
    let mut shapes = [[(0u32, 0u32); 26]; 2];
    let mut i = 0;
    while i < KEYWORDS.len() {
        let (packed, kind) = KEYWORDS[i];
        let len = (128 - packed.leading_zeros()).div_ceil(8);
        let first = (packed >> ((len - 1) * 8)) as u8;
        let second = (packed >> ((len - 2) * 8)) as u8;
        let letter = (first - b'a') as usize;
        let second_bit = 1 << (second - b'a');
        shapes[0][letter].0 |= 1 << len;
        shapes[0][letter].1 |= second_bit;
        if matches!(kind, Keyword::Always | Keyword::Lead) {
            shapes[1][letter].0 |= 1 << len;
            shapes[1][letter].1 |= second_bit;
        }
        i += 1;
    }
    shapes
};

/// Classifies an ASCII word, case-insensitively, without allocating.
fn keyword(word: &[u8]) -> Option<Keyword> {
    keyword_in(word, false)
}

/// Like [`keyword`]; with `strong_only`, words that can only be
/// [`Keyword::Logic`] or [`Keyword::Follow`] are rejected early.
fn keyword_in(word: &[u8], strong_only: bool) -> Option<Keyword> {
    if !(2..=16).contains(&word.len()) {
        return (word.eq_ignore_ascii_case(b"information_schema")).then_some(Keyword::Always);
    }
    let letter = |at: usize| word.get(at)?.to_ascii_lowercase().checked_sub(b'a');
    let (lengths, seconds) = *SHAPES[usize::from(strong_only)].get(usize::from(letter(0)?))?;
    if lengths & (1 << word.len()) == 0 || seconds & (1 << letter(1)?.min(31)) == 0 {
        return None;
    }
    // Keywords are letters and `_`: hex, dates and ids are not.
    if word.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let packed = pack(word);
    KEYWORDS
        .binary_search_by_key(&packed, |(key, _)| *key)
        .ok()
        .and_then(|at| KEYWORDS.get(at))
        .map(|(_, kind)| *kind)
}

/// Keywords that, right after a `;`, start a stacked query.
const STACKED_WORDS: &[&str] = &[
    "alter", "create", "declare", "delete", "drop", "exec", "execute", "grant", "insert", "revoke",
    "select", "shutdown", "truncate", "update", "waitfor",
];

/// Returns the rule that flags `text` as SQL injection, if any.
pub(crate) fn detect(text: &str, profile: Profile) -> Option<&'static str> {
    let gate = gate(text, profile);
    if gate == Gate::Run {
        if let Some(rule) = libinjection(text, "libinjection") {
            return Some(rule);
        }
    }
    let comment = profile.any(profile::HASH)
        || (profile.any(profile::DASH | profile::SLASH)
            && text.as_bytes().windows(2).any(|w| w == b"--" || w == b"/*"));
    structural(text, profile, gate, comment).or_else(|| suffix(text, profile, comment))
}

/// Runs libinjection; `rule` names a hit.
///
/// Two-token fingerprints of a number or a word followed by a comment (`1c`,
/// `nc`) are not counted: "100% cotton -- machine washable" folds to `1c`,
/// and a bare number or word closed by a comment changes no query (`admin'--`
/// is `sc`, and still counts).
fn libinjection(text: &str, rule: &'static str) -> Option<&'static str> {
    // libinjectionrs is a machine translation of the C library whose slice
    // indexing could in principle panic; an input that makes it panic is
    // refused rather than allowed to take the request task down.
    match catch_unwind(AssertUnwindSafe(|| {
        let result = libinjectionrs::detect_sqli(text.as_bytes());
        let fingerprint = result.fingerprint.as_ref().map_or("", |f| f.as_str());
        result.is_injection() && !matches!(fingerprint, "1c" | "nc")
    })) {
        Ok(true) => Some(rule),
        Ok(false) => None,
        Err(_) => Some("libinjection_failed"),
    }
}

/// A value that continues a condition (` AND (SELECT ...)`, ` OR x=x#`,
/// ` ORDER BY 3--`, `) and 0=benchmark(...)`): libinjection fingerprints a
/// value from its start and expects the number or quote an injection usually
/// follows, so such a suffix is re-read after a `1`. Only with SQL syntax in
/// it (a comparison, a bracket, a comment), so that prose opening with "And",
/// "Or" or "Order by" stays prose.
fn suffix(text: &str, profile: Profile, comment: bool) -> Option<&'static str> {
    if !comment && !profile.any(profile::EQUALS | profile::ANGLE | profile::PAREN) {
        return None;
    }
    let trimmed = text.trim_start();
    let opening = trimmed.trim_start_matches(|c: char| c == ')' || c.is_whitespace());
    let first = next_word(opening.as_bytes(), 0)?;
    let continues = [
        b"and".as_slice(),
        b"or",
        b"xor",
        b"having",
        b"order",
        b"group",
        b"where",
        b"union",
        b"procedure",
        b"limit",
        b"rlike",
        b"regexp",
        b"like",
    ]
    .iter()
    .any(|k| first.eq_ignore_ascii_case(k));
    if !continues {
        return None;
    }
    libinjection(&format!("1 {trimmed}"), "libinjection_suffix")
}

/// What the gate decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// The value has SQL syntax: ask libinjection.
    Run,
    /// It has none; `logic` tells whether it contains a boolean keyword
    /// (without one, the constant-condition rule cannot match either).
    Skip { logic: bool },
}

/// The cheap gate in front of libinjection (see the module documentation).
fn gate(text: &str, profile: Profile) -> Gate {
    use crate::profile::{
        AMP, AT, BACKSLASH, BACKTICK, BRACE, DASH, HASH, NOT_WORD, OPERATOR, PAREN, PIPE, QUOTE,
        SEMI, SLASH,
    };
    let bytes = text.as_bytes();
    if !profile.any(NOT_WORD) {
        // A single word: only the never-prose keywords matter.
        return if keyword(bytes) == Some(Keyword::Always) {
            Gate::Run
        } else {
            Gate::Skip { logic: false }
        };
    }
    if profile.any(BACKTICK | HASH | BACKSLASH | BRACE) {
        return Gate::Run;
    }
    // Each class is looked for only when the profile says it is there.
    let pair = |pair: &[u8; 2]| bytes.windows(2).any(|w| w == pair);
    let positions = |wanted: &'static [u8]| {
        bytes
            .iter()
            .enumerate()
            .filter(move |(_, b)| wanted.contains(b))
            .map(|(i, _)| i)
    };
    if (profile.any(DASH) && pair(b"--"))
        || (profile.any(SLASH) && pair(b"/*"))
        || (profile.any(PIPE) && pair(b"||"))
        || (profile.any(AMP) && pair(b"&&"))
    {
        return Gate::Run;
    }
    if profile.any(AT) && positions(b"@").any(|i| !in_email(text, i)) {
        return Gate::Run;
    }
    if profile.any(SEMI)
        && positions(b";")
            .any(|i| next_word(bytes, i + 1).is_some_and(|w| keyword(w) == Some(Keyword::Lead)))
    {
        return Gate::Run;
    }
    if profile.any(QUOTE) && positions(b"'\"").any(|i| !prose_quote(text, i)) {
        return Gate::Run;
    }
    let operators = profile.any(OPERATOR | PAREN | PIPE | AMP);
    let numeric_context = starts_with_number(text);
    // Boolean and other keywords only matter next to operators or after a
    // leading number; otherwise only statement keywords are looked up.
    let strong_only = !numeric_context && !operators;
    let mut logic = false;
    let found = any_word(bytes, |word, end| match keyword_in(word, strong_only) {
        Some(Keyword::Always) => true,
        Some(_) if numeric_context => true,
        Some(Keyword::Lead) => {
            let after = skip_spaces(bytes, end);
            operators
                || match bytes.get(after) {
                    Some(b) if b.is_ascii_digit() || matches!(b, b'*' | b'(') => true,
                    _ => next_word(bytes, after).is_some_and(|w| keyword(w).is_some()),
                }
        }
        Some(Keyword::Logic) => {
            logic = true;
            false
        }
        Some(Keyword::Follow) | None => false,
    });
    // `=`, `<`, `>`, `!`, a single `|` or `&` and brackets only matter next
    // to a boolean keyword (`x=1 or 2`): `?lang=en&page=2`, `:)` and
    // `(555) 010-1234` are not SQL.
    if found || (operators && (logic || numeric_context)) {
        Gate::Run
    } else {
        Gate::Skip { logic }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Calls `f` with each ASCII word (a run of letters, digits and `_`) and the
/// index just past it, until `f` returns `true`; returns whether it did.
fn any_word(bytes: &[u8], mut f: impl FnMut(&[u8], usize) -> bool) -> bool {
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (is_word_byte(b), start) {
            (true, None) => start = Some(i),
            (false, Some(begin)) => {
                start = None;
                if f(bytes.get(begin..i).unwrap_or_default(), i) {
                    return true;
                }
            }
            _ => {}
        }
    }
    start.is_some_and(|begin| f(bytes.get(begin..).unwrap_or_default(), bytes.len()))
}

/// The next ASCII word at or after `start` and the index just past it.
fn word_from(bytes: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(start..)?;
    let begin = start + rest.iter().position(|&b| is_word_byte(b))?;
    let len = bytes
        .get(begin..)?
        .iter()
        .take_while(|&&b| is_word_byte(b))
        .count();
    Some((bytes.get(begin..begin + len)?, begin + len))
}

/// The word that starts at `pos` after optional whitespace, if a word does.
fn next_word(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    let pos = skip_spaces(bytes, pos);
    if !bytes.get(pos).copied().is_some_and(is_word_byte) {
        return None;
    }
    word_from(bytes, pos).map(|(word, _)| word)
}

/// Shapes libinjection does not report: a quote closed by a trailing comment
/// (`admin' --`, `admin' #`), a stacked statement after a number or a quote
/// (`1;SELECT * FROM users`, `'; SHUTDOWN--`), `WAITFOR DELAY '…'` and a
/// constant condition (`or 1=1`, `and 'a'='a'`).
///
/// `gate` is what the gate decided (a `WAITFOR DELAY '…'` always passes it:
/// its quote opens a number) and `comment` whether the value holds `--`,
/// `#` or `/*`.
fn structural(text: &str, profile: Profile, gate: Gate, comment: bool) -> Option<&'static str> {
    if comment && profile.any(profile::QUOTE) && quote_then_comment(text) {
        return Some("quote_comment");
    }
    if profile.any(profile::SEMI) && stacked_query(text) {
        return Some("stacked_query");
    }
    if gate == Gate::Run && profile.any(profile::QUOTE) && waitfor_delay(text) {
        return Some("time_delay");
    }
    let logic_possible = gate != Gate::Skip { logic: false };
    let comparison = logic_possible && profile.any(profile::EQUALS | profile::ANGLE);
    if (comment || comparison) && constant_condition(text) {
        return Some("constant_condition");
    }
    None
}

/// `or`/`and`/`||`/`&&` followed by a condition that does not depend on
/// the row: a comparison of two constants (`1=1`, `1=0`, `'a'='a'`), of a
/// column with itself (`x = x`), or `true` and a comment.
fn constant_condition(text: &str) -> bool {
    let bytes = text.as_bytes();
    let holds = |at: usize| {
        let rest = bytes.get(at..).unwrap_or_default();
        comparison_is_constant(rest) || true_then_comment(rest)
    };
    let by_word = any_word(bytes, |word, end| {
        (word.eq_ignore_ascii_case(b"or") || word.eq_ignore_ascii_case(b"and")) && holds(end)
    });
    by_word
        || bytes
            .windows(2)
            .enumerate()
            .any(|(i, w)| (w == b"||" || w == b"&&") && holds(i + 2))
}

/// `or true--`, `or true #`: a constant condition closed by a comment.
fn true_then_comment(bytes: &[u8]) -> bool {
    let pos = skip_spaces(bytes, 0);
    if pos == 0 || !starts_with_ignore_case(bytes.get(pos..).unwrap_or_default(), b"true") {
        return false;
    }
    let rest = bytes.get(skip_spaces(bytes, pos + 4)..).unwrap_or_default();
    rest.starts_with(b"--") || rest.starts_with(b"#") || rest.starts_with(b"/*")
}

fn comparison_is_constant(bytes: &[u8]) -> bool {
    // The keyword must end here (`order` is not `or`).
    if bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return false;
    }
    let mut pos = skip_spaces(bytes, 0);
    let Some((left, left_kind, next)) = operand(bytes, pos) else {
        return false;
    };
    pos = skip_spaces(bytes, next);
    let rest = bytes.get(pos..).unwrap_or_default();
    let (equal, len) = if rest.starts_with(b"==") {
        (true, 2)
    } else if rest.starts_with(b"<>") || rest.starts_with(b"!=") {
        (false, 2)
    } else if rest.starts_with(b"=") {
        (true, 1)
    } else {
        return false;
    };
    pos = skip_spaces(bytes, pos + len);
    let Some((right, right_kind, end)) = operand(bytes, pos) else {
        return false;
    };
    let ends = !bytes
        .get(end)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    ends && match (left_kind, right_kind) {
        // `1=1`, `1=0`, `'a'='b'`: true or false, it does not depend on a row
        // (the false one is the other half of a boolean-blind probe).
        (Operand::Number, Operand::Number) | (Operand::Quoted, Operand::Quoted) => true,
        // `x=x` is always true; `x=y` compares two columns.
        (Operand::Identifier, Operand::Identifier) => left.eq_ignore_ascii_case(right) == equal,
        _ => false,
    }
}

/// T-SQL's `WAITFOR DELAY '0:0:5'`, which libinjection leaves alone when it
/// starts the value.
fn waitfor_delay(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut found = false;
    any_word(bytes, |word, end| {
        if word.eq_ignore_ascii_case(b"waitfor") {
            let after = skip_spaces(bytes, end);
            if let Some(delay) = next_word(bytes, after) {
                let quote = bytes.get(skip_spaces(bytes, after + delay.len())).copied();
                found = delay.eq_ignore_ascii_case(b"delay") && matches!(quote, Some(b'\'' | b'"'));
            }
        }
        found
    })
}

/// The kind of a comparison operand.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operand {
    Number,
    Quoted,
    Identifier,
}

/// A number, a quoted string (without its quotes) or an identifier, its
/// kind, and the index just past it.
fn operand(bytes: &[u8], pos: usize) -> Option<(&[u8], Operand, usize)> {
    let rest = bytes.get(pos..)?;
    match *rest.first()? {
        quote @ (b'\'' | b'"') => {
            let close = rest.iter().skip(1).position(|&b| b == quote)?;
            Some((rest.get(1..=close)?, Operand::Quoted, pos + close + 2))
        }
        b if is_word_byte(b) => {
            let len = rest.iter().take_while(|b| is_word_byte(**b)).count();
            let word = rest.get(..len)?;
            let kind = if word.iter().all(u8::is_ascii_digit) {
                Operand::Number
            } else {
                Operand::Identifier
            };
            Some((word, kind, pos + len))
        }
        _ => None,
    }
}

fn skip_spaces(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        pos += 1;
    }
    pos
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}

fn quote_then_comment(text: &str) -> bool {
    text.char_indices()
        .filter(|&(_, c)| c == '\'' || c == '"')
        .any(|(i, _)| {
            let after = text
                .get(i + 1..)
                .unwrap_or_default()
                .trim_start_matches(|c: char| c.is_whitespace() || c == ';' || c == ')');
            // `-- `, `--+`, `-- -`, `#` or `/*` and nothing meaningful after:
            // `admin'--`, `admin' #`. Not `"#;` (a Rust raw string's end).
            if let Some(rest) = after.strip_prefix("--") {
                rest.chars()
                    .all(|c| c.is_whitespace() || c == '-' || c == '+')
            } else if let Some(rest) = after.strip_prefix('#') {
                rest.trim().is_empty()
            } else if let Some(rest) = after.strip_prefix("/*") {
                !rest.chars().any(char::is_alphanumeric)
            } else {
                false
            }
        })
}

fn stacked_query(text: &str) -> bool {
    let Some((before, after)) = text.split_once(';') else {
        return false;
    };
    let before = before.trim();
    let prefix_ok = before.is_empty()
        || before.ends_with('\'')
        || before.ends_with('"')
        || before.bytes().all(|b| b.is_ascii_digit());
    prefix_ok && starts_with_word(after, STACKED_WORDS)
}

/// Whether `text`, after leading whitespace, starts with one of `words`
/// (case-insensitive) followed by a non-word character or the end.
fn starts_with_word(text: &str, words: &[&str]) -> bool {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    is_one_of(text.get(..end).unwrap_or_default(), words)
}

fn is_one_of(word: &str, words: &[&str]) -> bool {
    word.len() >= 2 && words.iter().any(|w| w.eq_ignore_ascii_case(word))
}

fn starts_with_number(text: &str) -> bool {
    let t = text.trim_start().trim_start_matches(['-', '+', '(']);
    t.starts_with(|c: char| c.is_ascii_digit())
}

/// A quote used as prose punctuation rather than to leave a SQL string:
/// an apostrophe inside a word (`O'Brien`, `l'Église`), a quote opening a
/// quoted word (`'World's Best Boss'`, `"The Rock"`) or closing one before
/// the end, a space or punctuation. In every case the word that follows must
/// not be a SQL keyword (`x'or'1`, `admin' or`, `' OR`).
fn prose_quote(text: &str, at: usize) -> bool {
    let before = text.get(..at).and_then(|s| s.chars().next_back());
    let after = text.get(at + 1..).unwrap_or_default();
    let next = after.chars().next();
    let no_keyword_next = |rest: &str| next_word(rest.as_bytes(), 0).and_then(keyword).is_none();
    if next.is_some_and(char::is_alphabetic)
        && before.is_none_or(|b| b.is_alphabetic() || b.is_whitespace() || b == '(')
    {
        return no_keyword_next(after);
    }
    if !before.is_some_and(|b| b.is_alphanumeric() || matches!(b, '.' | '!' | '?')) {
        return false;
    }
    match next {
        None => true,
        Some(c) if c.is_whitespace() => {
            let rest = after.trim_start();
            rest.is_empty() || (rest.starts_with(char::is_alphabetic) && no_keyword_next(rest))
        }
        Some('.' | ',' | '!' | '?' | ':') => after
            .get(1..)
            .is_none_or(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace)),
        Some(_) => false,
    }
}

/// Whether the `@` at `at` is inside an e-mail-address-shaped token.
fn in_email(text: &str, at: usize) -> bool {
    let start = text
        .get(..at)
        .and_then(|s| s.rfind(char::is_whitespace).map(|p| p + 1))
        .unwrap_or(0);
    let end = text
        .get(at..)
        .and_then(|s| s.find(char::is_whitespace).map(|p| p + at))
        .unwrap_or(text.len());
    let token = text.get(start..end).unwrap_or_default();
    let Some((local, domain)) = token.split_once('@') else {
        return false;
    };
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    !local.is_empty()
        && local.chars().all(|c| allowed(c) || c == '\'')
        && domain.contains('.')
        && domain.chars().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(text: &str) -> Option<&'static str> {
        super::detect(text, Profile::of(text))
    }

    fn worth_checking(text: &str) -> bool {
        gate(text, Profile::of(text)) == Gate::Run
    }

    #[test]
    fn classic_injections() {
        for attack in [
            "' OR '1'='1",
            "1' OR '1'='1",
            "' UNION SELECT NULL,NULL--",
            "1 UNION SELECT 1,2,3",
            "1' AND SLEEP(5)#",
            "'; DROP TABLE users--",
            "admin'--",
        ] {
            assert_eq!(detect(attack), Some("libinjection"), "{attack}");
        }
    }

    #[test]
    fn structural_rules_cover_libinjection_gaps() {
        assert_eq!(detect("admin' #"), Some("quote_comment"));
        assert_eq!(detect("admin' -- "), Some("quote_comment"));
        assert_eq!(detect("1;SELECT * FROM users"), Some("stacked_query"));
        assert_eq!(detect("'; SHUTDOWN--"), Some("stacked_query"));
        // Prose with a quote and a dash is not a comment.
        assert_eq!(detect("He said 'no' -- and left"), None);
        assert_eq!(detect("    r#\"^(?<key>\\w+)$\"#;"), None);
        assert_eq!(detect("Pack of 3; select colours"), None);
        assert_eq!(detect("or 1=1"), Some("constant_condition"));
        assert!(constant_condition("x AND 'a' = 'a'"));
        assert!(constant_condition("1 || 2=2"));
        assert!(!constant_condition("Is it 1 or 2 o'clock?"));
        assert_eq!(detect("or 1<>2"), Some("constant_condition"));
        assert_eq!(detect("or true--"), Some("constant_condition"));
        assert_eq!(detect("true or false"), None);
        assert_eq!(detect("order 1=1"), None);
        assert_eq!(detect("or x=y"), None);
        assert_eq!(detect("waitfor delay '00:00:05'"), Some("time_delay"));
        assert_eq!(detect("I will waitfor delay notices"), None);
        assert_eq!(detect(" AND 1=0#"), Some("constant_condition"));
    }

    #[test]
    fn condition_suffixes() {
        assert_eq!(
            detect(" AND (SELECT * FROM (SELECT(SLEEP(5)))nQIP)--"),
            Some("libinjection_suffix")
        );
        assert_eq!(detect(" HAVING 1=1"), Some("libinjection_suffix"));
        assert_eq!(detect("ORDER BY SLEEP(5)"), Some("libinjection_suffix"));
        assert_eq!(detect("Order by phone or online; we ship worldwide."), None);
        assert_eq!(detect("And then there were none (the end)."), None);
    }

    #[test]
    fn prose_is_not_sql() {
        for benign in [
            "Siobhán O'Brien",
            "Select your size from the drop-down menu.",
            "Union Jack flag, 90 x 150 cm",
            "Don't forget the kids' lunches.",
            "alice@example.com",
            "1=1 scale model of the Eiffel Tower",
            "100% cotton -- machine washable",
            "50% off -- today only!",
        ] {
            assert_eq!(detect(benign), None, "{benign}");
        }
    }

    /// The gate must never hide what libinjection would report: every
    /// corpus line (and its normalised form) that libinjection flags passes
    /// the gate.
    #[test]
    fn gate_admits_everything_libinjection_flags_in_the_corpora() {
        let corpora = [
            include_str!("../testdata/attacks/sql.txt"),
            include_str!("../testdata/attacks/command.txt"),
            include_str!("../testdata/attacks/path_traversal.txt"),
            include_str!("../testdata/attacks/nosql.txt"),
            include_str!("../testdata/attacks/deserialization.txt"),
        ];
        let mut flagged = 0;
        for line in corpora.iter().flat_map(|c| c.lines()) {
            let normal = crate::normalize::normalised(line);
            for view in std::iter::once(line).chain(normal.as_deref()) {
                if libinjectionrs::detect_sqli(view.as_bytes()).is_injection() {
                    flagged += 1;
                    assert!(worth_checking(view), "the gate hides {view:?}");
                }
            }
        }
        assert!(flagged > 100);
    }

    #[test]
    fn keyword_table() {
        assert!(
            KEYWORDS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        assert_eq!(keyword(b"UNION"), Some(Keyword::Lead));
        assert_eq!(keyword(b"Or"), Some(Keyword::Logic));
        assert_eq!(keyword(b"xp_cmdshell"), Some(Keyword::Always));
        assert_eq!(keyword(b"INFORMATION_SCHEMA"), Some(Keyword::Always));
        assert_eq!(keyword(b"orange"), None);
        assert_eq!(keyword(b"o"), None);
        assert_eq!(keyword(b"1"), None);
    }

    #[test]
    fn gate_skips_plain_values() {
        assert!(!worth_checking("Siobhán O'Brien"));
        assert!(!worth_checking("Mug 'World's Best Boss'"));
        assert!(!worth_checking("Dwayne \"The Rock\" Johnson"));
        assert!(!worth_checking("She said 'hello', then left."));
        assert!(!worth_checking("221B Baker Street, London NW1 6XE"));
        assert!(!worth_checking("alice@example.com"));
        assert!(!worth_checking("550e8400-e29b-41d4-a716-446655440000"));
        assert!(!worth_checking("Deliver to the back door; ring twice"));
        assert!(!worth_checking("https://example.com/search?q=shoes&page=2"));
        assert!(!worth_checking(
            "Happy birthday, Dad! Don't eat it all at once :)"
        ));
        assert!(!worth_checking("Union Jack flag, select your size"));
    }

    #[test]
    fn gate_admits_sql_syntax() {
        assert!(worth_checking("x'or'1'='1"));
        assert!(worth_checking("admin' or 1"));
        assert!(worth_checking("' OR 1"));
        assert!(worth_checking("admin')"));
        assert!(worth_checking("1'or'1"));
        assert!(worth_checking("1 or 1"));
        assert!(worth_checking("admin'--"));
        assert!(worth_checking("1 union select 1"));
        assert!(worth_checking("@@version"));
        assert!(worth_checking("a; DROP TABLE t"));
        assert!(worth_checking("1/**/or/**/1"));
        assert!(worth_checking("d'or"));
        assert!(worth_checking("x=1 or 2"));
        assert!(worth_checking("abc||42"));
        assert!(worth_checking("sleep(5)"));
    }
}
