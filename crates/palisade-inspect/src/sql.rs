//! SQL injection: libinjection (the `libinjectionrs` port) decides, behind a
//! cheap syntactic gate, with three structural rules for shapes libinjection
//! leaves alone.
//!
//! libinjection tokenizes a value as SQL in three contexts (as is, after a
//! `'`, after a `"`), folds the first five tokens into a fingerprint such as
//! `s&sos` and looks the fingerprint up in a list of ~8 000 known injection
//! shapes. It is precise on prose (no false positive on the benign corpus),
//! but the Rust port allocates on every keyword lookup and costs 1–7 µs per
//! value. The gate skips values that contain nothing that can change the
//! structure of a SQL statement:
//!
//! - no quote other than prose punctuation (`O'Brien`, `don't`, `'World's
//!   Best Boss'`, `"The Rock"`, with no SQL keyword after it), no
//!   comment opener (`--`, `#`, `/*`), operator or bracket (`= < > ( ) | &
//!   { } \`), variable (`@`, except inside an e-mail address), backtick, and
//!   no `;` followed by a statement keyword;
//! - no SQL keyword that never occurs in prose (`information_schema`,
//!   `xp_cmdshell`, ...);
//! - no statement keyword followed by SQL (`union select`, `drop table`,
//!   `select *`, `limit 1`) — "Select your size" and "Union Jack" are prose;
//! - and, when the value starts with a number (numeric context: `1 or 1`,
//!   `-1 union select`), no SQL keyword at all.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// How a word matters to the gate.
#[derive(Clone, Copy, PartialEq, Eq)]
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

/// Classifies an ASCII word, case-insensitively, without allocating.
fn keyword(word: &[u8]) -> Option<Keyword> {
    let mut buf = [0u8; 24];
    let lower = buf.get_mut(..word.len())?;
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    match &*lower {
        b"information_schema"
        | b"xp_cmdshell"
        | b"sp_executesql"
        | b"sysobjects"
        | b"syscolumns"
        | b"all_tables"
        | b"sqlite_master"
        | b"load_file"
        | b"outfile"
        | b"dumpfile"
        | b"pg_sleep"
        | b"dbms_pipe"
        | b"utl_http"
        | b"extractvalue"
        | b"updatexml" => Some(Keyword::Always),
        b"union" | b"select" | b"insert" | b"update" | b"delete" | b"drop" | b"exec"
        | b"execute" | b"declare" | b"waitfor" | b"truncate" | b"alter" | b"create" | b"grant"
        | b"revoke" | b"having" | b"shutdown" | b"procedure" | b"limit" | b"sleep"
        | b"benchmark" => Some(Keyword::Lead),
        b"or" | b"and" | b"xor" | b"not" | b"like" | b"rlike" | b"regexp" | b"between" | b"div"
        | b"mod" | b"is" | b"in" | b"null" | b"true" | b"false" => Some(Keyword::Logic),
        b"all" | b"distinct" | b"from" | b"into" | b"table" | b"database" | b"schema" | b"set"
        | b"delay" | b"master" | b"where" | b"values" | b"top" | b"case" | b"version" | b"user"
        | b"users" | b"password" | b"concat" | b"char" | b"order" | b"group" | b"by"
        | b"offset" => Some(Keyword::Follow),
        _ => None,
    }
}

/// Keywords that, right after a `;`, start a stacked query.
const STACKED_WORDS: &[&str] = &[
    "alter", "create", "declare", "delete", "drop", "exec", "execute", "grant", "insert", "revoke",
    "select", "shutdown", "truncate", "update", "waitfor",
];

/// Returns the rule that flags `text` as SQL injection, if any.
pub(crate) fn detect(text: &str) -> Option<&'static str> {
    if worth_checking(text) {
        // libinjectionrs is a machine translation of the C library whose
        // slice indexing could in principle panic; an input that makes it
        // panic is refused rather than allowed to take the request task down.
        match catch_unwind(AssertUnwindSafe(|| {
            libinjectionrs::detect_sqli(text.as_bytes()).is_injection()
        })) {
            Ok(true) => return Some("libinjection"),
            Ok(false) => {}
            Err(_) => return Some("libinjection_failed"),
        }
    }
    structural(text)
}

/// The cheap gate in front of libinjection (see the module documentation).
pub(crate) fn worth_checking(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut operators = false;
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        let significant = match b {
            b'`' | b'#' | b'\\' | b'{' | b'}' => true,
            b'-' => next == Some(b'-'),
            b'/' => next == Some(b'*'),
            b'|' | b'&' if next == Some(b) => true,
            b'@' => !in_email(text, i),
            b'\'' | b'"' => !prose_quote(text, i),
            b';' => next_word(bytes, i + 1).is_some_and(|w| keyword(w) == Some(Keyword::Lead)),
            b'=' | b'<' | b'>' | b'!' | b'|' | b'&' | b'(' | b')' => {
                operators = true;
                false
            }
            _ => false,
        };
        if significant {
            return true;
        }
    }
    let numeric_context = starts_with_number(text);
    let mut logic = false;
    let mut start = 0;
    while let Some((word, end)) = word_from(bytes, start) {
        match keyword(word) {
            Some(Keyword::Always) => return true,
            Some(_) if numeric_context => return true,
            Some(Keyword::Lead) => {
                let after = skip_spaces(bytes, end);
                let sql_follows = match bytes.get(after) {
                    Some(b) if b.is_ascii_digit() || matches!(b, b'*' | b'(') => true,
                    _ => next_word(bytes, after).is_some_and(|w| keyword(w).is_some()),
                };
                if sql_follows || operators {
                    return true;
                }
            }
            Some(Keyword::Logic) => logic = true,
            Some(Keyword::Follow) | None => {}
        }
        start = end;
    }
    // `=`, `<`, `>`, `!`, a single `|` or `&` and brackets only matter next
    // to a boolean keyword (`x=1 or 2`): `?lang=en&page=2`, `:)` and
    // `(555) 010-1234` are not SQL.
    operators && (logic || numeric_context)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
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
/// (`1;SELECT * FROM users`, `'; SHUTDOWN--`) and a bare tautology
/// (`or 1=1`, `and 'a'='a'`).
fn structural(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    let has = |set: &[u8]| bytes.iter().any(|b| set.contains(b));
    let comment = has(b"-#/");
    if comment && has(b"'\"") && quote_then_comment(text) {
        return Some("quote_comment");
    }
    if has(b";") && stacked_query(text) {
        return Some("stacked_query");
    }
    if (has(b"=>") || comment) && tautology(text) {
        return Some("tautology");
    }
    None
}

/// `or`/`and`/`||`/`&&` followed by a comparison of two equal operands
/// (`1=1`, `'a'='a'`, `x = x`), two different ones under `<>`/`!=`, or
/// `true` and a comment.
fn tautology(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len()).any(|i| {
        let rest = bytes.get(i..).unwrap_or_default();
        let word_start = i == 0 || !bytes.get(i - 1).is_some_and(u8::is_ascii_alphanumeric);
        let after = if rest.starts_with(b"||") || rest.starts_with(b"&&") {
            Some(i + 2)
        } else if word_start && starts_with_ignore_case(rest, b"or") {
            Some(i + 2)
        } else if word_start && starts_with_ignore_case(rest, b"and") {
            Some(i + 3)
        } else {
            None
        };
        after.is_some_and(|at| {
            let rest = bytes.get(at..).unwrap_or_default();
            comparison_is_constant(rest) || true_then_comment(rest)
        })
    })
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
    let Some((left, next)) = operand(bytes, pos) else {
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
    let Some((right, end)) = operand(bytes, pos) else {
        return false;
    };
    let ends = !bytes
        .get(end)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    ends && (left.eq_ignore_ascii_case(right) == equal)
}

/// A number, a quoted string (without its quotes) or an identifier.
fn operand(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(pos..)?;
    match *rest.first()? {
        quote @ (b'\'' | b'"') => {
            let close = rest.iter().skip(1).position(|&b| b == quote)?;
            Some((rest.get(1..=close)?, pos + close + 2))
        }
        b if b.is_ascii_alphanumeric() || b == b'_' => {
            let len = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            Some((rest.get(..len)?, pos + len))
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
        assert_eq!(detect("or 1=1"), Some("tautology"));
        assert!(tautology("x AND 'a' = 'a'"));
        assert!(tautology("1 || 2=2"));
        assert!(!tautology("Is it 1 or 2 o'clock?"));
        assert_eq!(detect("or 1<>2"), Some("tautology"));
        assert_eq!(detect("or true--"), Some("tautology"));
        assert_eq!(detect("true or false"), None);
        assert_eq!(detect("order 1=1"), None);
        assert_eq!(detect("or 1=2"), None);
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
