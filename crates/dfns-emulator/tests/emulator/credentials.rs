//! Credentials: Key attestation, rotation of a service account's key without a new token (the
//! rotation guide's reading, `IdentityKeyRotation::Allowed`), delete.

use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dfns_emulator::{IdentityKeyRotation, Profile};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The strict profile, except that service accounts and PATs may manage their credentials.
pub fn rotation_allowed() -> Profile {
    Profile {
        identity_key_rotation: IdentityKeyRotation::Allowed,
        ..Profile::strict()
    }
}

/// `POST /auth/credentials/init` for a Key credential; returns the challenge.
pub async fn key_credential_challenge(client: &Client) -> Value {
    let body = Body::Json(json!({ "kind": "Key" }));
    client
        .send(Method::POST, "/auth/credentials/init", &body, None)
        .await
        .ok()
}

/// Builds `POST /auth/credentials` as the Dfns SDKs do for a new Key credential.
pub fn key_credential_body(init: &Value, new_key: &TestKey, cred_id: &str, tamper: bool) -> Value {
    let client_data = json!({ "type": "key.create", "challenge": init["challenge"] }).to_string();
    let hash = hex::encode(Sha256::digest(client_data.as_bytes()));
    let pem = new_key.public_pem();
    let fingerprint = json!({ "clientDataHash": hash, "publicKey": pem }).to_string();
    let mut signature = new_key.sign(fingerprint.as_bytes());
    if tamper {
        signature[5] ^= 0xff;
    }
    let attestation =
        json!({ "publicKey": pem, "signature": hex::encode(signature), "algorithm": "SHA256" })
            .to_string();
    json!({
        "credentialKind": "Key",
        "credentialInfo": {
            "credId": cred_id,
            "clientData": URL_SAFE_NO_PAD.encode(client_data),
            "attestationData": URL_SAFE_NO_PAD.encode(attestation),
        },
        "credentialName": "rotated",
        "challengeIdentifier": init["challengeIdentifier"],
    })
}

#[tokio::test]
async fn under_the_rotation_guide_a_service_account_rotates_its_key_and_keeps_its_token() {
    let emu = start_profile(rotation_allowed()).await;
    let admin = admin(&emu).await;
    let (sa, old) = service_account_with_operations(
        &admin,
        "rotating",
        &["Auth:ServiceAccounts:Read", "Auth:ServiceAccounts:Update"],
    )
    .await;
    let sa_id = sa["userInfo"]["userId"].as_str().unwrap();
    let old_uuid = sa["userInfo"]["credentialUuid"]
        .as_str()
        .unwrap()
        .to_owned();

    let new_key = TestKey::ed25519();
    let init = key_credential_challenge(&old).await;
    let new_cred_id = URL_SAFE_NO_PAD.encode(b"new-credential-id");
    let created = old
        .post(
            "/auth/credentials",
            key_credential_body(&init, &new_key, &new_cred_id, false),
        )
        .await
        .ok();
    assert_eq!(created["credentialId"], new_cred_id.as_str());
    assert_eq!(created["isActive"], true);

    let new = old.with(&old.token, &new_cred_id, &new_key);
    new.put(
        "/auth/credentials/deactivate",
        json!({ "credentialUuid": old_uuid }),
    )
    .await
    .ok();
    // The old key no longer signs; the new one does, with the same token.
    old.sign_action(&Method::PUT, "/x", "", &Default::default())
        .await
        .error(StatusCode::UNAUTHORIZED);
    new.put(
        &format!("/auth/service-accounts/{sa_id}"),
        json!({ "name": "still-works" }),
    )
    .await
    .ok();

    // (List Credentials stays refused to service accounts: read the emulator's state.)
    let active: Vec<bool> = emu
        .state()
        .credentials
        .iter()
        .filter(|c| c.owner_id == sa_id)
        .map(|c| c.is_active)
        .collect();
    assert_eq!(active, vec![false, true]);
    // Re-activating the old one works (idempotent shape: {"message": "success"}).
    let r = new
        .put(
            "/auth/credentials/activate",
            json!({ "credentialUuid": old_uuid }),
        )
        .await
        .ok();
    assert_eq!(r["message"], "success");
}

#[tokio::test]
async fn bad_attestation_reused_challenge_and_duplicate_cred_id_are_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let new_key = TestKey::p256();
    let init = key_credential_challenge(&admin).await;
    admin
        .post(
            "/auth/credentials",
            key_credential_body(&init, &new_key, "Y3JlZC0x", true),
        )
        .await
        .error(StatusCode::UNAUTHORIZED);
    // The challenge was used by the failed attempt.
    admin
        .post(
            "/auth/credentials",
            key_credential_body(&init, &new_key, "Y3JlZC0x", false),
        )
        .await
        .error(StatusCode::UNAUTHORIZED);
    let init = key_credential_challenge(&admin).await;
    let dup = emu.bootstrap().admin.cred_id.clone();
    admin
        .post(
            "/auth/credentials",
            key_credential_body(&init, &new_key, &dup, false),
        )
        .await
        .error(StatusCode::CONFLICT);
}

#[tokio::test]
async fn credentials_of_others_cannot_be_deactivated() {
    let emu = start_profile(rotation_allowed()).await;
    let admin = admin(&emu).await;
    let (sa, sa_client) = create_service_account(&admin, "sa", &TestKey::p256(), json!({})).await;
    let admin_cred = emu.state().credentials[0].credential_uuid.clone();
    sa_client
        .put(
            "/auth/credentials/deactivate",
            json!({ "credentialUuid": admin_cred }),
        )
        .await
        .error(StatusCode::NOT_FOUND);
    let sa_cred = sa["userInfo"]["credentialUuid"].as_str().unwrap();
    admin
        .put(
            "/auth/credentials/deactivate",
            json!({ "credentialUuid": sa_cred }),
        )
        .await
        .error(StatusCode::NOT_FOUND);
    assert!(emu.state().credentials.iter().all(|c| c.is_active));
}

#[tokio::test]
async fn only_key_credentials_are_supported() {
    let emu = start().await;
    let admin = admin(&emu).await;
    admin
        .send(
            Method::POST,
            "/auth/credentials/init",
            &Body::Json(json!({ "kind": "Fido2" })),
            None,
        )
        .await
        .error(StatusCode::BAD_REQUEST);
}
