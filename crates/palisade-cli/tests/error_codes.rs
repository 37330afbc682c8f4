//! Every stable error code used in the source is documented in docs/ERRORS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn codes_in(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            codes_in(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split('"').skip(1).step_by(2) {
                let parts: Vec<&str> = piece.split('.').collect();
                let is_code = parts.len() == 3
                    && parts[0] == "palisade"
                    && parts[1..].iter().all(|p| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    });
                if is_code {
                    found.push(piece.to_owned());
                }
            }
        }
    }
}

#[test]
fn every_error_code_in_the_source_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/ERRORS.md")).unwrap();
    let mut codes = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            codes_in(&src, &mut codes);
        }
    }
    codes.sort();
    codes.dedup();
    assert!(codes.len() >= 15, "the scan found too few codes: {codes:?}");
    let missing: Vec<_> = codes
        .iter()
        .filter(|c| !doc.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from docs/ERRORS.md: {missing:?}"
    );
}
