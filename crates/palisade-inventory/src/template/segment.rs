//! One path segment: normalisation, its kind, its shape, and whether it is a
//! reserved route word.

use std::borrow::Cow;
use std::fmt;

use crate::classify::email;
use crate::error::ObserveError;

/// A kind of value that is a parameter wherever it appears in a path, from a
/// single sample: nothing else is written that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SegmentKind {
    /// Decimal digits only: `42`, `0007`, `1700000000`.
    Integer,
    /// `8-4-4-4-12` hexadecimal digits, one case: a UUID of any version.
    Uuid,
    /// A date `YYYY-MM-DD` with a valid month and day.
    Date,
    /// 16 or more hexadecimal digits, one case, with both a digit and a
    /// letter: a hash or a hex-encoded id (`9f86d081884c7d65…`).
    HexHash,
    /// An e-mail address (`@` or `%40`).
    Email,
    /// An opaque token: 16 or more letters, digits, `-` and `_` with a digit,
    /// cut into at least 5 runs (of digits, of capitals, of lower-case
    /// letters after at most one capital) averaging at most 3 characters:
    /// `cus_NffrFeUfNV2Hib`, `pi_3MtwBwLkdIwHu7ix28a3tqPa`. Words, even
    /// camel-cased with digits (`getUser2FactorAuthCode`), have longer runs.
    Token,
}

impl SegmentKind {
    /// Every kind, in declaration order.
    pub const ALL: [SegmentKind; 6] = [
        SegmentKind::Integer,
        SegmentKind::Uuid,
        SegmentKind::Date,
        SegmentKind::HexHash,
        SegmentKind::Email,
        SegmentKind::Token,
    ];

    /// The stable lower-case name: `integer`, `uuid`, `date`, `hex_hash`,
    /// `email`, `token`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SegmentKind::Integer => "integer",
            SegmentKind::Uuid => "uuid",
            SegmentKind::Date => "date",
            SegmentKind::HexHash => "hex_hash",
            SegmentKind::Email => "email",
            SegmentKind::Token => "token",
        }
    }

    /// The kind of a (normalised) path segment, if it has one. The kinds are
    /// tried in declaration order, so `20240315` is an integer, not a date.
    pub fn of(segment: &str) -> Option<SegmentKind> {
        let b = segment.as_bytes();
        if b.is_empty() {
            return None;
        }
        if b.iter().all(u8::is_ascii_digit) {
            return Some(SegmentKind::Integer);
        }
        if uuid(b) {
            return Some(SegmentKind::Uuid);
        }
        if date(b) {
            return Some(SegmentKind::Date);
        }
        if hex_hash(b) {
            return Some(SegmentKind::HexHash);
        }
        if segment.contains('@') && email(segment) {
            return Some(SegmentKind::Email);
        }
        if segment.contains("%40") && email(&segment.replace("%40", "@")) {
            return Some(SegmentKind::Email);
        }
        if token(b) {
            return Some(SegmentKind::Token);
        }
        None
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn one_case_hex(b: &[u8]) -> bool {
    let lower = b.iter().any(u8::is_ascii_lowercase);
    let upper = b.iter().any(u8::is_ascii_uppercase);
    b.iter().all(u8::is_ascii_hexdigit) && !(lower && upper)
}

fn uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
        && !(b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_uppercase))
}

fn date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1000 && (1..=days).contains(&day)
}

fn hex_hash(b: &[u8]) -> bool {
    b.len() >= 16
        && one_case_hex(b)
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

fn token(b: &[u8]) -> bool {
    if b.len() < 16
        || !b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        || !b.iter().any(u8::is_ascii_digit)
    {
        return false;
    }
    // Runs: digits, lower-case letters (after at most one capital), capitals.
    let (mut runs, mut chars) = (0usize, 0usize);
    let mut run: Option<(u8, usize)> = None;
    for &c in b {
        let class = match c {
            b'a'..=b'z' => 1,
            b'A'..=b'Z' => 2,
            b'0'..=b'9' => 3,
            _ => {
                run = None;
                continue;
            }
        };
        chars += 1;
        run = match run {
            Some((current, len)) if current == class => Some((class, len + 1)),
            // `Account`: a capital starts a lower-case word.
            Some((2, 1)) if class == 1 => Some((1, 2)),
            _ => {
                runs += 1;
                Some((class, 1))
            }
        };
    }
    runs >= 5 && chars <= 3 * runs
}

/// Route words that stay literal even where free-form values are folded
/// into a parameter: `/users/me` next to `/users/{name}`. Compared ignoring
/// ASCII case.
pub const RESERVED_WORDS: &[&str] = &[
    "me",
    "self",
    "current",
    "mine",
    "my",
    "search",
    "export",
    "import",
    "new",
    "count",
    "batch",
    "bulk",
    "latest",
    "all",
    "default",
    "stats",
    "summary",
    "settings",
    "config",
    "health",
    "healthz",
    "status",
    "info",
    "metadata",
    "login",
    "logout",
    "register",
    "upload",
    "download",
    "preview",
    "validate",
    "history",
    "recent",
    "first",
    "last",
    "next",
    "previous",
    "any",
    "none",
    "random",
    "bootstrap",
    "public",
    "private",
    "internal",
    "admin",
    "api",
];

/// How a segment takes part in folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// A parameter kind: always folded.
    Typed(SegmentKind),
    /// Empty, without letters or digits, or a [`RESERVED_WORDS`] word: always literal.
    Reserved,
    /// Letters without digits: folded only where free-form values are.
    Word,
    /// Letters and digits (`AB-1234`, `v2`): folded when enough siblings share the shape.
    Shaped(Shape),
}

/// Segments this long and longer, with digits, share one shape.
pub(crate) const LONG: usize = 16;

/// The shape of segments of [`LONG`] bytes or more. It contains no `9`, so
/// no shorter segment has it.
pub(crate) const LONG_SHAPE: &str = "long";

/// The class of a normalised segment.
pub(crate) fn class(segment: &str) -> Class {
    if let Some(kind) = SegmentKind::of(segment) {
        return Class::Typed(kind);
    }
    let b = segment.as_bytes();
    if !b.iter().any(u8::is_ascii_alphanumeric)
        || RESERVED_WORDS
            .iter()
            .any(|r| segment.eq_ignore_ascii_case(r))
    {
        return Class::Reserved;
    }
    if !b.iter().any(u8::is_ascii_digit) {
        return Class::Word;
    }
    Class::Shaped(shape(segment))
}

/// A segment's shape, kept on the stack (a shape is never longer than
/// its segment, and segments of [`LONG`] bytes or more share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    buf: [u8; LONG],
    len: usize,
}

impl Shape {
    pub(crate) fn as_str(&self) -> &str {
        // Whole characters are copied in, so the bytes are always UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or(LONG_SHAPE)
    }
}

/// The shape of a segment with digits: runs of upper-case letters become
/// `A`, of lower-case letters `a`, of digits `9`; other characters stay as
/// they are (`AB-1234` → `A-9`, `v2` → `a9`, `INV-2024-0042` → `A-9-9`).
/// Segments of [`LONG`] bytes or more all have the shape [`LONG_SHAPE`].
pub(crate) fn shape(segment: &str) -> Shape {
    let mut out = Shape {
        buf: [0; LONG],
        len: 0,
    };
    let source = if segment.len() >= LONG {
        LONG_SHAPE
    } else {
        segment
    };
    let long = segment.len() >= LONG;
    let mut last = None;
    for c in source.chars() {
        let mapped = match c {
            _ if long => c,
            'A'..='Z' => 'A',
            'a'..='z' => 'a',
            '0'..='9' => '9',
            c => c,
        };
        let run = !long && matches!(mapped, 'A' | 'a' | '9');
        if !(run && last == Some(mapped)) {
            let mut utf8 = [0; 4];
            let bytes = mapped.encode_utf8(&mut utf8).as_bytes();
            out.buf[out.len..out.len + bytes.len()].copy_from_slice(bytes);
            out.len += bytes.len();
        }
        last = Some(mapped);
    }
    out
}

/// Longest path looked at, in bytes.
pub(crate) const MAX_PATH_BYTES: usize = 8 * 1024;

/// The normalised segments of a request path: the query and fragment are
/// dropped, and each segment is [`normalize`]d.
pub(crate) fn split(path: &str, max_segments: usize) -> Result<Vec<Cow<'_, str>>, ObserveError> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.len() > MAX_PATH_BYTES {
        return Err(ObserveError::TooLong {
            len: path.len(),
            max: MAX_PATH_BYTES,
        });
    }
    let rest = path.strip_prefix('/').ok_or(ObserveError::NotAbsolute)?;
    let count = rest.split('/').count();
    if count > max_segments {
        return Err(ObserveError::TooManySegments {
            count,
            max: max_segments,
        });
    }
    rest.split('/')
        .enumerate()
        .map(|(index, segment)| {
            if segment.contains(['{', '}']) {
                Err(ObserveError::Brace { index })
            } else {
                Ok(normalize(segment))
            }
        })
        .collect()
}

/// Normalises a raw path segment the way RFC 3986 (section 6.2.2) says is
/// safe: escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
/// decoded and the hex digits of other escapes are upper-cased; `%2F` stays.
/// Borrows when there is no `%`.
pub(crate) fn normalize(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(percent) = rest.find('%') {
        out.push_str(&rest[..percent]);
        let after = &rest[percent + 1..];
        let byte = after
            .get(..2)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match byte {
            Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(char::from(byte));
                rest = &after[2..];
            }
            Some(_) => {
                out.push('%');
                out.push_str(&after[..2].to_ascii_uppercase());
                rest = &after[2..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}
