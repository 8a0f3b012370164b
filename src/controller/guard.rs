//! The connection's rules on who may mint what (docs/architecture.md, "Resources"): which connection a resource may
//! use, which roles it may request, and whether an unscoped PAT is allowed. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::credential::observed::Guard;
use crate::api::{
    ConditionReason, ConditionType, ConnectionSpec, ConnectionStatus, DeletionPolicy,
};

/// What the guard needs to know about the connection a resource names.
pub struct ConnectionFacts<'a> {
    /// e.g. `ClusterDfnsConnection/default` or `DfnsConnection/team-a/main`, for messages.
    pub display: String,
    pub spec: &'a ConnectionSpec,
    pub status: Option<&'a ConnectionStatus>,
    /// Only for `ClusterDfnsConnection`.
    pub namespace_selector: Option<&'a LabelSelector>,
}

/// What the resource asks for.
pub struct Request<'a> {
    pub namespace_labels: &'a BTreeMap<String, String>,
    pub permission_id: Option<&'a str>,
    /// PATs without a role carry their user's full rights.
    pub is_pat: bool,
    /// Creation needs an organization user's login; other calls work with any token.
    pub needs_create: bool,
    pub deletion_policy: DeletionPolicy,
    /// The validity asked for, in seconds (`daysValid` or a PAT's `secondsValid`).
    pub lifetime_secs: Option<u64>,
}

const SECS_PER_DAY: u64 = 86_400;

pub fn judge(
    connection: Option<&ConnectionFacts<'_>>,
    missing_display: &str,
    request: &Request<'_>,
) -> Guard {
    let Some(connection) = connection else {
        return Guard::ConnectionUnavailable {
            reason: ConditionReason::ConnectionNotFound,
            message: format!("{missing_display} not found; create it or set spec.connectionRef"),
        };
    };
    if let Some(selector) = connection.namespace_selector
        && !selector_matches(selector, request.namespace_labels)
    {
        return Guard::Refused {
            reason: ConditionReason::ConnectionNotAllowed,
            message: format!(
                "{} does not allow this namespace (spec.namespaceSelector)",
                connection.display
            ),
        };
    }
    if let Some(permission) = request.permission_id
        && !connection
            .spec
            .allowed_permission_ids
            .iter()
            .any(|p| p == permission)
    {
        return Guard::Refused {
            reason: ConditionReason::PermissionNotAllowed,
            message: format!(
                "permissionId {permission} is not in spec.allowedPermissionIds of {}; ask its owner to add it",
                connection.display
            ),
        };
    }
    if request.is_pat
        && request.permission_id.is_none()
        && connection.spec.allow_unscoped_tokens != Some(true)
    {
        return Guard::Refused {
            reason: ConditionReason::UnscopedTokenNotAllowed,
            message: format!(
                "a PAT without permissionId carries its user's full rights; set spec.permissionId, or set \
                 allowUnscopedTokens: true on {}",
                connection.display
            ),
        };
    }
    if let Some(refused) = beyond_limits(connection, request) {
        return refused;
    }
    let ready = connection.status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready.as_str())
    });
    match ready {
        Some(c) if c.status == "True" => {}
        other => {
            let why = other
                .map(|c| c.message.as_str())
                .filter(|m| !m.is_empty())
                .unwrap_or("not checked yet");
            return Guard::ConnectionUnavailable {
                reason: ConditionReason::ConnectionNotReady,
                message: format!("{} is not ready: {why}", connection.display),
            };
        }
    }
    if request.needs_create {
        let kind = connection
            .status
            .and_then(|s| s.identity.as_ref())
            .map(|i| i.kind.as_str());
        if let Some(kind) = kind.filter(|k| *k != "User") {
            return Guard::Refused {
                reason: ConditionReason::Forbidden,
                message: format!(
                    "{} authenticates with a {kind} token, and Dfns lets only organization users create service \
                     accounts and personal access tokens; use auth.userLogin",
                    connection.display
                ),
            };
        }
    }
    Guard::Allowed
}

/// The owner's `credentialLimits`: the deletion policy always; the validity only for what is
/// still to be minted (a credential's validity is fixed when it is created).
fn beyond_limits(connection: &ConnectionFacts<'_>, request: &Request<'_>) -> Option<Guard> {
    let limits = connection.spec.credential_limits.as_ref()?;
    if !limits.allows_deletion_policy(request.deletion_policy) {
        let allowed: Vec<String> = limits
            .allowed_deletion_policies
            .iter()
            .flatten()
            .map(|p| format!("{p:?}"))
            .collect();
        return Some(Guard::Refused {
            reason: ConditionReason::DeletionPolicyNotAllowed,
            message: format!(
                "deletionPolicy {:?} is not allowed by {} (spec.credentialLimits.allowedDeletionPolicies: {}); \
                 set spec.deletionPolicy to one of them. Deleting this resource applies the strictest allowed policy",
                request.deletion_policy,
                connection.display,
                allowed.join(", ")
            ),
        });
    }
    let max_days = limits.max_days_valid?;
    let asked = request.lifetime_secs?;
    (request.needs_create && asked > u64::from(max_days) * SECS_PER_DAY).then(|| Guard::Refused {
        reason: ConditionReason::LifetimeNotAllowed,
        message: format!(
            "the validity asked for ({asked} s) is longer than {} allows (spec.credentialLimits.maxDaysValid: \
             {max_days} days); ask for at most that (daysValid/secondsValid are immutable: re-create the resource)",
            connection.display
        ),
    })
}

/// Kubernetes label selector semantics; an empty selector matches everything.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false, // unknown operators never match, as in Kubernetes
        }
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
