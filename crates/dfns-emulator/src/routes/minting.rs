//! Rules shared by service-account and PAT creation.

use crate::app::AppState;
use crate::crypto::PublicKey;
use crate::error::{ApiError, ApiResult};
use crate::state::{Caller, State};
use crate::tokens::{AUD_ACCESS, AccessClaims, AppMetadata, ISSUER, TokenKind};

pub(crate) const MAX_DAYS_VALID: i64 = 730;
/// Used when the request gives no validity (Dfns documents none).
pub(crate) const DEFAULT_DAYS_VALID: i64 = 365;
const DAY: i64 = 86_400;

/// Seconds of validity from `daysValid` (1–730) or, for PATs, `secondsValid` (wins if given).
pub(crate) fn validity_secs(days_valid: Option<i64>, seconds_valid: Option<i64>) -> ApiResult<i64> {
    if let Some(secs) = seconds_valid {
        if !(1..=MAX_DAYS_VALID * DAY).contains(&secs) {
            return Err(ApiError::bad_request(format!(
                "secondsValid must be between 1 and {} (730 days)",
                MAX_DAYS_VALID * DAY
            )));
        }
        return Ok(secs);
    }
    let days = days_valid.unwrap_or(DEFAULT_DAYS_VALID);
    if !(1..=MAX_DAYS_VALID).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "daysValid must be between 1 and {MAX_DAYS_VALID}"
        )));
    }
    Ok(days * DAY)
}

/// Current Dfns: only organization users (logged in) may create service accounts and PATs.
pub(crate) fn only_org_users(caller: &Caller, what: &str) -> ApiResult<()> {
    let who = match caller.kind {
        TokenKind::Temp => return Ok(()),
        TokenKind::ServiceAccount => "a service account token",
        TokenKind::Pat => "a personal access token",
    };
    Err(ApiError::forbidden(format!(
        "{what} can only be created by organization users logged in with their own credential; \
         {who} may not create {what}"
    )))
}

pub(crate) fn parse_public_key(pem: &str) -> ApiResult<PublicKey> {
    PublicKey::from_pem(pem).map_err(|e| ApiError::bad_request(format!("publicKey: {e}")))
}

pub(crate) fn require_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    Ok(())
}

/// The permission to assign at creation must exist and be live.
pub(crate) fn check_permission(state: &State, permission_id: &str) -> ApiResult<()> {
    match state.permissions.get(permission_id) {
        Some(p) if !p.is_archived => Ok(()),
        Some(_) => Err(ApiError::bad_request(format!(
            "permission {permission_id} is archived"
        ))),
        None => Err(ApiError::not_found(format!(
            "permission {permission_id} not found"
        ))),
    }
}

pub(crate) struct TokenSubject<'a> {
    pub kind: TokenKind,
    pub user_id: &'a str,
    pub username: &'a str,
    pub token_id: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
}

pub(crate) fn sign_access_token(app: &AppState, org_id: &str, s: TokenSubject<'_>) -> String {
    app.keys.sign(&AccessClaims {
        iss: ISSUER.to_owned(),
        aud: AUD_ACCESS.to_owned(),
        sub: org_id.to_owned(),
        jti: s.token_id.to_owned(),
        iat: s.issued_at,
        exp: s.expires_at,
        username: s.username.to_owned(),
        app_metadata: AppMetadata {
            user_id: s.user_id.to_owned(),
            org_id: org_id.to_owned(),
            token_kind: s.kind,
            token_id: Some(s.token_id.to_owned()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_valid_is_bounded_to_1_through_730() {
        assert!(validity_secs(Some(0), None).is_err());
        assert!(validity_secs(Some(731), None).is_err());
        assert_eq!(validity_secs(Some(1), None).unwrap(), DAY);
        assert_eq!(validity_secs(Some(730), None).unwrap(), 730 * DAY);
        assert_eq!(validity_secs(None, None).unwrap(), DEFAULT_DAYS_VALID * DAY);
    }

    #[test]
    fn seconds_valid_wins_over_days_valid() {
        assert_eq!(validity_secs(Some(5), Some(60)).unwrap(), 60);
        assert!(validity_secs(None, Some(0)).is_err());
    }
}
