//! Which settled resources need a look, judged from the shared Dfns listing and what their status
//! records, without reading anything else (docs/architecture.md, "Cost rules"). Pure: the drift
//! watch (`controller/drift_watch.rs`) asks it about every resource of a connection after each
//! refresh of the listing, and triggers a reconcile only where it answers `Some`.

use std::collections::HashMap;

use crate::api::{ConditionReason, CredentialStatus};
use dfns_client::Identity;

/// Why a resource's reconcile is due although nothing in Kubernetes changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drift {
    /// The recorded identity is not in the listing: archived or gone (the reconcile confirms it
    /// with one GET before it reports it gone).
    Missing,
    /// Dfns shows it active where status records it inactive, or the reverse.
    Activation,
    /// Its name in Dfns is not the one the spec asks for.
    Renamed,
    /// The roles it holds in Dfns are not the one assignment status records.
    Roles,
    /// Its key credential is not the one status records.
    CredentialId,
    /// A create, renewal or retirement is unfinished: what it waits for may be any change in
    /// Dfns (an unproven orphan deactivated by a person, a candidate appearing or going).
    Unfinished,
}

/// Whether the listing shows the resource's Dfns state to differ from what its status records,
/// for the display name the spec asks for. `None`: nothing for a reconcile to act on.
pub fn drift(
    status: &CredentialStatus,
    display_name: &str,
    listed: &HashMap<String, Identity>,
) -> Option<Drift> {
    if holds_unfinished(status) {
        return Some(Drift::Unfinished);
    }
    // Nothing in Dfns is this resource's yet: its reconciles wait on Kubernetes changes.
    let recorded = status.recorded_id()?;
    let Some(identity) = listed.get(recorded) else {
        return Some(Drift::Missing);
    };
    if status.active != Some(identity.is_active) {
        return Some(Drift::Activation);
    }
    if identity.name.as_deref().unwrap_or_default() != display_name {
        return Some(Drift::Renamed);
    }
    // After a key rotation Dfns keeps showing the identity's original credential id, and
    // status records the rotated one (`keyCredential`).
    if status.key_credential.is_none() && status.credential_id != identity.cred_id {
        return Some(Drift::CredentialId);
    }
    let recorded_roles = match (
        &status.assigned_permission_id,
        &status.permission_assignment_id,
    ) {
        (Some(permission), Some(assignment)) => vec![(permission.as_str(), assignment.as_str())],
        _ => Vec::new(),
    };
    let mut held: Vec<_> = identity
        .permission_assignments
        .iter()
        .map(|a| (a.permission_id.as_str(), a.assignment_id.as_str()))
        .collect();
    held.sort_unstable();
    if held != recorded_roles {
        return Some(Drift::Roles);
    }
    None
}

fn holds_unfinished(status: &CredentialStatus) -> bool {
    status.pending_create.is_some()
        || status.pending_renewal.is_some()
        || status.pending_key_rotation.is_some()
        || status.retiring.is_some()
}

/// Whether anything of the resource is in Dfns to compare with a listing: a recorded identity,
/// or an unfinished create, renewal or retirement.
pub fn holds_anything_in_dfns(status: &CredentialStatus) -> bool {
    status.recorded_id().is_some() || holds_unfinished(status)
}

/// Whether a settled resource with this condition reason is woken by what the operator watches
/// (its spec, its Secret, its connection, its namespace's labels, the Dfns listing), so it needs
/// no timed look. The others are requeued at the resync interval: their cure is a change nothing
/// watched announces (a foreign Secret of the name deleted, an id removed from status by hand,
/// a connection that became usable again without changing).
pub fn woken_by_watches(reason: ConditionReason) -> bool {
    use ConditionReason as R;
    matches!(
        reason,
        R::Ready
            | R::Inactive
            | R::DeactivatedInDfns
            | R::PermissionNotAllowed
            | R::UnscopedTokenNotAllowed
            | R::ConnectionNotFound
            | R::ConnectionNotAllowed
            | R::InvalidSpec
            | R::ApprovalDenied
            | R::ApprovedWithoutToken
            | R::OrphanNotProven
            | R::ApiHostNotAllowed
            | R::CredentialNoLongerAllowed
            | R::LifetimeNotAllowed
            | R::DeletionPolicyNotAllowed
            | R::ConnectionChanged
            | R::UnaskedPermissions
    )
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod tests;
