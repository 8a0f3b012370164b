//! The connection owner's rules applied to what a credential already is (docs/architecture.md,
//! "Connection rules"): the roles it holds, where it was minted, what a create returned, and what
//! a deletion may leave behind. Pure; the planner and the cleanup planner ask these.

use super::observed::{ConnectionView, DfnsObject, DfnsView, Observed};
use crate::api::{CredentialStatus, DeletionPolicy};

/// Why the connection no longer allows the credential as Dfns shows it, if it does not: its
/// namespace is no longer selected, it holds a role the connection does not allow, or it holds no
/// role where the connection wants one (a PAT without a role carries its user's full rights).
pub fn held_refusal(o: &Observed, object: &DfnsObject) -> Option<Refusal> {
    let c = o.connection.as_ref()?;
    let (rule, way_forward) = if !c.namespace_allowed {
        (
            "no longer selects this namespace (spec.namespaceSelector)".to_owned(),
            "use another connection (in a new resource: connectionRef is immutable)",
        )
    } else if let Some((role, _)) = object
        .assignments
        .iter()
        .find(|(role, _)| !c.allowed_permission_ids.contains(role))
    {
        (
            format!("no longer allows role {role} (spec.allowedPermissionIds)"),
            "set spec.permissionId to an allowed role",
        )
    } else if object.assignments.is_empty() && !c.roleless_allowed {
        (
            "no longer allows a PAT without a role, which carries its user's full rights \
             (spec.allowUnscopedTokens)"
                .to_owned(),
            "set spec.permissionId to an allowed role",
        )
    } else {
        return None;
    };
    Some(Refusal {
        rule: format!("{} {rule}", c.display),
        way_forward,
    })
}

/// A rule the credential no longer meets, and what the resource's owner can do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub rule: String,
    pub way_forward: &'static str,
}

impl Refusal {
    /// What the resource says once its credential is deactivated for it.
    pub fn message(&self, id: &str) -> String {
        format!(
            "{}; {id} is deactivated in Dfns and this resource is not Ready. It is activated again \
             once the connection allows it; or {}, or delete this resource",
            self.rule, self.way_forward
        )
    }
}

/// The connection now names another Dfns endpoint or organization than the one this resource's
/// credential (or its unfinished create, or a credential waiting for retirement) lives in. Its ids
/// mean nothing there: nothing is sent, nothing is re-minted, the Secret is left as it is.
pub fn moved(status: &CredentialStatus, now: &ConnectionView) -> Option<String> {
    let holds = status.recorded_id().is_some()
        || status.pending_create.is_some()
        || status.retiring.is_some();
    // A legacy resource without a record adopts the current connection (`needs_record`).
    let minted_at = status.api_url.as_deref().filter(|_| holds)?;
    let url_changed = normalized(minted_at) != normalized(&now.api_url);
    let org_changed = matches!((&status.org_id, &now.org_id), (Some(a), Some(b)) if a != b);
    if !url_changed && !org_changed {
        return None;
    }
    let was = place(minted_at, status.org_id.as_deref());
    let is = place(&now.api_url, now.org_id.as_deref());
    let id = status
        .recorded_id()
        .or(status.retiring.as_ref().map(|r| r.id.as_str()))
        .unwrap_or("an unfinished create");
    Some(format!(
        "{} now points at {is}, but this resource's credential ({id}) was minted at {was}; nothing is \
         sent there with its ids, nothing is minted anew and the Secret is left as it is. Either revert \
         the connection, or retire {id} at {was} by hand, delete this resource with the annotation \
         dfns.io/skip-cleanup=\"true\" and apply it again",
        now.display
    ))
}

/// Status holds a Dfns id but not the endpoint and organization it belongs to (a resource from
/// before they were recorded, or an organization learnt since): record the current ones, once.
pub fn needs_record(status: &CredentialStatus, now: &ConnectionView) -> bool {
    let holds = status.recorded_id().is_some()
        || status.pending_create.is_some()
        || status.retiring.is_some();
    holds && (status.api_url.is_none() || (status.org_id.is_none() && now.org_id.is_some()))
}

fn normalized(url: &str) -> &str {
    url.trim_end_matches('/')
}

fn place(url: &str, org: Option<&str>) -> String {
    match org {
        Some(org) => format!("{url} (organization {org})"),
        None => url.to_owned(),
    }
}

/// The roles a freshly created identity holds beyond what was asked (`asked`, or nothing).
pub fn unasked_permissions<'a>(
    asked: Option<&str>,
    held: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut extra: Vec<String> = held
        .into_iter()
        .filter(|role| Some(*role) != asked)
        .map(str::to_owned)
        .collect();
    extra.sort();
    extra.dedup();
    extra
}

pub fn unasked_message(id: &str, roles: &[String]) -> String {
    format!(
        "Dfns created {id} with roles nobody asked for ({}): it inherited rights from the \
         connection's user. It was deactivated at once and its token was never stored. Set \
         spec.permissionId to the role it needs (or connect with a user whose rights may be \
         inherited); nothing is created again until the spec changes",
        roles.join(", ")
    )
}

/// The deletion policy applied at deletion: the resource's where the connection allows it,
/// otherwise the strictest the connection allows.
pub fn deletion_policy(o: &Observed) -> DeletionPolicy {
    match &o.connection {
        Some(c) => c.limits.deletion_policy_for(o.desired.deletion_policy),
        None => o.desired.deletion_policy,
    }
}

/// Whether `dfns.io/skip-cleanup` is honoured. Without the connection there is nobody to ask and
/// nothing can be cleaned up anyway, so it is.
pub fn skip_cleanup_honoured(o: &Observed) -> bool {
    o.connection
        .as_ref()
        .is_none_or(|c| c.limits.honours_skip_cleanup())
}

/// Why a finished deletion leaves a credential active in Dfns on purpose, if it does:
/// `Retain`, or `SkipCleanup` (honoured). `skip` is the effective skip.
pub fn left_active(o: &Observed, skip: bool) -> Option<&'static str> {
    let id = o.recorded_id()?;
    let known_inactive = match &o.dfns {
        DfnsView::Recorded(found) => found.as_ref().is_none_or(|f| !f.active || f.archived),
        _ => false,
    };
    if known_inactive || id.is_empty() {
        return None;
    }
    if skip {
        Some("SkipCleanup")
    } else if deletion_policy(o) == DeletionPolicy::Retain {
        Some("Retain")
    } else {
        None
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
