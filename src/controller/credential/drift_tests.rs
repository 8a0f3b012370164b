//! A settled resource is looked at only when the listing shows a difference that a reconcile
//! would act on; one that matches its status is left alone.

use super::*;
use dfns_client::IdentityKind;
use dfns_client::types::PermissionAssignmentRef;
use serde_json::json;

const NAME: &str = "team-app";

/// What status records of a Ready service account with role `pm-1` (assignment `as-1`).
fn settled() -> CredentialStatus {
    serde_json::from_value(json!({
        "serviceAccountId": "us-1",
        "tokenId": "to-1",
        "credentialId": "cr-1",
        "active": true,
        "assignedPermissionId": "pm-1",
        "permissionAssignmentId": "as-1",
    }))
    .unwrap()
}

/// The same service account as the listing shows it.
fn listed() -> Identity {
    Identity {
        kind: IdentityKind::ServiceAccount,
        id: "us-1".into(),
        token_id: Some("to-1".into()),
        cred_id: Some("cr-1".into()),
        is_active: true,
        name: Some(NAME.into()),
        external_id: None,
        public_key: None,
        linked_user_id: None,
        org_id: None,
        date_created: None,
        permission_assignments: vec![role("pm-1", "as-1")],
    }
}

fn role(permission: &str, assignment: &str) -> PermissionAssignmentRef {
    PermissionAssignmentRef {
        permission_id: permission.into(),
        permission_name: None,
        assignment_id: assignment.into(),
        operations: vec![],
    }
}

fn listing(identities: impl IntoIterator<Item = Identity>) -> HashMap<String, Identity> {
    identities.into_iter().map(|i| (i.id.clone(), i)).collect()
}

fn drift_of(status: &CredentialStatus, identity: Identity) -> Option<Drift> {
    drift(status, NAME, &listing([identity]))
}

#[test]
fn a_resource_whose_listing_matches_its_status_is_left_alone() {
    assert_eq!(drift_of(&settled(), listed()), None);
    // Deactivated for spec.active=false, and recorded so.
    let mut status = settled();
    status.active = Some(false);
    let mut identity = listed();
    identity.is_active = false;
    assert_eq!(drift_of(&status, identity), None);
}

#[test]
fn a_resource_without_a_role_matches_an_identity_without_one() {
    let mut status = settled();
    status.assigned_permission_id = None;
    status.permission_assignment_id = None;
    let mut identity = listed();
    identity.permission_assignments.clear();
    assert_eq!(drift_of(&status, identity), None);
}

#[test]
fn an_identity_missing_from_the_listing_is_drift() {
    assert_eq!(drift(&settled(), NAME, &listing([])), Some(Drift::Missing));
    let mut other = listed();
    other.id = "us-2".into();
    assert_eq!(
        drift(&settled(), NAME, &listing([other])),
        Some(Drift::Missing)
    );
}

#[test]
fn a_deactivation_or_reactivation_in_dfns_is_drift() {
    let mut identity = listed();
    identity.is_active = false;
    assert_eq!(drift_of(&settled(), identity), Some(Drift::Activation));
    // Reported as deactivated in Dfns; someone activated it there again.
    let mut status = settled();
    status.active = Some(false);
    assert_eq!(drift_of(&status, listed()), Some(Drift::Activation));
}

#[test]
fn a_rename_in_dfns_is_drift() {
    let mut identity = listed();
    identity.name = Some("renamed".into());
    assert_eq!(drift_of(&settled(), identity), Some(Drift::Renamed));
    let mut identity = listed();
    identity.name = None;
    assert_eq!(drift_of(&settled(), identity), Some(Drift::Renamed));
}

#[test]
fn a_role_changed_added_or_revoked_in_dfns_is_drift() {
    let changes = [
        vec![role("pm-2", "as-2")],
        vec![role("pm-1", "as-1"), role("pm-admin", "as-9")],
        vec![],
        vec![role("pm-1", "as-other")],
    ];
    for assignments in changes {
        let mut identity = listed();
        identity.permission_assignments = assignments.clone();
        assert_eq!(
            drift_of(&settled(), identity),
            Some(Drift::Roles),
            "{assignments:?}"
        );
    }
}

#[test]
fn another_key_credential_in_dfns_is_drift() {
    let mut identity = listed();
    identity.cred_id = Some("cr-2".into());
    assert_eq!(drift_of(&settled(), identity), Some(Drift::CredentialId));
}

#[test]
fn a_rotated_key_is_not_drift_although_dfns_shows_the_original_credential() {
    let mut status = settled();
    status.credential_id = Some("rotated".into());
    status.key_credential = Some(serde_json::from_value(json!({ "credId": "rotated" })).unwrap());
    assert_eq!(drift_of(&status, listed()), None);
}

#[test]
fn an_unfinished_create_renewal_or_retirement_is_always_looked_at() {
    let started = json!({ "startedAt": "2026-01-01T00:00:00Z", "publicKeySha256": "ab" });
    let unfinished = [
        json!({ "pendingCreate": started }),
        json!({ "serviceAccountId": "us-1", "pendingRenewal": { "startedAt": "2026-01-01T00:00:00Z", "trigger": "Scheduled" } }),
        json!({ "serviceAccountId": "us-1", "retiring": { "id": "us-0" } }),
        json!({ "serviceAccountId": "us-1", "pendingKeyRotation": { "startedAt": "2026-01-01T00:00:00Z", "trigger": "Requested" } }),
    ];
    for status in unfinished {
        let status: CredentialStatus = serde_json::from_value(status.clone()).unwrap();
        assert_eq!(
            drift(&status, NAME, &listing([])),
            Some(Drift::Unfinished),
            "{status:?}"
        );
    }
}

#[test]
fn a_resource_with_nothing_in_dfns_is_not_triggered_by_the_listing() {
    assert_eq!(
        drift(&CredentialStatus::default(), NAME, &listing([listed()])),
        None
    );
}

#[test]
fn stalls_whose_cure_nothing_watched_announces_keep_a_timed_look() {
    for reason in [
        ConditionReason::SecretConflict,
        ConditionReason::ForeignCredential,
        ConditionReason::Expired,
    ] {
        assert!(!woken_by_watches(reason), "{reason:?}");
    }
    for reason in [
        ConditionReason::Ready,
        ConditionReason::DeactivatedInDfns,
        ConditionReason::OrphanNotProven,
        ConditionReason::PermissionNotAllowed,
        ConditionReason::CredentialNoLongerAllowed,
    ] {
        assert!(woken_by_watches(reason), "{reason:?}");
    }
}
