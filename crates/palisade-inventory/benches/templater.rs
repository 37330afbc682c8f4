//! `PathTemplater`: observing 100 000 request paths of a realistic API (ids,
//! UUIDs, SKUs, dates, hashes, free-form names), folding them into
//! templates, and matching paths against the result.
//!
//! `cargo bench -p palisade-inventory --bench templater`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use palisade_inventory::PathTemplater;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[(self.next() % 16) as usize]))
            .collect()
    }
}

/// `n` paths over 12 routes, values drawn fresh for every request.
fn traffic(n: usize) -> Vec<(&'static str, String)> {
    const NAMES: &[&str] = &[
        "ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "bri", "clo", "dra", "fle",
    ];
    let mut rng = Lcg(7);
    (0..n)
        .map(|_| {
            let id = rng.next() % 1_000_000;
            let uuid = {
                let h = rng.hex(32);
                format!(
                    "{}-{}-4{}-a{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[13..16],
                    &h[17..20],
                    &h[20..]
                )
            };
            let name = format!(
                "{}{}{}",
                NAMES[(rng.next() % 12) as usize],
                NAMES[(rng.next() % 12) as usize],
                NAMES[(rng.next() % 12) as usize]
            );
            match rng.next() % 12 {
                0 => ("GET", format!("/users/{id}")),
                1 => ("GET", "/users/me".to_owned()),
                2 => ("GET", format!("/users/{id}/orders/{uuid}")),
                3 => ("POST", format!("/users/{id}/orders")),
                4 => ("GET", format!("/products/AB-{:04}", id % 10_000)),
                5 => (
                    "GET",
                    format!("/reports/2024-{:02}-{:02}", 1 + id % 12, 1 + id % 28),
                ),
                6 => ("GET", format!("/files/{}", rng.hex(64))),
                7 => ("GET", format!("/repos/{name}/{name}-app/issues/{id}")),
                8 => ("GET", format!("/v1/payments/{uuid}/refunds/{uuid}")),
                9 => ("GET", "/health".to_owned()),
                10 => ("GET", format!("/users/{id}/orders/{uuid}?expand=items")),
                _ => ("DELETE", format!("/users/{id}")),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let paths = traffic(100_000);
    let mut learned = PathTemplater::new();
    for (method, path) in &paths {
        learned.observe(Some(method), path).unwrap();
    }
    let templates = learned.templates();
    // 12 request kinds, 10 templates: `DELETE /users/{id}` shares its path
    // with `GET`, and a query string does not make a route.
    assert_eq!(
        templates.len(),
        10,
        "the bench traffic folds into 10 routes"
    );

    let mut group = c.benchmark_group("templater");
    group.throughput(Throughput::Elements(paths.len() as u64));
    group.sample_size(10);
    group.bench_function("observe_100k", |b| {
        b.iter_batched(
            PathTemplater::new,
            |mut templater| {
                for (method, path) in &paths {
                    templater.observe(Some(method), path).unwrap();
                }
                templater
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("templater");
    group.bench_function("templates_fold", |b| {
        b.iter(|| black_box(learned.templates()))
    });
    let sample: Vec<&str> = paths.iter().take(1_000).map(|(_, p)| p.as_str()).collect();
    group.throughput(Throughput::Elements(sample.len() as u64));
    group.bench_function("match_1k", |b| {
        b.iter(|| {
            for path in &sample {
                black_box(templates.match_template(black_box(path)).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
