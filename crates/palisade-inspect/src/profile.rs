//! One pass over a value that records which classes of bytes it contains,
//! so that each detector can skip a value that lacks the characters its
//! attacks need (most values are identifiers, numbers, dates and words).

/// A set of byte classes present in a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Profile(u32);

/// `'` or `"`.
pub(crate) const QUOTE: u32 = 1 << 0;
/// `` ` ``.
pub(crate) const BACKTICK: u32 = 1 << 1;
/// `#`.
pub(crate) const HASH: u32 = 1 << 2;
/// `-`.
pub(crate) const DASH: u32 = 1 << 3;
/// `/`.
pub(crate) const SLASH: u32 = 1 << 4;
/// `\`.
pub(crate) const BACKSLASH: u32 = 1 << 5;
/// `{` or `}`.
pub(crate) const BRACE: u32 = 1 << 6;
/// `;`.
pub(crate) const SEMI: u32 = 1 << 7;
/// `|`.
pub(crate) const PIPE: u32 = 1 << 8;
/// `&`.
pub(crate) const AMP: u32 = 1 << 9;
/// `$`.
pub(crate) const DOLLAR: u32 = 1 << 10;
/// `=`, `<`, `>` or `!`.
pub(crate) const OPERATOR: u32 = 1 << 11;
/// `(` or `)`.
pub(crate) const PAREN: u32 = 1 << 12;
/// `@`.
pub(crate) const AT: u32 = 1 << 13;
/// `\n` or `\r`.
pub(crate) const NEWLINE: u32 = 1 << 14;
/// `%`.
pub(crate) const PERCENT: u32 = 1 << 15;
/// `.`.
pub(crate) const DOT: u32 = 1 << 16;
/// `:`.
pub(crate) const COLON: u32 = 1 << 17;
/// NUL.
pub(crate) const NUL: u32 = 1 << 18;
/// A byte of a non-ASCII character.
pub(crate) const NON_ASCII: u32 = 1 << 19;
/// `!`.
pub(crate) const BANG: u32 = 1 << 20;
/// `_`.
pub(crate) const UNDERSCORE: u32 = 1 << 21;
/// Any other ASCII byte that is not a letter or a digit (space, `,`, `?`, ...).
pub(crate) const OTHER: u32 = 1 << 22;
/// `=`.
pub(crate) const EQUALS: u32 = 1 << 23;
/// `<` or `>`.
pub(crate) const ANGLE: u32 = 1 << 24;

/// Every class but letters, digits and `_`: a value without any of these is
/// a single word.
pub(crate) const NOT_WORD: u32 = !(UNDERSCORE);

const fn class(b: u8) -> u32 {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => 0,
        b'\'' | b'"' => QUOTE,
        b'`' => BACKTICK,
        b'#' => HASH,
        b'-' => DASH,
        b'/' => SLASH,
        b'\\' => BACKSLASH,
        b'{' | b'}' => BRACE,
        b';' => SEMI,
        b'|' => PIPE,
        b'&' => AMP,
        b'$' => DOLLAR,
        b'=' => OPERATOR | EQUALS,
        b'<' | b'>' => OPERATOR | ANGLE,
        b'!' => OPERATOR | BANG,
        b'(' | b')' => PAREN,
        b'@' => AT,
        b'\n' | b'\r' => NEWLINE,
        b'%' => PERCENT,
        b'.' => DOT,
        b':' => COLON,
        0 => NUL,
        b'_' => UNDERSCORE,
        0x80..=0xFF => NON_ASCII,
        _ => OTHER,
    }
}

const CLASSES: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = class(b as u8);
        b += 1;
    }
    table
};

impl Profile {
    /// Profiles `text` in one pass.
    pub(crate) fn of(text: &str) -> Profile {
        Profile(text.bytes().fold(0, |acc, b| acc | CLASSES[usize::from(b)]))
    }

    /// Whether any of the classes in `mask` occurs.
    pub(crate) fn any(self, mask: u32) -> bool {
        self.0 & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let p = Profile::of("a'b;c");
        assert!(p.any(QUOTE) && p.any(SEMI));
        assert!(!p.any(PIPE | DOLLAR));
        assert!(!Profile::of("order_id42").any(NOT_WORD));
        assert!(Profile::of("a b").any(OTHER));
        assert!(Profile::of("é").any(NON_ASCII));
        assert!(Profile::of("x\0").any(NUL));
        assert!(Profile::of("!").any(OPERATOR | BANG));
    }
}
