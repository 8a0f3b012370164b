//! Every typed call of the Dfns client against the in-process emulator.

use dfns_client::types::pat::{CreatePatRequest, UpdatePatRequest};
use dfns_client::types::permission::CreatePermissionRequest;
use dfns_client::types::service_account::{
    CreateServiceAccountRequest, UpdateServiceAccountRequest,
};
use dfns_client::{ErrorCategory, Identity, IdentityKind, NewIdentity, generate_p256};
use dfns_test_support::dfns::*;

#[tokio::test]
async fn service_account_lifecycle_through_typed_calls() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let pair = generate_p256().unwrap();

    let created = admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "typed-sa".into(),
            public_key: pair.public_key_pem.clone(),
            permission_id: None,
            external_id: Some("uid-typed".into()),
            days_valid: Some(30),
        })
        .await
        .unwrap();
    let id = created.user_info.user_id.clone();
    assert!(id.starts_with("us-"), "{id}");
    assert!(
        created.access_tokens[0].access_token.is_some(),
        "token shown at creation"
    );

    let listed = admin.list_service_accounts().await.unwrap();
    assert!(listed.iter().any(|account| account.user_info.user_id == id));
    let fetched = admin.get_service_account(&id).await.unwrap();
    assert!(
        fetched
            .access_tokens
            .iter()
            .all(|token| token.access_token.is_none()),
        "token never shown again"
    );

    let renamed = admin
        .update_service_account(
            &id,
            &UpdateServiceAccountRequest {
                name: Some("typed-sa-2".into()),
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.user_info.name.as_deref(), Some("typed-sa-2"));

    assert!(
        !admin
            .deactivate_service_account(&id)
            .await
            .unwrap()
            .user_info
            .is_active
    );
    assert!(
        admin
            .activate_service_account(&id)
            .await
            .unwrap()
            .user_info
            .is_active
    );
    admin.delete_service_account(&id).await.unwrap();
    let snapshot = emulator.state();
    assert!(
        snapshot
            .service_accounts
            .iter()
            .any(|account| account.service_account_id == id && account.archived)
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn pat_lifecycle_through_typed_calls() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let pair = generate_p256().unwrap();

    let created = admin
        .create_pat(&CreatePatRequest {
            name: "typed-pat".into(),
            public_key: pair.public_key_pem.clone(),
            permission_id: None,
            external_id: Some("uid-pat".into()),
            days_valid: None,
            seconds_valid: Some(3600),
        })
        .await
        .unwrap();
    let id = created.token_id.clone();
    assert!(id.starts_with("to-"), "{id}");
    assert!(created.access_token.is_some());
    assert_eq!(
        created.linked_user_id.as_deref(),
        Some(emulator.bootstrap().admin.user_id.as_str())
    );

    assert!(
        admin
            .list_pats()
            .await
            .unwrap()
            .iter()
            .any(|pat| pat.token_id == id)
    );
    assert!(admin.get_pat(&id).await.unwrap().access_token.is_none());
    let renamed = admin
        .update_pat(
            &id,
            &UpdatePatRequest {
                name: Some("typed-pat-2".into()),
                external_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("typed-pat-2"));
    assert!(!admin.deactivate_pat(&id).await.unwrap().is_active);
    assert!(admin.activate_pat(&id).await.unwrap().is_active);
    admin.delete_pat(&id).await.unwrap();
    assert!(
        emulator
            .state()
            .pats
            .iter()
            .any(|pat| pat.token_id == id && pat.archived)
    );
    emulator.shutdown().await;
}

/// The operator's reconciler uses only the generic calls; run the same script for both kinds.
#[tokio::test]
async fn generic_calls_drive_both_kinds_the_same_way() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        let pair = generate_p256().unwrap();
        let external_id = format!("uid-generic-{kind:?}");
        let created = admin
            .create(
                kind,
                &NewIdentity {
                    name: format!("generic-{kind:?}"),
                    public_key_pem: pair.public_key_pem.clone(),
                    external_id: Some(external_id.clone()),
                    days_valid: Some(10),
                    ..NewIdentity::default()
                },
            )
            .await
            .unwrap();
        let identity = &created.identity;
        assert_eq!(identity.kind, kind);
        assert!(identity.is_active);
        assert!(identity.cred_id.is_some(), "{kind}: credId");
        assert!(!created.access_token.expose().is_empty());
        assert_eq!(
            identity.public_key_sha256(),
            Some(pair.public_key_sha256.clone()),
            "{kind}: public key matches"
        );

        let listed = admin.list(kind).await.unwrap();
        // externalId is a request field only: Dfns' documented responses never carry it.
        assert!(
            listed.iter().all(|c| c.external_id.is_none()),
            "{kind}: no externalId in listings"
        );
        let by_key = listed
            .iter()
            .find(|c| c.public_key_sha256() == identity.public_key_sha256());
        assert_eq!(by_key.map(|c| &c.id), Some(&identity.id));
        assert_eq!(admin.get(kind, &identity.id).await.unwrap().id, identity.id);

        let updated = admin
            .update(kind, &identity.id, Some(format!("renamed-{kind:?}")), None)
            .await
            .unwrap();
        assert_eq!(updated.name, Some(format!("renamed-{kind:?}")));
        assert!(
            !admin
                .deactivate(kind, &identity.id)
                .await
                .unwrap()
                .is_active
        );
        assert!(admin.activate(kind, &identity.id).await.unwrap().is_active);
        admin.delete(kind, &identity.id).await.unwrap();
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn seconds_valid_is_refused_locally_for_service_accounts() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let pair = generate_p256().unwrap();
    let error = admin
        .create(
            IdentityKind::ServiceAccount,
            &NewIdentity {
                name: "x".into(),
                public_key_pem: pair.public_key_pem,
                seconds_valid: Some(60),
                ..NewIdentity::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Misconfigured);
    assert_eq!(
        requests_to(&emulator, "POST /auth/service-accounts"),
        0,
        "nothing sent"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn minted_identity_tokens_can_read_and_sign() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        let minted = mint(&admin, kind, &format!("workload-{kind:?}")).await;
        let workload = token_client(&emulator, &minted);
        let identity = workload.identity().await.unwrap();
        // List Credentials is refused to service accounts (Dfns' caller table), allowed to PATs.
        let listed = workload.list_credentials().await;
        match kind {
            IdentityKind::ServiceAccount => assert_eq!(
                listed.unwrap_err().category(),
                dfns_client::ErrorCategory::Forbidden
            ),
            IdentityKind::PersonalAccessToken => drop(listed.unwrap()),
        }
        // Created without a validity: Dfns' reference documents no default, so no `exp`.
        assert!(identity.expires_at.is_none(), "{kind}: token without exp");
        assert!(identity.user_id.is_some(), "{kind}: token names its user");
        workload.verify_signing().await.unwrap();
        workload
            .list(IdentityKind::PersonalAccessToken)
            .await
            .unwrap();
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn permissions_are_assigned_listed_and_revoked() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let permission = admin
        .create_permission(&CreatePermissionRequest {
            name: "readers".into(),
            operations: vec!["Auth:ServiceAccounts:Read".into()],
        })
        .await
        .unwrap();
    assert!(permission.id.starts_with("pm-"));
    assert_eq!(permission.name, "readers");

    let sa = mint(&admin, IdentityKind::ServiceAccount, "assignee-sa").await;
    let pat = mint(&admin, IdentityKind::PersonalAccessToken, "assignee-pat").await;
    let for_sa = admin
        .assign_permission(&permission.id, &sa.id)
        .await
        .unwrap();
    let for_pat = admin
        .assign_permission(&permission.id, &pat.id)
        .await
        .unwrap();
    assert_eq!(for_sa.identity_id, sa.id);
    assert_eq!(for_pat.identity_id, pat.id);

    // Assignments are read back the way the operator reads them: on the identity.
    let assignment_ids = || async {
        let of = |identity: Identity| {
            identity
                .assignment_of(&permission.id)
                .map(|a| a.assignment_id.clone())
        };
        let on_sa = admin
            .get(IdentityKind::ServiceAccount, &sa.id)
            .await
            .unwrap();
        let on_pat = admin
            .get(IdentityKind::PersonalAccessToken, &pat.id)
            .await
            .unwrap();
        (of(on_sa), of(on_pat))
    };
    assert_eq!(
        assignment_ids().await,
        (Some(for_sa.id.clone()), Some(for_pat.id.clone()))
    );

    admin
        .revoke_permission(&permission.id, &for_sa.id)
        .await
        .unwrap();
    assert_eq!(assignment_ids().await, (None, Some(for_pat.id.clone())));
    emulator.shutdown().await;
}

#[tokio::test]
async fn credentials_list_includes_the_signing_credential() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let credentials = admin.list_credentials().await.unwrap();
    let ours = credentials
        .iter()
        .find(|c| c.credential_id == emulator.bootstrap().admin.cred_id)
        .expect("admin credential listed");
    assert_eq!(ours.kind, "Key");
    assert!(ours.is_active);
    emulator.shutdown().await;
}
