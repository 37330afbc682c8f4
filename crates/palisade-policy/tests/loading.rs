//! Loading policy directories: every problem with its file and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use palisade_policy::{PolicyLoadError, PolicySchema, PolicySet, ProblemKind};

fn load(dir: &std::path::Path) -> Result<PolicySet, PolicyLoadError> {
    let schema = PolicySchema::generate(&services()).unwrap();
    PolicySet::load_dir(dir, &schema)
}

fn file_name(problem: &palisade_policy::PolicyProblem) -> String {
    problem
        .file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn files_load_in_name_order_and_other_files_and_subdirectories_are_ignored() {
    let dir = policy_dir(&[
        ("b.cedar", "permit (principal, action, resource);"),
        ("a.cedar", "forbid (principal, action, resource);"),
        ("notes.md", "permit (principal"),
    ]);
    std::fs::create_dir(dir.path().join("sub.cedar")).unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    write(&dir.path().join("nested"), "c.cedar", "this is not cedar");
    let set = load(dir.path()).unwrap();
    assert_eq!(set.policy_ids(), vec!["a.0".to_owned(), "b.0".to_owned()]);
    assert_eq!(set.len(), 2);
    assert_eq!(set.files().len(), 2);
}

#[test]
fn missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("policies");
    let error = load(&missing).unwrap_err();
    assert_eq!(error.problems.len(), 1);
    assert_eq!(error.problems[0].kind, ProblemKind::Io);
    assert_eq!(error.problems[0].file, missing);
}

#[test]
fn policy_that_does_not_parse_is_rejected_with_file_and_line() {
    let dir = policy_dir(&[(
        "broken.cedar",
        "// fine so far\npermit (principal, action, resource);\n\npermit (principal action, resource);\n",
    )]);
    let error = load(dir.path()).unwrap_err();
    let problem = &error.problems[0];
    assert_eq!(problem.kind, ProblemKind::Parse);
    assert_eq!(file_name(problem), "broken.cedar");
    assert_eq!(problem.line, Some(4), "{error}");
    let shown = error.to_string();
    assert!(shown.contains("broken.cedar:4: parse error"), "{shown}");
}

#[test]
fn all_problems_across_files_are_reported_not_just_the_first() {
    let dir = policy_dir(&[
        ("a.cedar", "permit (principal, action, resource)\n"),
        (
            "b.cedar",
            "permit (principal, action, resource);\npermit (principal, action, resource) when { resource.nope == 1 };\n",
        ),
        (
            "c.cedar",
            "permit (principal, action, resource == Palisade::Endpoint::\"billing:/nope\");\n",
        ),
    ]);
    let error = load(dir.path()).unwrap_err();
    let found: Vec<(String, ProblemKind, Option<usize>)> = error
        .problems
        .iter()
        .map(|p| (file_name(p), p.kind, p.line))
        .collect();
    assert_eq!(
        found,
        vec![
            ("a.cedar".to_owned(), ProblemKind::Parse, Some(1)),
            ("b.cedar".to_owned(), ProblemKind::Validation, Some(2)),
            ("c.cedar".to_owned(), ProblemKind::UnknownEndpoint, Some(1)),
        ],
        "{error}"
    );
}

#[test]
fn unknown_attribute_is_rejected_by_schema_validation() {
    let dir = policy_dir(&[(
        "attrs.cedar",
        r#"
@id("resource-attr")
permit (principal, action, resource)
when { resource.nope == 1 };

@id("principal-attr")
permit (principal, action, resource)
when { principal.bogus == "x" };
"#,
    )]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    let mut lines: Vec<Option<usize>> = error.problems.iter().map(|p| p.line).collect();
    lines.sort();
    assert_eq!(lines, vec![Some(4), Some(8)], "{error}");
    for problem in &error.problems {
        assert_eq!(problem.kind, ProblemKind::Validation);
    }
    assert!(error.to_string().contains("principal-attr"), "{error}");
}

#[test]
fn optional_attribute_without_has_guard_is_rejected_by_strict_validation() {
    let dir = policy_dir(&[(
        "owner.cedar",
        "permit (principal, action, resource)\nwhen { principal.owner == \"team-a\" };\n",
    )]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::Validation);
    assert_eq!(error.problems[0].line, Some(2), "{error}");
}

#[test]
fn unknown_entity_type_and_action_are_rejected() {
    let dir = policy_dir(&[(
        "types.cedar",
        "permit (principal == User::\"alice\", action, resource);\npermit (principal, action == Palisade::Action::\"TRACE\", resource);\n",
    )]);
    let error = load(dir.path()).unwrap_err();
    let lines: Vec<Option<usize>> = error.problems.iter().map(|p| p.line).collect();
    assert!(
        lines.contains(&Some(1)) && lines.contains(&Some(2)),
        "{error}"
    );
    assert!(error
        .problems
        .iter()
        .all(|p| p.kind == ProblemKind::Validation));
}

#[test]
fn unknown_route_of_service_with_spec_is_rejected_with_file_and_line() {
    let dir = policy_dir(&[(
        "billing.cedar",
        r#"
permit (
  principal,
  action == Palisade::Action::"GET",
  resource == Palisade::Endpoint::"billing:/invoice/{id}"
);
"#,
    )]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems.len(), 1, "{error}");
    let problem = &error.problems[0];
    assert_eq!(problem.kind, ProblemKind::UnknownEndpoint);
    assert_eq!(file_name(problem), "billing.cedar");
    assert_eq!(problem.line, Some(5));
    assert!(
        problem.message.contains("/invoices/{id}"),
        "lists the real routes: {error}"
    );
}

#[test]
fn endpoint_of_unconfigured_service_is_rejected() {
    let dir = policy_dir(&[(
        "shipping.cedar",
        "permit (principal, action, resource)\nwhen { resource == Palisade::Endpoint::\"shipping:/parcels\" };\n",
    )]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::UnknownEndpoint);
    assert_eq!(error.problems[0].line, Some(2));
    assert!(error.problems[0]
        .message
        .contains("not a configured service"));
}

#[test]
fn any_path_of_service_without_spec_is_accepted() {
    let dir = policy_dir(&[(
        "legacy.cedar",
        "permit (principal, action, resource)\nwhen { resource in [Palisade::Endpoint::\"legacy:/anything/at/all\", Palisade::Endpoint::\"legacy:/x\"] };\n",
    )]);
    assert_eq!(load(dir.path()).unwrap().len(), 1);
}

#[test]
fn duplicate_id_annotation_is_rejected_naming_both_files() {
    let dir = policy_dir(&[
        ("a.cedar", "@id(\"shared\")\npermit (principal, action, resource);\n"),
        (
            "b.cedar",
            "forbid (principal, action, resource);\n\n@id(\"shared\")\nforbid (principal, action, resource);\n",
        ),
    ]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems.len(), 1, "{error}");
    let problem = &error.problems[0];
    assert_eq!(problem.kind, ProblemKind::DuplicateId);
    assert_eq!(file_name(problem), "b.cedar");
    assert_eq!(problem.line, Some(3));
    assert!(problem.message.contains("a.cedar:1"), "{error}");
}

#[test]
fn id_annotation_colliding_with_generated_id_is_rejected() {
    let dir = policy_dir(&[
        ("a.cedar", "permit (principal, action, resource);\n"),
        (
            "b.cedar",
            "@id(\"a.0\")\npermit (principal, action, resource);\n",
        ),
    ]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::DuplicateId);
}

#[test]
fn templates_are_rejected() {
    let dir = policy_dir(&[(
        "tpl.cedar",
        "permit (principal, action, resource);\npermit (principal == ?principal, action, resource);\n",
    )]);
    let error = load(dir.path()).unwrap_err();
    assert_eq!(error.problems[0].kind, ProblemKind::Parse);
    assert_eq!(error.problems[0].line, Some(2));
    assert!(error.problems[0].message.contains("templates"));
}

#[test]
fn schema_text_lists_services_and_endpoint_ids() {
    let schema = PolicySchema::generate(&services()).unwrap();
    let text = schema.schema_text();
    assert!(text.contains("namespace Palisade"));
    assert!(text.contains("entity Endpoint in [Service]"));
    assert!(text.contains("Palisade::Endpoint::\"billing:/invoices/{id}\""));
    assert!(text.contains(ORDERS));
}

#[test]
fn duplicate_service_configuration_is_rejected() {
    let mut doubled = services();
    doubled.push(doubled[0].clone());
    assert!(PolicySchema::generate(&doubled).is_err());
    let mut same_id = services();
    same_id[1].spiffe_id = ORDERS.to_owned();
    assert!(PolicySchema::generate(&same_id).is_err());
}

#[test]
fn readme_example_policies_load_and_decide_as_documented() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme
        .split("```cedar\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 4);
    let dir = policy_dir(&[]);
    for (index, block) in blocks.iter().enumerate() {
        write(dir.path(), &format!("example{index}.cedar"), block);
    }
    let engine = loaded_engine(dir.path());
    assert_eq!(engine.current().unwrap().len(), 4);

    let read = decide(&engine, ORDERS, "HEAD", "billing", "/invoices/{id}");
    assert_eq!(read.policies, vec!["orders-read-invoice".to_owned()]);
    let write_ = decide(&engine, ORDERS, "POST", "billing", "/invoices");
    assert_eq!(write_.policies, vec!["team-a-writes-billing".to_owned()]);
    let report = palisade_policy::AuthzRequest {
        path: "/reports/2024/q1",
        ..request(STRANGER, "GET", "legacy", "/reports/2024/q1")
    };
    assert!(engine.authorize(&report).allowed);
    let delete = decide(&engine, STRANGER, "DELETE", "legacy", "/reports/2024/q1");
    assert_eq!(delete.policies, vec!["no-foreign-deletes".to_owned()]);
    assert!(!delete.allowed);
}
