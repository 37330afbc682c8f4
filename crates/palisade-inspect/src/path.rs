//! Path traversal: `..` segments, sensitive absolute paths and NUL bytes,
//! on the normalised text (the caller has already undone percent, overlong
//! and full-width encodings).

use crate::profile::Profile;

/// Files and directories whose mention as a path is an attack on its own.
/// Matched case-insensitively (Windows paths are), with `\` read as `/`, at
/// any segment boundary of a request path and of a value that is a path.
const SENSITIVE: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/master.passwd",
    "/etc/sudoers",
    "/etc/hosts",
    "/etc/issue",
    "/etc/crontab",
    "/etc/fstab",
    "/etc/environment",
    "/etc/ssh/",
    "/etc/nginx/",
    "/etc/apache2/",
    "/etc/httpd/",
    "/etc/mysql/",
    "/etc/php/",
    "/proc/self/",
    "/proc/version",
    "/proc/cmdline",
    "/proc/mounts",
    "/proc/net/",
    "/var/log/",
    "/windows/win.ini",
    "/windows/system.ini",
    "/windows/system32/",
    "/windows/repair/",
    "/winnt/win.ini",
    "/winnt/system32/",
    "/boot.ini",
    "/inetpub/",
    "/web.config",
    "/.ssh/",
    "/.aws/credentials",
    "/.bash_history",
    "/.htpasswd",
    "/.htaccess",
    "/.env",
    "/web-inf/web.xml",
];

/// Directories that are sensitive as the start of a value that is a path,
/// but too common as route segments to flag inside a request path.
const SENSITIVE_ROOTS: &[&str] = &["/etc/", "/proc/", "/root/.", "/sys/"];

/// Where the text came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole decoded request path.
    RequestPath,
    /// Any other value (query value, header, JSON string, key).
    Value,
}

/// Returns the rule that flags `text` as path traversal, if any.
pub(crate) fn detect(text: &str, scope: Scope, profile: Profile) -> Option<&'static str> {
    use crate::profile::{BACKSLASH, DOT, NUL, SLASH};
    if profile.any(NUL) {
        return Some("nul_byte");
    }
    if !profile.any(DOT | SLASH | BACKSLASH) {
        return None;
    }
    let bytes = text.as_bytes();
    if has_dotdot_segment(bytes) {
        return Some("dotdot_segment");
    }
    if sensitive_path(text, scope) {
        return Some("sensitive_file");
    }
    None
}

fn is_separator(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

/// A segment that is exactly `..` (a `;...` suffix ignored, as Tomcat does
/// for `..;/`), or three or more dots followed by a separator (`..../`, the
/// leftover of filters that strip `../` once).
fn has_dotdot_segment(bytes: &[u8]) -> bool {
    if !bytes.windows(2).any(|w| w == b"..") {
        return false;
    }
    let mut start = 0;
    while start <= bytes.len() {
        let end = bytes
            .get(start..)
            .and_then(|rest| rest.iter().position(|&b| is_separator(b)))
            .map_or(bytes.len(), |p| start + p);
        let segment = bytes.get(start..end).unwrap_or_default();
        let segment = segment
            .iter()
            .position(|&b| b == b';')
            .and_then(|p| segment.get(..p))
            .unwrap_or(segment);
        let all_dots = !segment.is_empty() && segment.iter().all(|&b| b == b'.');
        if all_dots && (segment.len() == 2 || (segment.len() > 2 && end < bytes.len())) {
            return true;
        }
        start = end + 1;
    }
    false
}

/// Lower-cases ASCII, reads `\` as `/`, collapses `//` and drops `/./`;
/// with `rooted`, the result starts with `/` (a relative path read from the
/// working directory).
fn canonical(text: &str, rooted: bool) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(text.len() + 1);
    if rooted {
        out.push(b'/');
    }
    for &b in text.as_bytes() {
        let b = if b == b'\\' {
            b'/'
        } else {
            b.to_ascii_lowercase()
        };
        if b == b'/' {
            if out.last() == Some(&b'/') {
                continue;
            }
            if out.ends_with(b"/.") {
                out.pop();
                continue;
            }
        }
        out.push(b);
    }
    // Only ASCII bytes were changed, so the text is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn sensitive_path(text: &str, scope: Scope) -> bool {
    let trimmed = text.trim();
    match scope {
        Scope::RequestPath => contains_sensitive(&canonical(trimmed, false)),
        Scope::Value => {
            let token = trimmed
                .split(char::is_whitespace)
                .next()
                .unwrap_or_default();
            let bytes = token.as_bytes();
            let absolute = matches!(bytes.first(), Some(b'/' | b'\\'))
                || bytes
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"file:"))
                || (has_drive(token) && matches!(bytes.get(2), Some(b'/' | b'\\')));
            if absolute {
                let canon = canonical(token, false);
                absolute_path(&canon).is_some_and(|path| {
                    SENSITIVE_ROOTS.iter().any(|root| path.starts_with(root))
                        || contains_sensitive(path)
                })
            } else if token.contains(['/', '\\']) || token.starts_with('.') {
                // A relative path names the same files from the working
                // directory: `etc/passwd`, `.htaccess`, `././.htaccess`.
                contains_sensitive(&canonical(token, true))
            } else {
                false
            }
        }
    }
}

/// The value as an absolute path: `/…`, `c:/…`, `file:/…`, `file:/c:/…`
/// (after [`canonical`], which collapsed `file:///` to `file:/`), with any
/// drive letter removed.
fn absolute_path(text: &str) -> Option<&str> {
    let text = text.strip_prefix("file:").unwrap_or(text);
    let text = text
        .strip_prefix('/')
        .filter(|rest| has_drive(rest))
        .unwrap_or(text);
    let text = strip_drive(text);
    text.starts_with('/').then_some(text)
}

fn has_drive(text: &str) -> bool {
    let b = text.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic) && b.get(1) == Some(&b':')
}

fn strip_drive(text: &str) -> &str {
    if has_drive(text) {
        text.get(2..).unwrap_or(text)
    } else {
        text
    }
}

/// Whether a sensitive entry starts at a `/` of `path`; a file entry must
/// end the name (`/etc/passwd`, `/etc/passwd\0.png`, but not
/// `/etc/passwords-policy` or `/.env.example`). `/proc/<pid>/` counts like
/// `/proc/self/`.
fn contains_sensitive(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .any(|(at, _)| {
            let rest = bytes.get(at..).unwrap_or_default();
            // Every entry starts with one of these after its `/`.
            if !matches!(
                rest.get(1),
                Some(b'e' | b'p' | b'v' | b'w' | b'b' | b'i' | b'.')
            ) {
                return false;
            }
            let entry_found = SENSITIVE.iter().any(|entry| {
                let entry = entry.as_bytes();
                rest.starts_with(entry)
                    && (entry.ends_with(b"/")
                        || !rest.get(entry.len()).is_some_and(|&b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
                        }))
            });
            entry_found
                || rest.strip_prefix(b"/proc/").is_some_and(|pid| {
                    let digits = pid.iter().take_while(|b| b.is_ascii_digit()).count();
                    digits > 0 && pid.get(digits) == Some(&b'/')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_start_with_a_known_letter() {
        // `contains_sensitive` skips a `/` followed by anything else.
        for entry in SENSITIVE {
            let second = entry.as_bytes()[1];
            assert!(b"epvwbi.".contains(&second), "{entry}");
        }
    }

    fn detect(text: &str, scope: Scope) -> Option<&'static str> {
        super::detect(text, scope, Profile::of(text))
    }

    #[test]
    fn dotdot_segments() {
        for attack in [
            "../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "..",
            "a/..",
            "....//....//etc/passwd",
            "..././",
            "..;/..;/etc",
        ] {
            assert_eq!(
                detect(attack, Scope::Value),
                Some("dotdot_segment"),
                "{attack}"
            );
        }
        for benign in ["...", "Wait... what?", "v1..v2", "file..txt", "1..10"] {
            assert_eq!(detect(benign, Scope::Value), None, "{benign}");
        }
    }

    #[test]
    fn sensitive_files_in_values() {
        for attack in [
            "/etc/passwd",
            "/ETC/PASSWD",
            "//etc//passwd",
            "/./etc/./passwd",
            "C:\\Windows\\win.ini",
            "c:/windows/system32/config/SAM",
            "\\windows\\win.ini",
            "file:///etc/passwd",
            "file:///c:/windows/win.ini",
            "/home/user/.ssh/authorized_keys",
            "/var/log/nginx/access.log",
            "/proc/self/environ",
            "/proc/1/environ",
            "/etc/myapp/config.yaml",
            "C:\\inetpub\\wwwroot\\web.config",
            "/var/www/html/.htaccess",
            ".htaccess",
            "././.htaccess",
            "etc/passwd",
        ] {
            assert_eq!(
                detect(attack, Scope::Value),
                Some("sensitive_file"),
                "{attack}"
            );
        }
        for benign in [
            "Cat /etc/passwd is a famous string",
            "https://example.com/etc/passwords-policy",
            "/api/v1/orders",
            "images/logo.png",
            "/home/alice/projects/report.pdf",
            "/var/www/html/index.html",
            "/srv/app/.env.example",
            ".env.example",
            ".gitignore",
            "report-2024.pdf",
        ] {
            assert_eq!(detect(benign, Scope::Value), None, "{benign}");
        }
    }

    #[test]
    fn sensitive_files_in_request_paths() {
        assert_eq!(
            detect("/download/etc/passwd", Scope::RequestPath),
            Some("sensitive_file")
        );
        assert_eq!(detect("/trees/root/children", Scope::RequestPath), None);
        assert_eq!(detect("/api/etc/settings", Scope::RequestPath), None);
        assert_eq!(
            detect("/x/proc/1/environ", Scope::RequestPath),
            Some("sensitive_file")
        );
        assert_eq!(
            detect("/docs/etc/passwords-policy", Scope::RequestPath),
            None
        );
    }

    #[test]
    fn nul_byte_is_evasion() {
        assert_eq!(detect("report.pdf\0.png", Scope::Value), Some("nul_byte"));
        assert_eq!(detect("\0", Scope::RequestPath), Some("nul_byte"));
    }
}
