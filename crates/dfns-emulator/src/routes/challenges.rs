//! Signing challenges shared by login, user actions and credential creation: issuing one (a
//! random challenge kept in the store, named by a signed identifier) and taking it back exactly
//! once.

use serde::Deserialize;
use serde_json::Value;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::json::parse_body;
use crate::state::State;
use crate::state::model::{Challenge, ChallengePurpose, Identity};
use crate::tokens::AUD_CHALLENGE;
use crate::user_actions::{Factor, verify_assertion};

use super::views;

/// The body of `POST /auth/login` and `POST /auth/action`: a Key credential's answer to a
/// challenge.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignedChallenge {
    challenge_identifier: String,
    first_factor: Factor,
    #[serde(default)]
    second_factor: Option<Value>,
}

/// Stores a new challenge for `purpose`, valid for `ttl_secs`. Returns the challenge and the
/// identifier the answer must name.
pub(crate) fn issue(
    app: &AppState,
    state: &mut State,
    purpose: ChallengePurpose,
    ttl_secs: i64,
    now: i64,
) -> (String, String) {
    let challenge = ids::new_challenge();
    let jti = ids::new_id("ch");
    let identifier = app.keys.handle(AUD_CHALLENGE, &jti, now, ttl_secs);
    state.insert_challenge(
        jti,
        Challenge {
            purpose,
            challenge: challenge.clone(),
            expires_at: now + ttl_secs,
        },
        now,
    );
    (challenge, identifier)
}

/// Issues a challenge for `signer` to sign with one of its active Key credentials: the answer
/// to `POST /auth/login/init` and `POST /auth/action/init`.
pub(crate) fn issue_to_signer(
    app: &AppState,
    state: &mut State,
    signer: &Identity,
    purpose: ChallengePurpose,
    ttl_secs: i64,
    now: i64,
) -> Value {
    let cred_ids: Vec<String> = state
        .active_credentials(signer)
        .into_iter()
        .map(|c| c.cred_id.clone())
        .collect();
    let (challenge, identifier) = issue(app, state, purpose, ttl_secs, now);
    views::challenge_body(&challenge, &identifier, &cred_ids)
}

/// The store key of the challenge a signed `identifier` names.
pub(crate) fn named_by(app: &AppState, identifier: &str, now: i64) -> ApiResult<String> {
    app.keys
        .verify_handle(identifier, AUD_CHALLENGE, now)
        .map(|handle| handle.jti)
        .map_err(|_| ApiError::unauthorized("challengeIdentifier is invalid or expired"))
}

/// Takes the challenge stored under `stored` out of the store (it is single-use whatever the
/// outcome), lets `accept` check what it was issued for, and refuses it once expired. Returns
/// what `accept` returned and the challenge the client must have signed.
pub(crate) fn take<T>(
    state: &mut State,
    stored: &str,
    now: i64,
    accept: impl FnOnce(ChallengePurpose) -> ApiResult<T>,
) -> ApiResult<(T, String)> {
    let challenge = state
        .challenges
        .remove(stored)
        .ok_or_else(|| ApiError::unauthorized("challenge is unknown or has already been used"))?;
    let accepted = accept(challenge.purpose)?;
    if challenge.expires_at <= now {
        return Err(ApiError::unauthorized("challenge has expired"));
    }
    Ok((accepted, challenge.challenge))
}

/// Checks a signed challenge answer (`POST /auth/login`, `POST /auth/action`): the challenge is
/// taken as [`take`] does, `accept` also names who must have signed it, and the assertion must
/// come from an active Key credential of that signer (`not_signers` otherwise) and sign the
/// issued challenge. Returns what `accept` took from the challenge's purpose.
pub(crate) fn redeem<T>(
    app: &AppState,
    body: &[u8],
    now: i64,
    accept: impl FnOnce(ChallengePurpose) -> ApiResult<(T, Identity)>,
    not_signers: &'static str,
) -> ApiResult<T> {
    let body: SignedChallenge = parse_body(body)?;
    if body.second_factor.is_some() {
        return Err(ApiError::bad_request(
            "secondFactor is not supported by the emulator",
        ));
    }
    let assertion = body.first_factor.require_key()?;
    let stored = named_by(app, &body.challenge_identifier, now)?;

    let (accepted, challenge, signer_key) = {
        let mut state = app.store.lock();
        let ((accepted, signer), challenge) = take(&mut state, &stored, now, accept)?;
        let cred = state
            .credential_by_cred_id(&assertion.cred_id)
            .filter(|c| c.is_active && c.owner == signer)
            .ok_or_else(|| ApiError::unauthorized(not_signers))?;
        (accepted, challenge, cred.key.clone())
    };
    // Signature checks run outside the lock: they are the expensive part.
    verify_assertion(
        &signer_key,
        &assertion.client_data,
        &assertion.signature,
        assertion.algorithm.as_deref(),
        "key.get",
        &challenge,
    )?;
    Ok(accepted)
}
