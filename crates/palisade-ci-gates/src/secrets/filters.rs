//! Checks a candidate secret must pass after its regex matched: Shannon
//! entropy, and the CRC32 checksum of GitHub-style tokens. Plus redaction
//! and fingerprinting of accepted secrets.

use sha2::{Digest, Sha256};

/// Shannon entropy of `bytes` in bits per byte (0 for empty input; at most
/// 8; a random base64 string of 40 characters scores about 5).
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC32_TABLE: [u32; 256] = crc32_table();

/// CRC-32 (IEEE 802.3, reflected, polynomial `0xEDB88320`) — the checksum
/// zlib, PNG and `binascii.crc32` compute.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC32_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` in base62 (`0-9A-Za-z`), left-padded with `0` to 6 digits (enough
/// for any `u32`: 62⁶ > 2³²).
pub fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut i = out.len();
    while n > 0 && i > 0 {
        i -= 1;
        out[i] = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// The checksum scheme of GitHub's 2021 token format (`ghp_`, `gho_`,
/// `ghu_`) and npm's (`npm_`): after the prefix (up to and including the
/// first `_`) come 30 random base62 characters and then 6 characters that
/// are the CRC-32 of those 30 characters in base62, zero-padded. Returns
/// whether `token` carries a correct checksum.
///
/// Sources: GitHub's "Behind GitHub's new authentication token formats"
/// (2021) and npm's "new access token format" (2021) posts; two
/// independent open-source verifiers (credsweeper's `ValueGitHubCheck`
/// and `base62-token.js`) implement exactly this and agree.
pub fn github_checksum_ok(token: &[u8]) -> bool {
    let Some(underscore) = token.iter().position(|&b| b == b'_') else {
        return false;
    };
    let body = &token[underscore + 1..];
    if body.len() <= 6 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_6(crc32(random)) == check
}

/// What every rendering shows of a secret: its first characters (a quarter
/// of its length, at most 4) followed by `***`. `AKIA…` keys show their
/// well-known prefix; a short password shows one or two characters.
pub fn redact(secret: &[u8]) -> String {
    let text = String::from_utf8_lossy(secret);
    let n = text.chars().count();
    let show = (n / 4).min(4);
    let mut out: String = text.chars().take(show).collect();
    out.push_str("***");
    out
}

/// Version tag hashed into every fingerprint; bump it (and
/// `report::sarif::FINGERPRINT_KEY`) if the scheme changes.
const FINGERPRINT_DOMAIN: &[u8] = b"palisade-secrets/v1\0";

/// The finding fingerprint: the first 128 bits, in hex, of
/// `SHA-256("palisade-secrets/v1\0" ‖ rule id ‖ "\0" ‖ path ‖ "\0" ‖ secret)`.
/// See the crate documentation for why this scheme.
pub fn fingerprint(rule_id: &str, path: &str, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(FINGERPRINT_DOMAIN);
    h.update(rule_id.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(secret);
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The CRC-32/ISO-HDLC check value: crc32("123456789") = 0xCBF43926.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base62_pads_and_encodes() {
        assert_eq!(&base62_6(0), b"000000");
        assert_eq!(&base62_6(61), b"00000z");
        assert_eq!(&base62_6(62), b"000010");
        assert_eq!(&base62_6(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn github_checksum_accepts_a_consistent_token_and_rejects_a_changed_one() {
        let random = b"FAKEfakeFAKEfakeFAKEfakeFAKE00";
        let mut token = b"ghp_".to_vec();
        token.extend_from_slice(random);
        token.extend_from_slice(&base62_6(crc32(random)));
        assert!(github_checksum_ok(&token));
        let last = token.len() - 1;
        token[last] = if token[last] == b'a' { b'b' } else { b'a' };
        assert!(!github_checksum_ok(&token));
        assert!(!github_checksum_ok(b"ghp_short"));
        assert!(!github_checksum_ok(b"no-underscore"));
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!((shannon_entropy(b"0123456789abcdef") - 4.0).abs() < 1e-9);
    }

    #[test]
    fn redaction_shows_at_most_four_characters() {
        // Built at run time: this file must not hold a token-shaped literal.
        let key = format!("AKIA{}", "FAKEKEY234567ABC");
        assert_eq!(redact(key.as_bytes()), "AKIA***");
        assert_eq!(redact(b"hunter2hunter"), "hun***");
        assert_eq!(redact(b"abc"), "***");
        assert_eq!(redact("ü€ab€üxy".as_bytes()), "ü€***");
    }

    #[test]
    fn fingerprint_is_stable_and_separates_fields() {
        let a = fingerprint("r", "p", b"s");
        assert_eq!(a.len(), 32);
        assert_eq!(a, fingerprint("r", "p", b"s"));
        assert_ne!(a, fingerprint("r", "p2", b"s"));
        assert_ne!(fingerprint("ab", "c", b"s"), fingerprint("a", "bc", b"s"));
    }
}
