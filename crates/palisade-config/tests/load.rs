#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use palisade_config::{
    AuditSink, Config, InventorySettings, LimitBackend, RetiredRoute, StageMode,
};

const GOOD: &str = r#"
trust_domain = "palisade.test"

[audit]
sink = "jsonl"
path = "-"

[[service]]
name = "orders"
spiffe_id = "spiffe://palisade.test/ns/demo/sa/orders"
inbound = "127.0.0.1:7001"
upstream = "127.0.0.1:8001"
outbound = "127.0.0.1:9001"
owner = "team-orders"
"#;

#[test]
fn loads_a_valid_file_and_resolves_relative_paths() {
    let config = Config::parse(GOOD, Path::new("/etc/palisade/palisade.toml")).unwrap();
    assert_eq!(config.trust_domain, "palisade.test");
    assert_eq!(config.state_dir, Path::new("/etc/palisade/state"));
    assert_eq!(config.policy_dir, Path::new("/etc/palisade/policies"));
    assert_eq!(config.audit.sink, AuditSink::JsonLines { path: None });
    let orders = config.service("orders").unwrap();
    assert_eq!(
        orders.svid_dir,
        Path::new("/etc/palisade/state/svids/orders")
    );
    assert_eq!(orders.owner.as_deref(), Some("team-orders"));
}

#[test]
fn defaults_the_audit_sink_to_sqlite_in_the_state_dir() {
    let text = GOOD.replace("[audit]\nsink = \"jsonl\"\npath = \"-\"\n", "");
    let config = Config::parse(&text, Path::new("/srv/p.toml")).unwrap();
    assert_eq!(
        config.audit.sink,
        AuditSink::Sqlite {
            path: "/srv/state/audit.db".into()
        }
    );
}

#[test]
fn reports_unknown_fields_with_file_and_line() {
    let text = GOOD.replace("owner = ", "ownr = ");
    let err = Config::parse(&text, Path::new("p.toml")).unwrap_err();
    let shown = err.to_string();
    assert!(shown.starts_with("p.toml:14"), "{shown}");
    assert!(shown.contains("unknown field `ownr`"), "{shown}");
}

#[test]
fn reports_every_semantic_problem_with_its_field_and_line() {
    let text = format!(
        "{GOOD}\n[[service]]\nname = \"Orders\"\nspiffe_id = \"spiffe://other.test/ns/demo/sa/x\"\ninbound = \"127.0.0.1:7001\"\nupstream = \"127.0.0.1:8002\"\nopenapi = \"missing.yaml\"\n"
    );
    let err = Config::parse(&text, Path::new("p.toml")).unwrap_err();
    let fields: Vec<_> = err
        .issues
        .iter()
        .map(|i| (i.field.as_str(), i.line))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("service[1].name", Some(17)),
            ("service[1].spiffe_id", Some(18)),
            ("service[1].inbound", Some(19)),
            ("service[1].openapi", Some(21)),
        ],
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("outside the configured trust domain"));
}

#[test]
fn names_the_broken_spiffe_rule() {
    let text = GOOD.replace("sa/orders\"", "sa//orders\"");
    let err = Config::parse(&text, Path::new("p.toml")).unwrap_err();
    assert_eq!(err.issues[0].field, "service[0].spiffe_id");
    assert!(err.issues[0].message.contains("empty segment"), "{err}");
}

#[test]
fn rejects_a_bad_socket_address_with_its_line() {
    let text = GOOD.replace("127.0.0.1:8001", "localhost");
    let err = Config::parse(&text, Path::new("p.toml")).unwrap_err();
    assert_eq!(err.issues[0].line, Some(12), "{err}");
}

#[test]
fn reads_guard_settings_with_defaults() {
    let text = format!(
        "{GOOD}\n[service.limits]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\non_redis_unavailable = \"deny\"\ndefault = {{ requests = 100, per = \"1m\", burst = 20 }}\n\n[[service.limits.override]]\ncaller = \"spiffe://palisade.test/ns/demo/sa/billing\"\nroute = \"/payments\"\nrequests = 5\nper = \"1s\"\n\n[service.inspection]\nmode = \"report\"\nheaders = [\"X-Search\"]\n"
    );
    let config = Config::parse(&text, Path::new("p.toml")).unwrap();
    let orders = config.service("orders").unwrap();
    let limits = orders.limits.as_ref().unwrap();
    assert_eq!(limits.mode, StageMode::Enforce);
    assert_eq!(
        limits.backend,
        LimitBackend::Redis {
            url: "redis://127.0.0.1:6379".into(),
            fail_closed: true,
            key_prefix: "palisade:rl".into(),
        }
    );
    assert_eq!(
        limits.default.unwrap().per,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(limits.overrides[0].route.as_deref(), Some("/payments"));
    // Without a burst, the whole period's quota may come at once.
    assert_eq!(limits.overrides[0].rate.burst, 5);
    assert_eq!(orders.inspection.mode, StageMode::Report);
    assert_eq!(orders.inspection.headers, vec!["x-search"]);
    assert_eq!(orders.validation.max_body_bytes, 1024 * 1024);
    assert!(orders.validation.strict);
}

#[test]
fn rejects_bad_guard_settings_naming_each_field() {
    let text = format!(
        "{GOOD}\n[service.limits]\nbackend = \"redis\"\ndefault = {{ requests = 0, per = \"1m\" }}\n\n[[service.limits.override]]\ncaller = \"orders\"\nrequests = 1\nper = \"soon\"\n\n[service.validation]\nstrict = false\n"
    );
    let err = Config::parse(&text, Path::new("p.toml")).unwrap_err();
    let fields: Vec<_> = err.issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "service[0].limits.redis_url",
            "service[0].limits.default",
            "service[0].limits.override[0].caller",
            "service[0].limits.override[0]",
            "service[0].validation",
        ],
        "{err}"
    );
}

#[test]
fn inventory_observation_is_on_by_default() {
    let config = Config::parse(GOOD, Path::new("p.toml")).unwrap();
    let inventory = &config.service("orders").unwrap().inventory;
    assert_eq!(*inventory, InventorySettings::default());
    assert!(inventory.observe);
    assert_eq!(inventory.sample_rate, 1.0);
    assert_eq!(inventory.max_body_bytes, 65536);
    assert!(inventory.retired.is_empty());
}

#[test]
fn reads_inventory_settings_and_retired_routes() {
    let text = format!(
        "{GOOD}\n[service.inventory]\nobserve = false\nsample_rate = 0.25\nmax_body_bytes = 4096\nretired = [\"GET /v1/orders\", \"DELETE /legacy/{{id}}\"]\n"
    );
    let config = Config::parse(&text, Path::new("p.toml")).unwrap();
    let inventory = &config.service("orders").unwrap().inventory;
    assert!(!inventory.observe);
    assert_eq!(inventory.sample_rate, 0.25);
    assert_eq!(inventory.max_body_bytes, 4096);
    assert_eq!(
        inventory.retired,
        vec![
            RetiredRoute {
                method: "GET".into(),
                route: "/v1/orders".into()
            },
            RetiredRoute {
                method: "DELETE".into(),
                route: "/legacy/{id}".into()
            },
        ]
    );
    assert_eq!(inventory.retired[1].to_string(), "DELETE /legacy/{id}");
    // An integer rate is a rate too.
    let whole = format!("{GOOD}\n[service.inventory]\nsample_rate = 1\n");
    let config = Config::parse(&whole, Path::new("p.toml")).unwrap();
    assert_eq!(config.services[0].inventory.sample_rate, 1.0);
}

#[test]
fn rejects_bad_inventory_settings_naming_each_field_and_line() {
    let text = format!(
        "{GOOD}\n[service.inventory]\nsample_rate = 1.5\nmax_body_bytes = 0\nretired = [\n  \"GET /v1/orders\",\n  \"get /v1/orders\",\n  \"GET /v1/orders\",\n  \"DELETE legacy/{{id}}\",\n]\n"
    );
    let err = Config::parse(&text, Path::new("p.toml")).unwrap_err();
    let base = GOOD.lines().count();
    let found: Vec<_> = err
        .issues
        .iter()
        .map(|i| (i.line.unwrap() - base, i.field.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (3, "service[0].inventory.sample_rate"),
            (4, "service[0].inventory.max_body_bytes"),
            (7, "service[0].inventory.retired[1]"),
            (8, "service[0].inventory.retired[2]"),
            (9, "service[0].inventory.retired[3]"),
        ],
        "{err}"
    );
    let shown = err.to_string();
    assert!(shown.contains("1.5 is not between 0.0 and 1.0"), "{shown}");
    assert!(shown.contains("upper-case HTTP method"), "{shown}");
    assert!(
        shown.contains("\"GET /v1/orders\" is already listed as retired[0]"),
        "{shown}"
    );
    assert!(shown.contains("must start with '/'"), "{shown}");
    let nan = format!("{GOOD}\n[service.inventory]\nsample_rate = nan\n");
    let err = Config::parse(&nan, Path::new("p.toml")).unwrap_err();
    assert_eq!(err.issues[0].field, "service[0].inventory.sample_rate");
    let unknown = format!("{GOOD}\n[service.inventory]\nsampling = 0.5\n");
    assert!(Config::parse(&unknown, Path::new("p.toml")).is_err());
}
