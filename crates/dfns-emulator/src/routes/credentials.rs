//! `/auth/credentials`: the caller's Key credentials — list, init (challenge), create with Key
//! attestation, activate, deactivate, delete. Whether service accounts and PATs may manage
//! their own credentials is where Dfns' pages disagree: the reference pages' caller tables say
//! no (the default), the key-rotation guide says yes (`IdentityKeyRotation::Allowed`), so a
//! token keeps working with a new key.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::Shared;
use crate::auth::{Authenticated, Signed};
use crate::crypto::{PublicKey, decode_b64url};
use crate::error::{ApiError, ApiResult};
use crate::json::parse_body;
use crate::profile::IdentityKeyRotation;
use crate::state::model::{ChallengePurpose, Credential};
use crate::state::{Caller, not_found};
use crate::tokens::TokenKind;
use crate::{clock, ids};

use super::{challenges, views};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InitBody {
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    credential_kind: String,
    credential_info: CredentialInfo,
    credential_name: String,
    challenge_identifier: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CredentialInfo {
    cred_id: String,
    client_data: String,
    attestation_data: String,
}

/// Decoded `attestationData`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attestation {
    public_key: String,
    signature: String,
    #[serde(default)]
    algorithm: Option<String>,
}

/// What the new key signs: exactly these two keys in this order, compact JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Fingerprint<'a> {
    client_data_hash: &'a str,
    public_key: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UuidBody {
    credential_uuid: String,
}

/// 403 as Dfns answers a caller kind its caller table marks ❌ for `endpoint`.
fn refused_caller(caller: &Caller, endpoint: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{} is not allowed to call {endpoint}: this endpoint is for organization and \
         delegated users",
        caller.describe()
    ))
    .with_details(json!({ "endpoint": endpoint }))
}

/// The credential endpoints other than List refuse service-account and PAT callers unless
/// the profile follows the rotation guide.
fn require_rotation_caller(app: &Shared, caller: &Caller, endpoint: &str) -> ApiResult<()> {
    let identity_caller = matches!(caller.kind, TokenKind::ServiceAccount | TokenKind::Pat);
    let refused = app.store.lock().profile.identity_key_rotation == IdentityKeyRotation::Refused;
    if identity_caller && refused {
        return Err(refused_caller(caller, endpoint));
    }
    Ok(())
}

pub(crate) async fn list(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    // List Credentials: Organization User ✅, Delegated User ✅, Service Account ❌ (PATs act
    // for their user and may list).
    if caller.kind == TokenKind::ServiceAccount && !state.profile.service_accounts_list_credentials
    {
        return Err(refused_caller(&caller, "List Credentials"));
    }
    let mut creds: Vec<&Credential> = state
        .credentials
        .values()
        .filter(|c| c.owner == caller.identity)
        .collect();
    creds.sort_by_key(|c| c.seq);
    let items: Vec<Value> = creds.into_iter().map(views::credential).collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn init(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_rotation_caller(&app, &caller, "Create Credential Challenge")?;
    let body: InitBody = parse_body(&body)?;
    if body.kind != "Key" {
        return Err(ApiError::bad_request(format!(
            "credential kind {:?} is not supported by the emulator; use Key",
            body.kind
        )));
    }
    let now = clock::unix_now();
    let mut state = app.store.lock();
    let display = state
        .users
        .get(&caller.user_id)
        .map(|u| u.username.clone())
        .unwrap_or_else(|| caller.user_id.clone());
    let (challenge, identifier) = challenges::issue(
        &app,
        &mut state,
        ChallengePurpose::CredentialCreate {
            identity: caller.identity.clone(),
        },
        app.challenge_ttl_secs(),
        now,
    );
    Ok(Json(json!({
        "kind": "Key",
        "user": { "id": caller.identity.id(), "displayName": display, "name": display },
        "challengeIdentifier": identifier,
        "challenge": challenge,
        "rp": { "id": "localhost", "name": "Dfns Emulator" },
        "attestation": "direct",
        "pubKeyCredParams": [
            { "type": "public-key", "alg": -7 },
            { "type": "public-key", "alg": -8 },
            { "type": "public-key", "alg": -257 }
        ],
    })))
}

pub(crate) async fn create(State(app): State<Shared>, signed: Signed) -> ApiResult<Json<Value>> {
    let caller = signed.caller;
    require_rotation_caller(&app, &caller, "Create Credential")?;
    let body: CreateBody = parse_body(&signed.body)?;
    if body.credential_kind != "Key" {
        return Err(ApiError::bad_request(
            "only credentialKind \"Key\" is supported by the emulator",
        ));
    }
    if body.credential_info.cred_id.is_empty()
        || decode_b64url(&body.credential_info.cred_id).is_err()
    {
        return Err(ApiError::bad_request(
            "credentialInfo.credId must be a base64url string",
        ));
    }
    let now = clock::unix_now();
    let stored = challenges::named_by(&app, &body.challenge_identifier, now)?;
    let ((), challenge) =
        challenges::take(
            &mut app.store.lock(),
            &stored,
            now,
            |purpose| match purpose {
                ChallengePurpose::CredentialCreate { identity } if identity == caller.identity => {
                    Ok(())
                }
                _ => Err(ApiError::unauthorized(
                    "challenge was not issued for this credential creation",
                )),
            },
        )?;

    // Attestation: the new key signs {"clientDataHash","publicKey"} (hex signature).
    let attestation_bytes = decode_b64url(&body.credential_info.attestation_data)
        .map_err(|e| ApiError::bad_request(format!("attestationData: {e}")))?;
    let attestation: Attestation = serde_json::from_slice(&attestation_bytes).map_err(|e| {
        ApiError::bad_request(format!("attestationData is not the expected JSON: {e}"))
    })?;
    let key = PublicKey::from_pem(&attestation.public_key)
        .map_err(|e| ApiError::bad_request(format!("attestationData.publicKey: {e}")))?;
    let client_data = decode_b64url(&body.credential_info.client_data)
        .map_err(|e| ApiError::bad_request(format!("clientData: {e}")))?;
    let client_data_hash = hex::encode(Sha256::digest(&client_data));
    let fingerprint = serde_json::to_vec(&Fingerprint {
        client_data_hash: &client_data_hash,
        public_key: &attestation.public_key,
    })
    .expect("fingerprint serializes");
    let signature = hex::decode(attestation.signature.trim())
        .map_err(|_| ApiError::bad_request("attestationData.signature must be hex"))?;
    key.verify(&fingerprint, &signature, attestation.algorithm.as_deref())
        .map_err(|e| ApiError::unauthorized(format!("invalid key attestation: {e}")))?;
    // clientData must be a key.create for the issued challenge. The "signature" over it is the
    // attestation above, so check its content only.
    let parsed: Value = serde_json::from_slice(&client_data)
        .map_err(|e| ApiError::bad_request(format!("clientData is not JSON: {e}")))?;
    if parsed["type"] != "key.create" || parsed["challenge"] != challenge.as_str() {
        return Err(ApiError::unauthorized(
            "clientData must have type \"key.create\" and the issued challenge",
        ));
    }

    let mut state = app.store.lock();
    if state.cred_ids.contains_key(&body.credential_info.cred_id) {
        return Err(ApiError::conflict(
            "a credential with this credId already exists",
        ));
    }
    let uuid = ids::new_id("cr");
    state.insert_credential(Credential {
        seq: 0,
        uuid: uuid.clone(),
        cred_id: body.credential_info.cred_id.clone(),
        owner: caller.identity.clone(),
        name: body.credential_name,
        public_key_pem: attestation.public_key,
        key: Arc::new(key),
        is_active: true,
        date_created: clock::iso_now(),
    });
    let cred = state
        .credentials
        .get(&uuid)
        .ok_or_else(|| not_found("credential", &uuid))?;
    tracing::info!(credential = %uuid, owner = %caller.identity.id(), "credential created");
    Ok(Json(views::credential(cred)))
}

pub(crate) async fn activate(State(app): State<Shared>, signed: Signed) -> ApiResult<Json<Value>> {
    set_active(&app, signed, true)
}

pub(crate) async fn deactivate(
    State(app): State<Shared>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    set_active(&app, signed, false)
}

fn set_active(app: &Shared, signed: Signed, active: bool) -> ApiResult<Json<Value>> {
    let endpoint = if active {
        "Activate Credential"
    } else {
        "Deactivate Credential"
    };
    require_rotation_caller(app, &signed.caller, endpoint)?;
    let body: UuidBody = parse_body(&signed.body)?;
    let mut state = app.store.lock();
    let cred = state
        .credentials
        .get_mut(&body.credential_uuid)
        .filter(|c| c.owner == signed.caller.identity)
        .ok_or_else(|| not_found("credential", &body.credential_uuid))?;
    cred.is_active = active;
    tracing::info!(credential = %body.credential_uuid, active, "credential activation changed");
    Ok(Json(json!({ "message": "success" })))
}

/// `DELETE /auth/credentials/{credentialUuid}` → `{}`. The credential stops signing and leaves
/// the lists; its credId stays taken (a new credential cannot reuse it).
pub(crate) async fn delete(
    State(app): State<Shared>,
    Path(uuid): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    require_rotation_caller(&app, &signed.caller, "Delete Credential")?;
    let _: super::service_accounts::EmptyBody = parse_body(&signed.body)?;
    let mut state = app.store.lock();
    state
        .credentials
        .get(&uuid)
        .filter(|c| c.owner == signed.caller.identity)
        .ok_or_else(|| not_found("credential", &uuid))?;
    state.credentials.remove(&uuid);
    tracing::info!(credential = %uuid, "credential deleted");
    Ok(Json(json!({})))
}
