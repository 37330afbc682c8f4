use super::*;

#[test]
fn builtin_rules_compile_and_are_many() {
    let set = RuleSet::builtin().expect("built-in rules compile");
    assert!(set.len() >= 60, "only {} rules", set.len());
    let mut ids: Vec<&str> = set.rules().iter().map(Rule::id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "duplicate ids");
}
