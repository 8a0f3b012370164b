//! JSON shapes of Dfns responses, built from state.

use serde_json::{Value, json};

use crate::profile::PublicKeyForm;
use crate::state::State;
use crate::state::model::{AccessToken, Assignment, Credential, Permission, User};

pub(crate) fn permission_assignments(state: &State, identity_id: &str) -> Vec<Value> {
    state
        .assignments_of(identity_id)
        .into_iter()
        .map(|(a, p)| {
            json!({
                "permissionName": p.name,
                "permissionId": p.id,
                "assignmentId": a.id,
                "operations": p.operations,
            })
        })
        .collect()
}

/// `accessTokens[]` entry of a service account, or a PAT. `access_token` only on create.
/// `linkedAppId`, `publicKey` and `externalId` take the form the profile says.
pub(crate) fn token(state: &State, t: &AccessToken, access_token: Option<&str>) -> Value {
    let profile = &state.profile;
    let cred_id = state
        .credentials
        .get(&t.cred_uuid)
        .map(|c| c.cred_id.clone())
        .unwrap_or_default();
    let public_key = match profile.public_key_form {
        PublicKeyForm::Pem => t.public_key_pem.as_str(),
        PublicKeyForm::Fingerprint => t.public_key_fingerprint.as_str(),
        PublicKeyForm::Empty => "",
    };
    let linked_app_id = if profile.empty_linked_app_id {
        ""
    } else {
        state.app_id.as_str()
    };
    let mut v = json!({
        "dateCreated": t.date_created,
        "credId": cred_id,
        "isActive": t.is_active,
        "kind": t.kind,
        "linkedUserId": t.linked_user_id,
        "linkedAppId": linked_app_id,
        "name": t.name,
        "orgId": state.org_id,
        "permissionAssignments": permission_assignments(state, &t.token_id),
        "publicKey": public_key,
        "tokenId": t.token_id,
    });
    if profile.external_id_in_responses {
        v["externalId"] = json!(t.external_id);
    }
    if let Some(secret) = access_token {
        v["accessToken"] = Value::String(secret.to_owned());
    }
    v
}

pub(crate) fn user_info(state: &State, u: &User) -> Value {
    let credential_uuid = u
        .token_id
        .as_ref()
        .and_then(|t| state.tokens.get(t))
        .map(|t| t.cred_uuid.clone())
        .or_else(|| {
            state
                .active_credentials(&crate::state::model::Identity::User(u.user_id.clone()))
                .first()
                .map(|c| c.uuid.clone())
        })
        .unwrap_or_default();
    let mut v = json!({
        "username": u.username,
        "name": u.name,
        "userId": u.user_id,
        "kind": "CustomerEmployee",
        "credentialUuid": credential_uuid,
        "orgId": state.org_id,
        "permissions": state.assigned_operations(&u.user_id),
        "isActive": u.is_active,
        "isServiceAccount": u.is_service_account,
        "isRegistered": true,
        "permissionAssignments": permission_assignments(state, &u.user_id),
    });
    if state.profile.external_id_in_responses {
        v["externalId"] = json!(u.external_id);
    }
    v
}

pub(crate) fn service_account(state: &State, u: &User, access_token: Option<&str>) -> Value {
    let tokens: Vec<Value> = u
        .token_id
        .as_ref()
        .and_then(|t| state.tokens.get(t))
        .map(|t| token(state, t, access_token))
        .into_iter()
        .collect();
    json!({ "userInfo": user_info(state, u), "accessTokens": tokens })
}

pub(crate) fn permission(p: &Permission) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "operations": p.operations,
        "status": "Active",
        "isImmutable": p.is_immutable,
        "isArchived": p.is_archived,
        "dateCreated": p.date_created,
        "dateUpdated": p.date_updated,
    })
}

pub(crate) fn assignment(a: &Assignment) -> Value {
    json!({
        "id": a.id,
        "permissionId": a.permission_id,
        "identityId": a.identity_id,
        "isImmutable": a.is_immutable,
        "dateCreated": a.date_created,
        "dateUpdated": a.date_created,
    })
}

pub(crate) fn credential(c: &Credential) -> Value {
    json!({
        "kind": "Key",
        "credentialId": c.cred_id,
        "credentialUuid": c.uuid,
        "dateCreated": c.date_created,
        "isActive": c.is_active,
        "name": c.name,
        "publicKey": c.public_key_pem,
        "relyingPartyId": "",
        "origin": "",
    })
}

/// `allowCredentials` / `supportedCredentialKinds` part of a signing challenge.
pub(crate) fn challenge_body(
    challenge: &str,
    challenge_identifier: &str,
    cred_ids: &[String],
) -> Value {
    let keys: Vec<Value> = cred_ids
        .iter()
        .map(|id| json!({ "type": "public-key", "id": id }))
        .collect();
    json!({
        "challenge": challenge,
        "challengeIdentifier": challenge_identifier,
        "allowCredentials": { "key": keys, "passwordProtectedKey": [], "webauthn": [] },
        "supportedCredentialKinds": [
            { "kind": "Key", "factor": "either", "requiresSecondFactor": false }
        ],
        "userVerification": "required",
        "attestation": "direct",
        "externalAuthenticationUrl": "",
        "rp": { "id": "localhost", "name": "Dfns Emulator" },
    })
}

/// Pagination over an ordered list: `paginationToken` is the offset of the next page.
pub(crate) fn page(items: Vec<Value>, limit: Option<usize>, token: Option<&str>) -> Value {
    let start = token
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let end = (start + limit).min(items.len());
    let mut v = json!({ "items": items[start..end] });
    if end < items.len() {
        v["nextPageToken"] = Value::String(end.to_string());
    }
    v
}
