//! The risk score of an endpoint: a sum of points for what makes a call
//! there worth a look, capped at 100, each contribution kept as a reason.
//! The formula is in the [crate documentation](crate#risk-score).

use std::str::FromStr;

use crate::snapshot::{EndpointSnapshot, Flag, Risk, RiskLevel, RiskReason};
use crate::{Category, DataClass};

/// Points for an endpoint whose calls carried secrets (`jwt`, `secret`).
pub const SECRET_POINTS: u32 = 30;
/// Points for payment card data.
pub const PCI_POINTS: u32 = 25;
/// Points for personal data.
pub const PII_POINTS: u32 = 15;
/// Points for network addresses.
pub const NETWORK_POINTS: u32 = 5;
/// Points for a method that changes state (not GET, HEAD, OPTIONS, TRACE).
pub const WRITE_POINTS: u32 = 10;
/// Points for a shadow endpoint.
pub const SHADOW_POINTS: u32 = 20;
/// Points for a zombie endpoint.
pub const ZOMBIE_POINTS: u32 = 15;
/// Extra points for a zombie that still answers 2xx.
pub const ZOMBIE_2XX_POINTS: u32 = 10;

/// Points for `callers` distinct callers: the blast radius of a change or
/// a compromise grows with them.
pub fn caller_points(callers: usize) -> u32 {
    match callers {
        0 | 1 => 0,
        2..=4 => 5,
        5..=9 => 10,
        _ => 15,
    }
}

/// Points for `denied` of `calls` refused: refusals are probing,
/// misconfiguration or a caller that lost access.
pub fn denied_points(denied: u64, calls: u64) -> u32 {
    if calls == 0 {
        return 0;
    }
    // Compare as integers: denied / calls >= 1/2, >= 1/10.
    if denied * 2 >= calls {
        20
    } else if denied * 10 >= calls {
        10
    } else {
        0
    }
}

/// Whether `method` changes state (RFC 9110 §9.2.1: not a safe method).
pub fn is_write(method: &str) -> bool {
    !["GET", "HEAD", "OPTIONS", "TRACE"]
        .iter()
        .any(|safe| method.eq_ignore_ascii_case(safe))
}

/// Scores `endpoint` from its data classes, method, callers, flags and
/// refusals (its own `risk` is ignored).
pub fn assess(endpoint: &EndpointSnapshot) -> Risk {
    let mut reasons = Vec::new();
    let mut add = |points: u32, reason: String| {
        if points > 0 {
            reasons.push(RiskReason { points, reason });
        }
    };

    let classes: Vec<DataClass> = endpoint
        .data_classes
        .iter()
        .filter_map(|name| DataClass::from_str(name).ok())
        .collect();
    let named = |category: Category| {
        classes
            .iter()
            .filter(|class| class.category() == category)
            .map(|class| class.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (category, points, what) in [
        (Category::Secret, SECRET_POINTS, "secrets"),
        (Category::Pci, PCI_POINTS, "payment card data"),
        (Category::Pii, PII_POINTS, "personal data"),
        (Category::Network, NETWORK_POINTS, "network addresses"),
    ] {
        let names = named(category);
        if !names.is_empty() {
            add(points, format!("carries {what} ({names})"));
        }
    }
    if is_write(&endpoint.method) {
        add(WRITE_POINTS, format!("changes state ({})", endpoint.method));
    }
    let callers = endpoint.callers.len();
    add(
        caller_points(callers),
        format!("{callers} distinct callers"),
    );
    if endpoint.has(Flag::Shadow) {
        add(
            SHADOW_POINTS,
            "shadow: called but not in the spec".to_owned(),
        );
    }
    if let Some(zombie) = &endpoint.zombie {
        let why = match (zombie.deprecated, zombie.retired) {
            (true, true) => "deprecated in the spec and retired in the configuration",
            (true, false) => "deprecated in the spec",
            _ => "retired in the configuration",
        };
        add(ZOMBIE_POINTS, format!("zombie: {why} but still called"));
        if zombie.answered_2xx > 0 {
            add(
                ZOMBIE_2XX_POINTS,
                format!(
                    "zombie still answers 2xx ({} call{})",
                    zombie.answered_2xx,
                    if zombie.answered_2xx == 1 { "" } else { "s" }
                ),
            );
        }
    }
    let denied = denied_points(endpoint.denied, endpoint.calls);
    if denied > 0 {
        let percent = endpoint.denied * 100 / endpoint.calls.max(1);
        add(
            denied,
            format!(
                "{percent}% of calls denied ({} of {})",
                endpoint.denied, endpoint.calls
            ),
        );
    }

    // Largest first; ties keep the formula's order (the sort is stable).
    reasons.sort_by_key(|r| std::cmp::Reverse(r.points));
    let score = reasons.iter().map(|r| r.points).sum::<u32>().min(100);
    Risk {
        score,
        level: RiskLevel::of(score),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_and_denied_bands() {
        assert_eq!(
            [0, 1, 2, 4, 5, 9, 10, 500].map(caller_points),
            [0, 0, 5, 5, 10, 10, 15, 15]
        );
        assert_eq!(denied_points(0, 0), 0);
        assert_eq!(denied_points(9, 100), 0);
        assert_eq!(denied_points(10, 100), 10);
        assert_eq!(denied_points(49, 100), 10);
        assert_eq!(denied_points(50, 100), 20);
        assert_eq!(denied_points(3, 3), 20);
    }

    #[test]
    fn safe_methods_are_reads() {
        for read in ["GET", "HEAD", "OPTIONS", "TRACE", "get"] {
            assert!(!is_write(read), "{read}");
        }
        for write in ["POST", "PUT", "PATCH", "DELETE", "PROPPATCH"] {
            assert!(is_write(write), "{write}");
        }
    }

    #[test]
    fn levels_split_the_score_in_quarters() {
        assert_eq!(RiskLevel::of(0), RiskLevel::Low);
        assert_eq!(RiskLevel::of(24), RiskLevel::Low);
        assert_eq!(RiskLevel::of(25), RiskLevel::Medium);
        assert_eq!(RiskLevel::of(50), RiskLevel::High);
        assert_eq!(RiskLevel::of(75), RiskLevel::Critical);
        assert_eq!(RiskLevel::of(100), RiskLevel::Critical);
    }
}
