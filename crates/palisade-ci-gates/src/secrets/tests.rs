use super::*;

#[test]
fn line_cursor_counts_lines_forward_and_back() {
    let hay = b"a\nbb\nccc\n";
    let mut c = LineCursor::default();
    assert_eq!(c.locate(hay, 0), (0, 0));
    assert_eq!(c.locate(hay, 3), (1, 2));
    assert_eq!(c.locate(hay, 7), (2, 5));
    assert_eq!(c.locate(hay, 1), (0, 0));
}

#[test]
fn scanner_and_rules_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Scanner>();
    check::<RuleSet>();
    check::<Baseline>();
}

#[test]
fn requires_any_and_allow_match_regexes_gate_a_rule() {
    let config = r#"
use_default_rules = false

[[rules]]
id = "acme"
regex = '''acme_(?P<secret>[a-z]{8})'''
keywords = ["acme_"]
requires_any = ["="]
allow_match_regexes = ['''acme_zz''']
"#;
    let scanner = Scanner::new(
        RuleSet::with_config_str("cfg", config).unwrap(),
        ScanOptions::default(),
    );
    assert_eq!(scanner.scan_bytes("x", b"k = acme_abcdefgh").len(), 1);
    assert!(scanner.scan_bytes("x", b"k: acme_abcdefgh").is_empty());
    assert!(scanner.scan_bytes("x", b"k = acme_zzcdefgh").is_empty());
}

#[test]
fn multiline_rules_see_the_lines_after_their_keyword() {
    let config = r#"
use_default_rules = false

[[rules]]
id = "block"
regex = '''BEGIN BLOCK\n(?P<secret>[a-z]{4})\nEND'''
keywords = ["begin block"]
multiline = true
"#;
    let scanner = Scanner::new(
        RuleSet::with_config_str("cfg", config).unwrap(),
        ScanOptions::default(),
    );
    let found = scanner.scan_bytes("x", b"x\nBEGIN BLOCK\nwxyz\nEND\nBEGIN BLOCK\nabcd\nEND\n");
    let lines: Vec<u32> = found.iter().map(|f| f.location.line).collect();
    assert_eq!(lines, vec![3, 6]);
}
