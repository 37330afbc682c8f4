//! The Cedar schema Palisade policies are validated against, and the
//! configured services it is generated from.

use std::collections::HashMap;
use std::fmt::Write as _;

use cedar_policy as cedar;

use crate::error::PolicyError;

/// The HTTP methods that are Cedar actions (`Palisade::Action::"GET"` ...).
pub const ACTIONS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The Cedar namespace of every Palisade entity type and action.
pub const NAMESPACE: &str = "Palisade";

/// The entity type of callers and called services.
pub const SERVICE_TYPE: &str = "Palisade::Service";

/// The entity type of resources: one endpoint of one service.
pub const ENDPOINT_TYPE: &str = "Palisade::Endpoint";

/// The entity type of actions.
pub const ACTION_TYPE: &str = "Palisade::Action";

/// The schema in Cedar's schema syntax. It does not depend on the configured
/// services: which callers and endpoints exist is checked separately.
const SCHEMA_BODY: &str = r#"namespace Palisade {
  // A caller or a called service: a workload, identified by its SPIFFE ID, or an
  // OAuth client outside the mesh, identified by its client_id (the token's `sub`;
  // `trust_domain` is then the trust domain of the control plane that vouched for it).
  // `name` and `owner` are present when the id belongs to a configured service.
  entity Service = {
    name?: String,
    owner?: String,
    trust_domain: String,
  };

  // One endpoint of a called service; id "<service name>:<route>".
  // Its parent is the called service's `Service` entity.
  entity Endpoint in [Service] = {
    service: String,
    route: String,
    path: String,
  };

  // One action per HTTP method.
  action "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" appliesTo {
    principal: [Service],
    resource: [Endpoint],
    context: {
      // "mtls" (an X.509-SVID) or "jwt" (an access token from the control plane).
      auth: String,
      // Unix seconds.
      time: Long,
      // The access token's scopes; empty for mTLS callers.
      scopes: Set<String>,
    },
  };
}
"#;

/// What the policy layer knows of one configured service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's name (the `<service>` part of endpoint ids).
    pub name: String,
    /// The service's SPIFFE ID (its `Palisade::Service` entity id).
    pub spiffe_id: String,
    /// The team owning the service, if configured.
    pub owner: Option<String>,
    /// The trust domain of the service's SPIFFE ID.
    pub trust_domain: String,
    /// Route templates from the service's OpenAPI spec; `None` when the
    /// service has no spec (endpoints are then keyed by literal path).
    pub routes: Option<Vec<String>>,
}

/// The Cedar schema generated from the configured services.
///
/// The entity and action shapes are fixed (see the crate documentation); the
/// services determine which `Palisade::Endpoint` literals policies may name.
#[derive(Debug, Clone)]
pub struct PolicySchema {
    validator: cedar::Validator,
    services: Vec<ServiceInfo>,
    by_name: HashMap<String, usize>,
}

impl PolicySchema {
    /// Builds the schema for `services`.
    ///
    /// # Errors
    /// A service name that is empty or contains `:`, a service name or SPIFFE
    /// ID configured twice, or (internal error) a schema Cedar rejects.
    pub fn generate(services: &[ServiceInfo]) -> Result<Self, PolicyError> {
        let mut by_name = HashMap::new();
        let mut by_spiffe: HashMap<&str, &str> = HashMap::new();
        for (index, service) in services.iter().enumerate() {
            if service.name.is_empty() || service.name.contains(':') {
                return Err(PolicyError::InvalidServiceName {
                    name: service.name.clone(),
                });
            }
            if by_name.insert(service.name.clone(), index).is_some() {
                return Err(PolicyError::DuplicateServiceName {
                    name: service.name.clone(),
                });
            }
            if let Some(first) = by_spiffe.insert(&service.spiffe_id, &service.name) {
                return Err(PolicyError::DuplicateSpiffeId {
                    spiffe_id: service.spiffe_id.clone(),
                    first: first.to_owned(),
                    second: service.name.clone(),
                });
            }
        }
        let (schema, warnings) =
            cedar::Schema::from_cedarschema_str(SCHEMA_BODY).map_err(|e| PolicyError::Schema {
                message: e.to_string(),
            })?;
        for warning in warnings {
            tracing::debug!(%warning, "cedar schema warning");
        }
        Ok(Self {
            validator: cedar::Validator::new(schema),
            services: services.to_vec(),
            by_name,
        })
    }

    /// The schema in Cedar's schema syntax, preceded by comments listing the
    /// configured services and the endpoint ids policies may use.
    pub fn schema_text(&self) -> String {
        let mut text = String::from("// Palisade policy schema (generated).\n");
        if self.services.is_empty() {
            text.push_str("// No services are configured.\n");
        } else {
            text.push_str("// Configured services:\n");
        }
        for service in &self.services {
            // Writing to a String cannot fail.
            let _ = writeln!(
                text,
                "//   {} = Palisade::Service::\"{}\"{}",
                service.name,
                service.spiffe_id,
                service
                    .owner
                    .as_deref()
                    .map(|owner| format!(" (owner {owner})"))
                    .unwrap_or_default()
            );
            match &service.routes {
                Some(routes) => {
                    for route in routes {
                        let _ = writeln!(
                            text,
                            "//     Palisade::Endpoint::\"{}:{route}\"",
                            service.name
                        );
                    }
                }
                None => {
                    let _ = writeln!(
                        text,
                        "//     Palisade::Endpoint::\"{}:<literal path>\" (no OpenAPI spec)",
                        service.name
                    );
                }
            }
        }
        text.push('\n');
        text.push_str(SCHEMA_BODY);
        text
    }

    /// The Cedar schema.
    pub fn cedar_schema(&self) -> &cedar::Schema {
        self.validator.schema()
    }

    /// A validator for this schema.
    pub(crate) fn validator(&self) -> &cedar::Validator {
        &self.validator
    }

    /// The configured services, in configuration order.
    pub fn services(&self) -> &[ServiceInfo] {
        &self.services
    }

    /// The configured service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceInfo> {
        self.by_name
            .get(name)
            .and_then(|&index| self.services.get(index))
    }
}
