//! Key rotation by the identity itself (Dfns' credential rotation guide): a service account or
//! PAT registers a new Key credential signed with its current key, signs with the new one under
//! the same token, and deactivates the old one. Where Dfns refuses identities their own
//! credentials (the reference pages' reading, the emulator's default), the refusal is typed and
//! nothing is registered.

use dfns_client::types::user_action::Challenge;
use dfns_client::{
    AuthMode, DfnsClient, ErrorCategory, IdentityKind, KeySigner, NewKeyCredential, PrivateKey,
    generate_p256, new_cred_id,
};
use dfns_emulator::{EmulatorConfig, IdentityKeyRotation, Profile, RunningEmulator};
use dfns_test_support::dfns::*;
use serde_json::json;

async fn emulator_with(rotation: IdentityKeyRotation) -> RunningEmulator {
    start_emulator_with(EmulatorConfig {
        profile: Profile {
            identity_key_rotation: rotation,
            ..Profile::strict()
        },
        ..EmulatorConfig::default()
    })
    .await
}

/// The `cr-…` uuid of the credential signing as `cred_id`.
fn credential_uuid(emulator: &RunningEmulator, cred_id: &str) -> String {
    emulator
        .state()
        .credentials
        .into_iter()
        .find(|credential| credential.credential_id == cred_id)
        .map(|credential| credential.credential_uuid)
        .unwrap_or_else(|| panic!("no credential {cred_id}"))
}

/// Asks Dfns for a user action signed with `key` as `cred_id`, without the client's own check
/// that the credential is allowed: what Dfns itself answers to that key (HTTP status).
async fn raw_user_action_status(
    emulator: &RunningEmulator,
    minted: &Minted,
    cred_id: &str,
    private_key_pem: &str,
) -> u16 {
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", emulator.api_url());
    let init: Challenge = http
        .post(url("/auth/action/init"))
        .bearer_auth(minted.token.expose())
        .json(&json!({
            "userActionPayload": "",
            "userActionHttpMethod": "GET",
            "userActionHttpPath": "/auth/pats",
            "userActionServerKind": "Api",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assertion = KeySigner::from_pem(cred_id, private_key_pem)
        .unwrap()
        .assert(&init.challenge);
    let signed = json!({
        "challengeIdentifier": init.challenge_identifier,
        "firstFactor": { "kind": "Key", "credentialAssertion": assertion },
    });
    http.post(url("/auth/action"))
        .bearer_auth(minted.token.expose())
        .json(&signed)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn client_as(emulator: &RunningEmulator, minted: &Minted, cred_id: &str, key: &str) -> DfnsClient {
    let signer = KeySigner::from_pem(cred_id, key).unwrap();
    DfnsClient::new(config_for(
        emulator,
        AuthMode::Token(minted.token.clone()),
        signer,
    ))
    .unwrap()
}

#[tokio::test]
async fn an_identity_rotates_its_key_under_the_same_token_and_the_old_key_stops_signing() {
    let emulator = emulator_with(IdentityKeyRotation::Allowed).await;
    let admin = admin_client(&emulator);
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        let minted = mint(&admin, kind, &format!("rotating-{kind:?}")).await;
        let old = token_client(&emulator, &minted);
        let old_uuid = credential_uuid(&emulator, &minted.cred_id);

        let new_pair = generate_p256().unwrap();
        let new_key = PrivateKey::from_pem(new_pair.private_key_pem.expose()).unwrap();
        let new_cred_id = new_cred_id();
        let registered = old
            .register_key_credential(&NewKeyCredential {
                cred_id: &new_cred_id,
                key: &new_key,
                name: "rotated",
            })
            .await
            .unwrap_or_else(|e| panic!("{kind:?} registers a new key: {e}"));
        assert_eq!(registered.credential_id, new_cred_id);
        assert!(registered.is_active);
        let new_uuid = registered
            .credential_uuid
            .clone()
            .expect("the created credential's uuid");
        assert_eq!(credential_uuid(&emulator, &new_cred_id), new_uuid);

        // The same token, the new key: signing works, also for a real write.
        let new = client_as(
            &emulator,
            &minted,
            &new_cred_id,
            new_pair.private_key_pem.expose(),
        );
        new.verify_signing()
            .await
            .unwrap_or_else(|e| panic!("{kind:?} signs with the new key: {e}"));
        new.deactivate_key_credential(&old_uuid)
            .await
            .unwrap_or_else(|e| panic!("{kind:?} deactivates its old key: {e}"));

        let state = emulator.state();
        let old_state = state
            .credentials
            .iter()
            .find(|c| c.credential_uuid == old_uuid)
            .unwrap();
        assert!(!old_state.is_active, "{kind:?}: the old credential is off");
        // Dfns refuses the old key (not just the client's allow-list check) ...
        let status = raw_user_action_status(
            &emulator,
            &minted,
            &minted.cred_id,
            minted.private_key_pem.expose(),
        )
        .await;
        assert!(
            status == 401 || status == 403,
            "{kind:?}: old key got {status}"
        );
        // ... and still accepts the new one with the same token.
        assert_eq!(
            raw_user_action_status(
                &emulator,
                &minted,
                &new_cred_id,
                new_pair.private_key_pem.expose()
            )
            .await,
            200
        );
        let refused = old.verify_signing().await.unwrap_err();
        assert_eq!(
            refused.category(),
            ErrorCategory::Misconfigured,
            "{refused}"
        );
    }
}

#[tokio::test]
async fn where_dfns_refuses_identities_their_credentials_rotation_fails_typed_and_registers_nothing()
 {
    // The default profile: the reference pages' caller tables (SA ❌, PAT ❌).
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        let minted = mint(&admin, kind, &format!("refused-{kind:?}")).await;
        let client = token_client(&emulator, &minted);
        let before = emulator.state().credentials;
        let new_pair = generate_p256().unwrap();
        let new_key = PrivateKey::from_pem(new_pair.private_key_pem.expose()).unwrap();
        let new_cred_id = new_cred_id();

        let error = client
            .register_key_credential(&NewKeyCredential {
                cred_id: &new_cred_id,
                key: &new_key,
                name: "rotated",
            })
            .await
            .unwrap_err();
        assert_eq!(
            error.category(),
            ErrorCategory::KeyRotationRefused,
            "{kind:?}: {error}"
        );
        assert!(error.to_string().contains("key rotation"), "{error}");
        assert_eq!(
            emulator.state().credentials,
            before,
            "{kind:?}: nothing registered"
        );

        let old_uuid = credential_uuid(&emulator, &minted.cred_id);
        let error = client
            .deactivate_key_credential(&old_uuid)
            .await
            .unwrap_err();
        assert_eq!(
            error.category(),
            ErrorCategory::KeyRotationRefused,
            "{error}"
        );
        // The identity keeps working with its key.
        client.verify_signing().await.unwrap();
    }
}

#[tokio::test]
async fn a_credential_id_already_taken_is_a_conflict_and_registers_nothing() {
    // Credential ids are chosen by the client; a clash with an existing one must not be
    // mistaken for a refusal of rotation.
    let emulator = emulator_with(IdentityKeyRotation::Allowed).await;
    let admin = admin_client(&emulator);
    let minted = mint(&admin, IdentityKind::ServiceAccount, "reuse").await;
    let client = token_client(&emulator, &minted);
    let before = emulator.state().credentials;
    let new_pair = generate_p256().unwrap();
    let new_key = PrivateKey::from_pem(new_pair.private_key_pem.expose()).unwrap();
    let error = client
        .register_key_credential(&NewKeyCredential {
            cred_id: &minted.cred_id,
            key: &new_key,
            name: "taken",
        })
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Conflict, "{error}");
    assert_eq!(emulator.state().credentials, before);
}
