//! The cost the limiter adds to every request: one local `check` of a caller whose bucket
//! already exists, admitted (the budget is far larger than the benchmark can spend).
// Setup failures abort the benchmark, as in tests.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_ratelimit::{Backend, LimitOutcome, LimitRules, Rate, RateLimiter};

const CALLER: &str = "spiffe://example.org/ns/prod/sa/orders";
const ROUTE: &str = "/invoices/{id}";

fn local_check_admitted(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rules = LimitRules {
        // The highest supported rate with the largest burst: never limited while measured.
        default: Some(Rate {
            requests: 1_000_000,
            per: Duration::from_secs(1),
            burst: u32::MAX,
        }),
        ..LimitRules::default()
    };
    let limiter = runtime
        .block_on(RateLimiter::new("billing", rules, Backend::Local))
        .expect("valid rules");
    let warm = runtime.block_on(limiter.check(CALLER, ROUTE));
    assert_eq!(warm.outcome, LimitOutcome::Admitted);

    c.bench_function("local_check_admitted_warm_key", |b| {
        b.iter(|| runtime.block_on(limiter.check(black_box(CALLER), black_box(ROUTE))));
    });

    let metrics = limiter.metrics();
    assert_eq!(metrics.limited, 0, "the benchmark measured limited checks");
}

criterion_group!(benches, local_check_admitted);
criterion_main!(benches);
