//! A write held by an approval policy, through the emulator: the 202's ids reach the error, and
//! `approval` follows the decision.

use dfns_client::types::permission::{ApprovalStatus, CreatePermissionRequest};
use dfns_client::{DfnsClient, ErrorCategory, IdentityKind, NewIdentity, generate_p256};
use dfns_test_support::dfns::*;

/// A service account and a permission, with assignments held for approval from now on.
async fn held_assignment(
    emulator: &dfns_emulator::RunningEmulator,
) -> (DfnsClient, String, String) {
    let admin = admin_client(emulator);
    let pair = generate_p256().unwrap();
    let created = admin
        .create(
            IdentityKind::ServiceAccount,
            &NewIdentity {
                name: "held".into(),
                public_key_pem: pair.public_key_pem,
                ..NewIdentity::default()
            },
        )
        .await
        .unwrap();
    let permission = admin
        .create_permission(&CreatePermissionRequest {
            name: "held-role".into(),
            operations: vec!["Auth:Pats:Create".into()],
        })
        .await
        .unwrap();
    require_approval(emulator, &["assignment"]).await;
    (admin, permission.id, created.identity.id)
}

#[tokio::test]
async fn a_held_assignment_names_its_change_request_and_approval_which_follows_a_denial() {
    let emulator = start_emulator().await;
    let (admin, permission, identity) = held_assignment(&emulator).await;
    let error = admin
        .assign_permission(&permission, &identity)
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::PendingApproval, "{error}");
    let (Some(change_request), Some(approval_id)) = error.pending_approval().unwrap() else {
        panic!("both ids expected: {error:?}");
    };
    assert!(change_request.starts_with("cr-"), "{change_request}");
    let (change_request, approval_id) = (change_request.to_owned(), approval_id.to_owned());

    let pending = admin.approval(&approval_id).await.unwrap();
    assert_eq!(pending.status, ApprovalStatus::Pending);
    assert_eq!(pending.reason(), None);

    decide_change_request(&emulator, &change_request, "deny", Some("not this role")).await;
    let denied = admin.approval(&approval_id).await.unwrap();
    assert_eq!(denied.status, ApprovalStatus::Denied);
    assert_eq!(denied.reason(), Some("not this role"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_approved_assignment_shows_approved_and_has_landed() {
    let emulator = start_emulator().await;
    let (admin, permission, identity) = held_assignment(&emulator).await;
    let error = admin
        .assign_permission(&permission, &identity)
        .await
        .unwrap_err();
    let (Some(change_request), Some(approval_id)) = error.pending_approval().unwrap() else {
        panic!("both ids expected: {error:?}");
    };
    let (change_request, approval_id) = (change_request.to_owned(), approval_id.to_owned());
    decide_change_request(&emulator, &change_request, "approve", None).await;
    assert_eq!(
        admin.approval(&approval_id).await.unwrap().status,
        ApprovalStatus::Approved
    );
    let found = admin
        .get(IdentityKind::ServiceAccount, &identity)
        .await
        .unwrap();
    assert!(found.assignment_of(&permission).is_some(), "{found:?}");
    emulator.shutdown().await;
}
