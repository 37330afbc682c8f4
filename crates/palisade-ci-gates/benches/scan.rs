//! Secret-scan throughput on 50 MiB of generated source-like text (Rust,
//! Python, JavaScript, YAML and shell lines with identifiers, string
//! literals, URLs, hashes, UUIDs, comments — and the words `token`,
//! `secret`, `password`, `key` in the ordinary ways code uses them), split
//! into 32 KiB files, with a handful of planted secrets.
//!
//! - `engine/1-thread`: every file through `Scanner::scan_bytes` on one
//!   thread (the hot path alone: prefilter, regexes, findings).
//! - `scan_paths/parallel`: the same files on disk (page cache), scanned
//!   with the parallel walker on every core — what `palisade secrets scan`
//!   does.
//!
//! Before measuring, both check that exactly the planted secrets are found.
//!
//! `cargo bench -p palisade-ci-gates`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_ci_gates::{RuleSet, ScanOptions, Scanner};

const TOTAL: usize = 50 * 1024 * 1024;
const FILE: usize = 32 * 1024;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn num(&mut self, max: u64) -> u64 {
        self.next() % max
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.num(16) as usize]))
            .collect()
    }
}

const IDENTS: &[&str] = &[
    "request", "response", "handler", "config", "items", "user", "order", "invoice", "cache",
    "client", "server", "route", "policy", "record", "buffer", "stream", "session", "context",
    "builder", "registry", "payload", "header", "status", "result", "index", "count", "total",
    "price", "amount", "customer", "address", "timeout", "retries", "limit", "offset", "cursor",
];
const TYPES: &[&str] = &[
    "Request", "Response", "Config", "Order", "Invoice", "Session", "Context", "Registry",
    "Policy", "Decision", "Endpoint", "Route", "Record", "Error", "Duration", "Instant",
];
const WORDS: &[&str] = &[
    "the",
    "caller",
    "must",
    "retry",
    "after",
    "the",
    "limit",
    "resets",
    "and",
    "we",
    "keep",
    "order",
    "of",
    "events",
    "stable",
    "when",
    "the",
    "queue",
    "is",
    "full",
    "backpressure",
    "applies",
    "see",
    "docs",
    "for",
    "details",
    "this",
    "is",
    "not",
    "thread",
    "safe",
];
const HOSTS: &[&str] = &[
    "api.example.com",
    "billing.internal",
    "docs.rs",
    "github.com/org/repo",
    "localhost:8080",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn line(rng: &mut Rng) -> String {
    let a = rng.pick(IDENTS);
    let b = rng.pick(IDENTS);
    let t = rng.pick(TYPES);
    match rng.num(30) {
        0 => format!("    let {a} = {b}.get_{a}(&{b}, {})?;", rng.num(10_000)),
        1 => format!("    // {}", words(rng, 9)),
        2 => format!("fn {a}_{b}(&self, {a}: &{t}) -> Result<{t}, Error> {{"),
        3 => format!(
            "    if {a}.len() > {} {{ return Err(Error::{t}); }}",
            rng.num(512)
        ),
        4 => "    let token = lexer.next_token()?;".to_owned(),
        5 => format!(
            "    let url = format!(\"https://{}/api/v{}/{a}\");",
            rng.pick(HOSTS),
            rng.num(3)
        ),
        6 => format!(
            "    assert_eq!({a}.{b}, \"{}-{}\");",
            rng.pick(IDENTS),
            rng.pick(IDENTS)
        ),
        7 => format!("use crate::{a}::{{{t}, {}}};", rng.pick(TYPES)),
        8 => format!("def {a}_{b}(self, {a}, {b}=None):"),
        9 => "    if not verify_password(user, password):".to_owned(),
        10 => format!("    {a} = config.get(\"{b}\", {})", rng.num(100)),
        11 => format!("# TODO: {}", words(rng, 7)),
        12 => format!("  {a}: {b}-{}", rng.num(99)),
        13 => format!(
            "  image: registry.example.com/{a}:{}.{}.{}",
            rng.num(5),
            rng.num(20),
            rng.num(9)
        ),
        14 => format!("const {a} = await fetch(`/api/${{{b}}}/{a}`);"),
        15 => format!("export function {a}({b}) {{ return {b}.map((x) => x.{a}); }}"),
        16 => format!("    checksum = \"{}\"", rng.hex(64)),
        17 => format!("commit: {}", rng.hex(40)),
        18 => format!(
            "    id: \"{}-{}-4{}-a{}-{}\"",
            rng.hex(8),
            rng.hex(4),
            rng.hex(3),
            rng.hex(3),
            rng.hex(12)
        ),
        19 => "    secret_ref: {{ .Values.secretName }}".to_owned(),
        20 => format!("    headers.insert(\"x-api-key\", {a}.api_key.clone());"),
        21 => format!("    let {a}_secret = vault.read(\"kv/{b}\").await?;"),
        22 => format!("export RUST_LOG={a}=debug,{b}=info"),
        23 => format!(
            "    <a href=\"https://{}/{a}\">{}</a>",
            rng.pick(HOSTS),
            words(rng, 3)
        ),
        24 => format!("    {a}.push({t}::new({}, \"{b}\"));", rng.num(1000)),
        25 => format!("    match {a} {{ {t}::A => 1, {t}::B => 2, _ => 0 }}"),
        26 => format!("    password_min_length = {}", 8 + rng.num(8)),
        27 => format!("    log.info(\"{} {}\", {a}, {b})", words(rng, 4), "{}"),
        28 => "    }".to_owned(),
        _ => String::new(),
    }
}

/// The corpus as ~32 KiB files, and how many secrets were planted.
fn corpus() -> (Vec<Vec<u8>>, usize) {
    let cases = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/secrets/cases.toml"
    ))
    .unwrap();
    // The first positive of a few rules, taken from the fixtures so that
    // this file holds no secret.
    let planted: Vec<String> = [
        "aws-access-key-id",
        "github-pat",
        "slack-bot-token",
        "postgres-url-password",
    ]
    .iter()
    .map(|rule| {
        let start = cases.find(&format!("rule = \"{rule}\"")).unwrap();
        let rest = &cases[start..];
        let q = rest.find("positive = [\n    \"").unwrap() + "positive = [\n    \"".len();
        let end = rest[q..].find("\",\n").unwrap();
        rest[q..q + end].to_owned()
    })
    .collect();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut files = Vec::new();
    let mut total = 0;
    let mut n_planted = 0;
    while total < TOTAL {
        let mut f = String::with_capacity(FILE + 256);
        while f.len() < FILE {
            f.push_str(&line(&mut rng));
            f.push('\n');
        }
        if files.len() % 400 == 7 {
            f.push_str(&planted[n_planted % planted.len()]);
            f.push('\n');
            n_planted += 1;
        }
        total += f.len();
        files.push(f.into_bytes());
    }
    (files, n_planted)
}

fn bench(c: &mut Criterion) {
    let (files, planted) = corpus();
    let bytes: usize = files.iter().map(Vec::len).sum();
    let scanner = Scanner::new(RuleSet::builtin().unwrap(), ScanOptions::default());

    let found: usize = files
        .iter()
        .map(|f| scanner.scan_bytes("f.rs", f).len())
        .sum();
    assert_eq!(
        found, planted,
        "the corpus must yield exactly the planted secrets"
    );

    let mut group = c.benchmark_group("secrets");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("engine/1-thread", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in &files {
                n += scanner.scan_bytes("f.rs", black_box(f)).len();
            }
            assert_eq!(n, planted);
        })
    });

    let dir = tempfile::tempdir().unwrap();
    for (i, f) in files.iter().enumerate() {
        let sub = dir.path().join(format!("m{:02}", i % 64));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}.rs")), f).unwrap();
    }
    let report = scanner.scan_paths(&[dir.path()]).unwrap();
    assert_eq!(report.findings.len(), planted);
    assert_eq!(report.stats.bytes_scanned, bytes as u64);
    group.bench_function("scan_paths/parallel", |b| {
        b.iter(|| {
            let report = scanner.scan_paths(&[black_box(dir.path())]).unwrap();
            assert_eq!(report.findings.len(), planted);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
