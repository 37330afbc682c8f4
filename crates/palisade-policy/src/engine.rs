//! The authorization engine: the current policy set, swapped atomically on
//! reload, and per-request decisions.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use cedar_policy as cedar;

use crate::error::{PolicyError, PolicyLoadError};
use crate::load::PolicySet;
use crate::schema::{PolicySchema, ServiceInfo, ACTIONS, ACTION_TYPE, ENDPOINT_TYPE, SERVICE_TYPE};

/// Decision code: no valid policy set has been loaded.
pub const CODE_POLICY_UNAVAILABLE: &str = "palisade.policy.unavailable";
/// Decision code: the HTTP method is not one of the Palisade actions.
pub const CODE_UNKNOWN_ACTION: &str = "palisade.authz.unknown_action";
/// Decision code: the request was denied (by a forbid, by default, or
/// because the called service is unknown).
pub const CODE_DENIED: &str = "palisade.authz.denied";

/// One request to authorize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthzRequest<'a> {
    /// The caller's SPIFFE ID.
    pub caller: &'a str,
    /// The trust domain of the caller's SPIFFE ID.
    pub caller_trust_domain: &'a str,
    /// The HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The name of the called service.
    pub service: &'a str,
    /// The OpenAPI route template matched (or the literal path when the
    /// called service has no spec).
    pub route: &'a str,
    /// The literal request path.
    pub path: &'a str,
    /// How the caller authenticated: `mtls` or `jwt`.
    pub auth: &'a str,
    /// The access token's scopes (`context.scopes`); empty for mTLS callers.
    pub scopes: &'a [String],
    /// The request time, in unix seconds.
    pub time_unix: i64,
}

/// The outcome of [`PolicyEngine::authorize`]. A denial is data, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Machine-readable denial code (`None` when allowed).
    pub code: Option<&'static str>,
    /// Ids of the policies that determined the decision: the permits that
    /// allowed it, or the forbids that denied it. Empty for default deny.
    pub policies: Vec<String>,
    /// Human-readable explanation, including any policy evaluation errors.
    pub reason: String,
}

impl AuthzDecision {
    fn deny(code: &'static str, reason: String) -> Self {
        Self {
            allowed: false,
            code: Some(code),
            policies: Vec::new(),
            reason,
        }
    }
}

/// What a successful [`PolicyEngine::reload`] loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// The engine's generation after the reload.
    pub generation: u64,
    /// The number of policies now in force.
    pub policies: usize,
    /// The number of `.cedar` files they came from.
    pub files: usize,
}

/// A configured service as the request path needs it.
struct CalleeEntity {
    uid: cedar::EntityUid,
    entity: cedar::Entity,
}

/// The engine the sidecar holds: the schema, the services' precomputed
/// entities, and the current policy set (or none), swapped atomically on
/// reload.
pub struct PolicyEngine {
    schema: PolicySchema,
    dir: PathBuf,
    authorizer: cedar::Authorizer,
    service_type: cedar::EntityTypeName,
    endpoint_type: cedar::EntityTypeName,
    actions: Vec<(&'static str, cedar::EntityUid)>,
    callees: HashMap<String, CalleeEntity>,
    callers: HashMap<String, cedar::Entity>,
    // A plain `RwLock` is enough: the lock is held only to clone or replace
    // the `Arc`, never while parsing, so readers do not wait on a reload.
    current: RwLock<Option<Arc<PolicySet>>>,
    generation: AtomicU64,
    // Serializes reloads so generations and swaps happen in the same order.
    reloading: Mutex<()>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("dir", &self.dir)
            .field("services", &self.schema.services().len())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// Creates an engine for `services` reading policies from `dir`. It does
    /// not load anything: until the first successful [`reload`](Self::reload)
    /// every request is denied with [`CODE_POLICY_UNAVAILABLE`].
    ///
    /// # Errors
    /// The services are inconsistent (see [`PolicySchema::generate`]).
    pub fn new(services: Vec<ServiceInfo>, dir: PathBuf) -> Result<Self, PolicyError> {
        let schema = PolicySchema::generate(&services)?;
        let type_name = |name: &str| {
            cedar::EntityTypeName::from_str(name).map_err(|e| PolicyError::Schema {
                message: format!("entity type `{name}`: {e}"),
            })
        };
        let service_type = type_name(SERVICE_TYPE)?;
        let endpoint_type = type_name(ENDPOINT_TYPE)?;
        let action_type = type_name(ACTION_TYPE)?;
        let actions = ACTIONS
            .iter()
            .map(|&method| {
                let uid = cedar::EntityUid::from_type_name_and_id(
                    action_type.clone(),
                    cedar::EntityId::new(method),
                );
                (method, uid)
            })
            .collect();

        let mut callees = HashMap::new();
        let mut callers = HashMap::new();
        for service in &services {
            let uid = cedar::EntityUid::from_type_name_and_id(
                service_type.clone(),
                cedar::EntityId::new(&service.spiffe_id),
            );
            let mut attrs = HashMap::from([
                (
                    "name".to_owned(),
                    cedar::RestrictedExpression::new_string(service.name.clone()),
                ),
                (
                    "trust_domain".to_owned(),
                    cedar::RestrictedExpression::new_string(service.trust_domain.clone()),
                ),
            ]);
            if let Some(owner) = &service.owner {
                attrs.insert(
                    "owner".to_owned(),
                    cedar::RestrictedExpression::new_string(owner.clone()),
                );
            }
            let entity = cedar::Entity::new(uid.clone(), attrs, HashSet::new()).map_err(|e| {
                PolicyError::Schema {
                    message: format!("entity for service `{}`: {e}", service.name),
                }
            })?;
            callers.insert(service.spiffe_id.clone(), entity.clone());
            callees.insert(service.name.clone(), CalleeEntity { uid, entity });
        }

        Ok(Self {
            schema,
            dir,
            authorizer: cedar::Authorizer::new(),
            service_type,
            endpoint_type,
            actions,
            callees,
            callers,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            reloading: Mutex::new(()),
        })
    }

    /// The schema policies are validated against.
    pub fn schema(&self) -> &PolicySchema {
        &self.schema
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The policy set in force, if one was ever loaded.
    pub fn current(&self) -> Option<Arc<PolicySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many successful reloads have happened (0 = none yet).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Loads the policy directory and, if it is valid, puts it in force.
    ///
    /// # Errors
    /// Every problem found in the directory. The previous set (if any) stays
    /// in force, and each problem is logged with `tracing::error!`.
    pub fn reload(&self) -> Result<ReloadSummary, PolicyLoadError> {
        let _serialized = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match PolicySet::load_dir(&self.dir, &self.schema) {
            Ok(set) => {
                let summary_policies = set.len();
                let summary_files = set.files().len();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
                let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                tracing::info!(
                    dir = %self.dir.display(),
                    generation,
                    policies = summary_policies,
                    files = summary_files,
                    "policy set loaded"
                );
                Ok(ReloadSummary {
                    generation,
                    policies: summary_policies,
                    files: summary_files,
                })
            }
            Err(error) => {
                for problem in &error.problems {
                    tracing::error!(
                        file = %problem.file.display(),
                        line = problem.line,
                        kind = %problem.kind,
                        "{problem}"
                    );
                }
                tracing::error!(
                    dir = %self.dir.display(),
                    problems = error.problems.len(),
                    generation = self.generation(),
                    "policy reload rejected; the previous policy set stays in force"
                );
                Err(error)
            }
        }
    }

    /// Decides one request. Denies by default and fails closed: no policy
    /// set, an unknown method, an unknown callee or any internal failure
    /// denies.
    pub fn authorize(&self, req: &AuthzRequest<'_>) -> AuthzDecision {
        let Some(set) = self.current() else {
            return AuthzDecision::deny(
                CODE_POLICY_UNAVAILABLE,
                format!(
                    "no valid policy set has been loaded from {}",
                    self.dir.display()
                ),
            );
        };
        let Some(action) = self
            .actions
            .iter()
            .find(|(method, _)| *method == req.method)
            .map(|(_, uid)| uid.clone())
        else {
            return AuthzDecision::deny(
                CODE_UNKNOWN_ACTION,
                format!(
                    "HTTP method `{}` is not a Palisade action (expected one of {})",
                    req.method,
                    ACTIONS.join(", ")
                ),
            );
        };
        let Some(callee) = self.callees.get(req.service) else {
            return AuthzDecision::deny(
                CODE_DENIED,
                format!("`{}` is not a configured service", req.service),
            );
        };
        match self.evaluate(&set, req, action, callee) {
            Ok(decision) => decision,
            Err(message) => AuthzDecision::deny(
                CODE_DENIED,
                format!("internal error while authorizing (request denied): {message}"),
            ),
        }
    }

    fn evaluate(
        &self,
        set: &PolicySet,
        req: &AuthzRequest<'_>,
        action: cedar::EntityUid,
        callee: &CalleeEntity,
    ) -> Result<AuthzDecision, String> {
        let principal_uid = cedar::EntityUid::from_type_name_and_id(
            self.service_type.clone(),
            cedar::EntityId::new(req.caller),
        );
        let principal = match self.callers.get(req.caller) {
            Some(entity) => entity.clone(),
            None => cedar::Entity::new(
                principal_uid.clone(),
                HashMap::from([(
                    "trust_domain".to_owned(),
                    cedar::RestrictedExpression::new_string(req.caller_trust_domain.to_owned()),
                )]),
                HashSet::new(),
            )
            .map_err(|e| e.to_string())?,
        };
        let resource_uid = cedar::EntityUid::from_type_name_and_id(
            self.endpoint_type.clone(),
            cedar::EntityId::new(format!("{}:{}", req.service, req.route)),
        );
        let resource = cedar::Entity::new(
            resource_uid.clone(),
            HashMap::from([
                (
                    "service".to_owned(),
                    cedar::RestrictedExpression::new_string(req.service.to_owned()),
                ),
                (
                    "route".to_owned(),
                    cedar::RestrictedExpression::new_string(req.route.to_owned()),
                ),
                (
                    "path".to_owned(),
                    cedar::RestrictedExpression::new_string(req.path.to_owned()),
                ),
            ]),
            HashSet::from([callee.uid.clone()]),
        )
        .map_err(|e| e.to_string())?;
        let mut entities = vec![principal, resource];
        // A service calling itself is both principal and the resource's parent.
        if callee.uid != principal_uid {
            entities.push(callee.entity.clone());
        }
        let entities = cedar::Entities::from_entities(entities, None).map_err(|e| e.to_string())?;
        let context = cedar::Context::from_pairs([
            (
                "auth".to_owned(),
                cedar::RestrictedExpression::new_string(req.auth.to_owned()),
            ),
            (
                "time".to_owned(),
                cedar::RestrictedExpression::new_long(req.time_unix),
            ),
            (
                "scopes".to_owned(),
                cedar::RestrictedExpression::new_set(
                    req.scopes
                        .iter()
                        .map(|scope| cedar::RestrictedExpression::new_string(scope.clone())),
                ),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let request = cedar::Request::new(principal_uid, action, resource_uid, context, None)
            .map_err(|e| e.to_string())?;

        let response = self
            .authorizer
            .is_authorized(&request, set.cedar_policies(), &entities);
        let diagnostics = response.diagnostics();
        let mut policies: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
        policies.sort();
        let mut errors: Vec<(String, String)> = diagnostics
            .errors()
            .map(|error| match error {
                cedar::AuthorizationError::PolicyEvaluationError(e) => {
                    (e.policy_id().to_string(), e.inner().to_string())
                }
            })
            .collect();
        errors.sort();
        for (id, message) in &errors {
            tracing::warn!(policy = %id, caller = req.caller, "policy evaluation error: {message}");
        }

        let allowed = response.decision() == cedar::Decision::Allow;
        let mut reason = if allowed {
            format!("permitted by {}", name_policies(&policies))
        } else if policies.is_empty() {
            format!(
                "no policy permits {} to {} {}:{} (default deny)",
                req.caller, req.method, req.service, req.route
            )
        } else {
            format!("forbidden by {}", name_policies(&policies))
        };
        if !errors.is_empty() {
            let listed: Vec<String> = errors
                .iter()
                .map(|(id, message)| format!("{id}: {message}"))
                .collect();
            reason.push_str(&format!(
                "; policies that failed to evaluate were ignored: {}",
                listed.join("; ")
            ));
        }
        Ok(AuthzDecision {
            allowed,
            code: if allowed { None } else { Some(CODE_DENIED) },
            policies,
            reason,
        })
    }
}

fn name_policies(ids: &[String]) -> String {
    match ids {
        [one] => format!("policy {one}"),
        many => format!("policies {}", many.join(", ")),
    }
}
