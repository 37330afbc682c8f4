//! The labelled corpus (`testdata/classify/corpus.jsonl`, written by
//! `make_corpus.py` next to it): every class must be found with no false
//! positive at all (precision 1.0), recall must stay at or above a floor per
//! class, and the corpus must keep at least 25 positives and 25 hard
//! negatives per class.
//!
//! Entries with a `parent` are classified inside `{parent: {field: value}}`
//! by `classify_json`; the others by `classify_value`, and cross-checked
//! against `classify_json` of `{field: value}`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use palisade_inventory::{classify_json, classify_str, classify_value, DataClass, DataClasses};
use serde_json::{json, Value};

/// Below these, the test fails: a floor, not the current value (which the
/// failure table and `--nocapture` print).
const RECALL_FLOOR: f64 = 0.9;
const MIN_POSITIVES: usize = 25;
const MIN_HARD_NEGATIVES: usize = 25;

struct Entry {
    line: usize,
    field: Option<String>,
    parent: Option<String>,
    value: Value,
    expect: DataClasses,
    against: Option<DataClass>,
}

fn corpus() -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/classify/corpus.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            let name = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            Entry {
                line: i + 1,
                field: name("field"),
                parent: name("parent"),
                value: v["value"].clone(),
                expect: serde_json::from_value(v["expect"].clone())
                    .unwrap_or_else(|e| panic!("line {}: expect: {e}", i + 1)),
                against: name("against")
                    .map(|c| c.parse().unwrap_or_else(|e| panic!("line {}: {e}", i + 1))),
            }
        })
        .collect()
}

fn classify(entry: &Entry) -> DataClasses {
    let field = entry.field.as_deref();
    match (&entry.parent, field) {
        (Some(parent), Some(field)) => {
            let doc = json!({ parent: { field: entry.value.clone() } });
            let pointer = format!("/{parent}/{field}");
            classify_json(&doc).get(&pointer).unwrap().classes()
        }
        _ => {
            let direct = classify_value(field, &entry.value);
            if let Some(field) = field {
                let doc = json!({ field: entry.value.clone() });
                let walked = classify_json(&doc).classes();
                assert_eq!(
                    walked, direct,
                    "line {}: classify_json disagrees",
                    entry.line
                );
            }
            if let Value::String(s) = &entry.value {
                assert_eq!(
                    classify_str(field, s),
                    direct,
                    "line {}: classify_str disagrees",
                    entry.line
                );
            }
            direct
        }
    }
}

#[derive(Default)]
struct Tally {
    positives: usize,
    hard_negatives: usize,
    true_positives: usize,
    false_positives: usize,
    false_negatives: usize,
}

#[test]
fn corpus_precision_is_one_and_recall_meets_the_floor() {
    let entries = corpus();
    let mut tally: BTreeMap<DataClass, Tally> = DataClass::ALL
        .into_iter()
        .map(|c| (c, Tally::default()))
        .collect();
    let mut mistakes = String::new();
    for entry in &entries {
        let got = classify(entry);
        for class in DataClass::ALL {
            let t = tally.get_mut(&class).unwrap();
            let (expected, found) = (entry.expect.contains(class), got.contains(class));
            t.positives += usize::from(expected);
            t.true_positives += usize::from(expected && found);
            t.false_negatives += usize::from(expected && !found);
            t.false_positives += usize::from(!expected && found);
        }
        if let Some(class) = entry.against {
            tally.get_mut(&class).unwrap().hard_negatives += 1;
        }
        if got != entry.expect {
            writeln!(
                mistakes,
                "  line {}: field {:?} parent {:?} value {}: expected [{}], got [{}]",
                entry.line, entry.field, entry.parent, entry.value, entry.expect, got
            )
            .unwrap();
        }
    }

    let mut table =
        String::from("class          positives  hard-neg  TP   FN   FP   precision  recall\n");
    let mut failed = false;
    for (class, t) in &tally {
        let predicted = t.true_positives + t.false_positives;
        let precision = if predicted == 0 {
            1.0
        } else {
            t.true_positives as f64 / predicted as f64
        };
        let recall = if t.positives == 0 {
            1.0
        } else {
            t.true_positives as f64 / t.positives as f64
        };
        let bad = t.false_positives > 0
            || recall < RECALL_FLOOR
            || t.positives < MIN_POSITIVES
            || t.hard_negatives < MIN_HARD_NEGATIVES;
        failed |= bad;
        writeln!(
            table,
            "{:<14} {:>9}  {:>8}  {:>3}  {:>3}  {:>3}  {:>9.3}  {:>6.3}{}",
            class.as_str(),
            t.positives,
            t.hard_negatives,
            t.true_positives,
            t.false_negatives,
            t.false_positives,
            precision,
            recall,
            if bad { "  <-- FAILS" } else { "" }
        )
        .unwrap();
    }
    println!("{} entries\n{table}", entries.len());
    assert!(
        !failed,
        "\n{table}\nprecision must be 1.0, recall >= {RECALL_FLOOR}, and every class needs \
         {MIN_POSITIVES} positives and {MIN_HARD_NEGATIVES} hard negatives.\nMisclassified:\n{mistakes}"
    );
    if !mistakes.is_empty() {
        println!("known misses (within the recall floor):\n{mistakes}");
    }
}

/// Knuth's MMIX LCG, for deterministic test data.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Thousands of machine-made values that resemble sensitive data (ids,
/// hashes, timestamps, versions, amounts, dates in ordinary fields), in the
/// fields they usually come in: none may be classified.
#[test]
fn generated_look_alikes_carry_no_class() {
    const HEX: &[u8] = b"0123456789abcdef";
    const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const DIGITS: &[u8] = b"0123456789";
    let mut rng = Lcg(42);
    let mut false_positives = Vec::new();
    let mut checked = 0;
    for _ in 0..4_000 {
        let mut values: Vec<(Option<&str>, Value)> = Vec::new();
        let h = rng.chars(HEX, 32);
        let uuid = format!(
            "{}-{}-4{}-8{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..]
        );
        values.push((
            Some(rng.pick(&["id", "request_id", "trace_id", "uuid"])),
            json!(uuid),
        ));
        values.push((None, json!(uuid)));
        let len = [16, 24, 32, 40, 64][rng.below(5) as usize];
        let mut hex = rng.chars(HEX, len);
        if rng.below(2) == 0 {
            hex = hex.to_uppercase();
        }
        values.push((
            Some(rng.pick(&["span_id", "etag", "sha", "object_id", "checksum"])),
            json!(hex),
        ));
        values.push((None, json!(hex)));
        let seconds = 1_000_000_000 + rng.below(1_000_000_000);
        let epoch = [
            seconds,
            seconds * 1_000,
            seconds * 1_000_000,
            seconds * 1_000_000_000,
        ][rng.below(4) as usize];
        values.push((
            Some(rng.pick(&["ts", "created", "timestamp", "expires"])),
            json!(epoch),
        ));
        values.push((
            Some(rng.pick(&["ts", "created", "timestamp"])),
            json!(epoch.to_string()),
        ));
        values.push((None, json!(epoch)));
        let digits = 1 + rng.below(19) as usize;
        let number: u64 = rng.chars(DIGITS, digits).parse().unwrap();
        values.push((None, json!(number)));
        values.push((
            Some(rng.pick(&["id", "count", "amount", "order_id", "user_id", "size"])),
            json!(number),
        ));
        let digits = 6 + rng.below(14) as usize;
        values.push((
            Some(rng.pick(&[
                "order_id",
                "invoice_number",
                "tracking_number",
                "transaction_id",
                "customer_id",
            ])),
            json!(rng.chars(DIGITS, digits)),
        ));
        let (a, b, c, d) = (
            rng.below(20),
            rng.below(30),
            rng.below(100),
            rng.below(10_000),
        );
        let version = match rng.below(4) {
            0 => format!("v{a}.{b}.{c}"),
            1 => format!("{a}.{b}.{c}"),
            2 => format!("{a}.{b}.{c}-beta.{d}"),
            _ => format!("{a}.{b}.{c}.{d}"),
        };
        values.push((
            Some(rng.pick(&["version", "app_version", "sdk_version", "build"])),
            json!(version),
        ));
        let date = format!(
            "20{:02}-{:02}-{:02}",
            rng.below(30),
            1 + rng.below(12),
            1 + rng.below(28)
        );
        let when = if rng.below(2) == 0 {
            date
        } else {
            format!("{date}T{:02}:{:02}:00Z", rng.below(24), rng.below(60))
        };
        values.push((
            Some(rng.pick(&["created_at", "updated_at", "date", "expires_at"])),
            json!(when),
        ));
        values.push((None, json!(when)));
        let amount = format!(
            "{}{}.{:02}",
            ["", "-", "+"][rng.below(3) as usize],
            rng.below(100_000),
            rng.below(100)
        );
        values.push((Some(rng.pick(&["amount", "price", "total"])), json!(amount)));
        values.push((None, json!(amount)));
        let id_len = 8 + rng.below(25) as usize;
        let opaque = rng.chars(BASE62, id_len);
        values.push((
            Some(rng.pick(&["id", "request_id", "cursor", "next_page_token", "etag"])),
            json!(opaque),
        ));
        values.push((None, json!(opaque)));
        for (field, value) in values {
            checked += 1;
            let classes = classify_value(field, &value);
            if !classes.is_empty() {
                false_positives.push(format!("{field:?} {value} -> {classes}"));
            }
        }
    }
    assert!(
        false_positives.is_empty(),
        "{} of {checked} look-alikes classified:\n{}",
        false_positives.len(),
        false_positives.join("\n")
    );
}
