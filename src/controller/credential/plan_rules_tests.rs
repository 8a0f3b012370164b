//! The connection owner's rules applied to what a credential already is (docs/architecture.md,
//! "Connection rules"): narrowed rules deactivate it, a moved connection stalls it, a create that
//! came back with unasked roles stalls it, and deletion follows the owner's limits.

use super::*;
use crate::api::{CredentialLimits, UnaskedPermissions};
use crate::controller::credential::cleanup_plan::{CleanupStep, next_cleanup_step};
use crate::controller::credential::observed::ConnectionView;

const URL: &str = "https://api.dfns.io";
const ORG: &str = "or-a";

fn connection(allowed: &[&str]) -> ConnectionView {
    ConnectionView {
        display: "DfnsConnection ns/main".into(),
        api_url: URL.into(),
        org_id: Some(ORG.into()),
        namespace_allowed: true,
        allowed_permission_ids: allowed.iter().map(|p| p.to_string()).collect(),
        roleless_allowed: true,
        limits: CredentialLimits::default(),
    }
}

/// A Ready credential holding role `pm-a`, minted through the connection as it is.
fn holding_role() -> Observed {
    let mut o = ready();
    o.desired.permission_id = Some("pm-a".into());
    o.status.assigned_permission_id = Some("pm-a".into());
    o.status.permission_assignment_id = Some("as-a".into());
    o.status.api_url = Some(URL.into());
    o.status.org_id = Some(ORG.into());
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        assignments: vec![("pm-a".into(), "as-a".into())],
        ..object("us-1", "cr-1", KEY_A)
    }));
    o.connection = Some(connection(&["pm-a"]));
    o
}

fn deactivated(mut o: Observed) -> Observed {
    if let DfnsView::Recorded(Some(object)) = &mut o.dfns {
        object.active = false;
    }
    o.status.active = Some(false);
    o
}

fn refused(o: &mut Observed, reason: ConditionReason) {
    o.guard = Guard::Refused {
        reason,
        message: "refused".into(),
    };
}

#[test]
fn a_credential_allowed_as_it_is_stays_up_to_date() {
    assert_eq!(next_step(&holding_role()), Step::UpToDate);
}

#[test]
fn a_role_removed_from_allowed_permission_ids_deactivates_then_stalls_then_reactivates_once_allowed()
 {
    let mut narrowed = holding_role();
    narrowed.connection = Some(connection(&["pm-other"]));
    refused(&mut narrowed, ConditionReason::PermissionNotAllowed);
    let Step::DeactivateNotAllowed { message } = next_step(&narrowed) else {
        panic!("deactivated: {:?}", next_step(&narrowed));
    };
    assert!(
        message.contains("pm-a") && message.contains("allowedPermissionIds"),
        "{message}"
    );
    // Once deactivated it stays stalled: nothing is sent again.
    let done = deactivated(narrowed);
    assert!(matches!(
        next_step(&done),
        Step::Stall {
            reason: ConditionReason::CredentialNoLongerAllowed,
            ..
        }
    ));
    // Widened again: the deactivation was the operator's, so it is undone.
    let mut widened = done;
    widened.connection = Some(connection(&["pm-other", "pm-a"]));
    widened.guard = Guard::Allowed;
    assert_eq!(next_step(&widened), Step::Activate);
}

#[test]
fn a_namespace_no_longer_selected_deactivates_the_credential() {
    let mut o = holding_role();
    o.connection.as_mut().unwrap().namespace_allowed = false;
    refused(&mut o, ConditionReason::ConnectionNotAllowed);
    assert!(matches!(
        next_step(&o),
        Step::DeactivateNotAllowed { message }
            if message.contains("namespaceSelector") && message.contains("another connection")
    ));
}

#[test]
fn a_pat_without_a_role_is_deactivated_once_unscoped_tokens_are_turned_off() {
    let mut o = ready();
    o.connection = Some(ConnectionView {
        roleless_allowed: false,
        ..connection(&[])
    });
    o.status.api_url = Some(URL.into());
    o.status.org_id = Some(ORG.into());
    refused(&mut o, ConditionReason::UnscopedTokenNotAllowed);
    assert!(matches!(
        next_step(&o),
        Step::DeactivateNotAllowed { message } if message.contains("allowUnscopedTokens")
    ));
}

#[test]
fn a_refused_new_role_leaves_the_allowed_credential_active_and_stalls() {
    // A typo in spec.permissionId must not cost the workload its working credential.
    let mut o = holding_role();
    o.desired.permission_id = Some("pm-typo".into());
    refused(&mut o, ConditionReason::PermissionNotAllowed);
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::PermissionNotAllowed,
            ..
        }
    ));
}

#[test]
fn moving_to_an_allowed_role_assigns_it_instead_of_deactivating() {
    let mut o = holding_role();
    o.connection = Some(connection(&["pm-b"]));
    o.desired.permission_id = Some("pm-b".into());
    assert_eq!(
        next_step(&o),
        Step::AssignPermission {
            permission_id: "pm-b".into()
        }
    );
}

#[test]
fn a_deletion_policy_refused_while_live_stalls_without_touching_the_credential() {
    let mut o = holding_role();
    refused(&mut o, ConditionReason::DeletionPolicyNotAllowed);
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::DeletionPolicyNotAllowed,
            ..
        }
    ));
}

#[test]
fn a_connection_moved_to_another_url_or_organization_stalls_before_anything_is_sent() {
    for (url, org) in [("https://api.uae.dfns.io", ORG), (URL, "or-b")] {
        let mut o = holding_role();
        o.connection = Some(ConnectionView {
            api_url: url.into(),
            org_id: Some(org.into()),
            ..connection(&["pm-a"])
        });
        // Observe asks Dfns nothing for a moved connection.
        o.dfns = DfnsView::NotAsked;
        let Step::Stall {
            reason: ConditionReason::ConnectionChanged,
            message,
        } = next_step(&o)
        else {
            panic!("stalled: {:?}", next_step(&o));
        };
        assert!(
            message.contains("us-1")
                && message.contains("skip-cleanup")
                && message.contains("revert"),
            "{message}"
        );
        // Deleting it waits the same way, and skip-cleanup releases it without touching Dfns.
        assert!(matches!(
            next_cleanup_step(&o, false),
            CleanupStep::Blocked { message } if message.contains("us-1")
        ));
        assert_eq!(next_cleanup_step(&o, true), CleanupStep::DeleteSecret);
    }
    // A trailing slash is the same endpoint.
    let mut o = holding_role();
    o.connection.as_mut().unwrap().api_url = format!("{URL}/");
    assert_eq!(next_step(&o), Step::UpToDate);
}

#[test]
fn a_legacy_resource_without_a_record_adopts_the_current_connection_once() {
    let mut o = holding_role();
    o.status.api_url = None;
    o.status.org_id = None;
    assert_eq!(next_step(&o), Step::RecordConnection);
    // A resource that holds nothing yet has nothing to record.
    let mut fresh = observed();
    fresh.connection = Some(connection(&[]));
    assert_eq!(next_step(&fresh), Step::GenerateKey);
}

#[test]
fn a_create_refused_for_unasked_permissions_is_not_repeated_until_the_spec_changes() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.status.unasked_permissions = Some(Box::new(UnaskedPermissions {
        id: "us-9".into(),
        permission_ids: vec!["pm-admin".into()],
        generation: 1,
    }));
    // The deactivated identity carries the pending key: still a candidate.
    o.dfns = DfnsView::Candidates(vec![DfnsObject {
        active: false,
        ..object("us-9", "cr-9", KEY_A)
    }]);
    assert!(matches!(
        next_step(&o),
        Step::Stall { reason: ConditionReason::UnaskedPermissions, message }
            if message.contains("us-9") && message.contains("pm-admin")
    ));
    // A new spec: the identity is archived as an orphan, and its key never used again.
    o.generation = 2;
    assert!(matches!(next_step(&o), Step::RetireOrphan(c) if c.id == "us-9"));
}

#[test]
fn unasked_permissions_are_what_the_identity_holds_beyond_the_asked_role() {
    assert_eq!(
        rules::unasked_permissions(None, ["pm-admin", "pm-read"]),
        vec!["pm-admin".to_string(), "pm-read".to_string()]
    );
    assert_eq!(
        rules::unasked_permissions(Some("pm-read"), ["pm-read", "pm-admin"]),
        vec!["pm-admin".to_string()]
    );
    assert!(rules::unasked_permissions(Some("pm-read"), ["pm-read"]).is_empty());
    assert!(rules::unasked_permissions(None, []).is_empty());
}

#[test]
fn deletion_applies_the_strictest_allowed_policy_in_place_of_a_refused_one() {
    let mut o = holding_role();
    o.desired.deletion_policy = DeletionPolicy::Retain;
    o.connection.as_mut().unwrap().limits = CredentialLimits {
        allowed_deletion_policies: Some(vec![DeletionPolicy::Deactivate]),
        ..Default::default()
    };
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::Deactivate { id: "us-1".into() }
    );
    // Then the Secret is deleted, not released as Retain would.
    let done = deactivated(o);
    assert_eq!(next_cleanup_step(&done, false), CleanupStep::DeleteSecret);
    assert_eq!(rules::left_active(&done, false), None);
}

#[test]
fn skip_cleanup_is_ignored_where_the_connection_does_not_honour_it() {
    let mut o = holding_role();
    o.connection.as_mut().unwrap().limits = CredentialLimits {
        honour_skip_cleanup: Some(false),
        ..Default::default()
    };
    assert_eq!(
        next_cleanup_step(&o, true),
        CleanupStep::Deactivate { id: "us-1".into() }
    );
    // Honoured (the default), it leaves the credential active: that is reported.
    let honoured = holding_role();
    assert_eq!(
        next_cleanup_step(&honoured, true),
        CleanupStep::DeleteSecret
    );
    assert_eq!(rules::left_active(&honoured, true), Some("SkipCleanup"));
}

#[test]
fn a_retained_credential_is_reported_as_left_active() {
    let mut o = holding_role();
    o.desired.deletion_policy = DeletionPolicy::Retain;
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::ReleaseSecret);
    assert_eq!(rules::left_active(&o, false), Some("Retain"));
    // Already deactivated in Dfns: nothing is left active.
    assert_eq!(rules::left_active(&deactivated(o), false), None);
}
