//! Rules shared by service-account and PAT creation.

use crate::app::AppState;
use crate::crypto::PublicKey;
use crate::error::{ApiError, ApiResult};
use crate::state::{Caller, State};
use crate::tokens::{AUD_ACCESS, AccessClaims, AppMetadata, ISSUER, TokenKind};

pub(crate) const MAX_DAYS_VALID: i64 = 730;
const DAY: i64 = 86_400;

/// Seconds of validity from `daysValid` (1–730) or, for PATs, `secondsValid` (wins if given).
/// Neither given: `default_days` (the profile's), and `None` there means no expiry at all —
/// Dfns documents no default, and a token without `exp` is what clients must cope with.
/// `day_secs` is the length of one of those days: 86 400 except in tests that shrink it
/// (`EmulatorConfig::seconds_per_valid_day`); `secondsValid` and its bound stay real seconds.
pub(crate) fn validity_secs(
    days_valid: Option<i64>,
    seconds_valid: Option<i64>,
    default_days: Option<u32>,
    day_secs: i64,
) -> ApiResult<Option<i64>> {
    if let Some(secs) = seconds_valid {
        if !(1..=MAX_DAYS_VALID * DAY).contains(&secs) {
            return Err(ApiError::bad_request(format!(
                "secondsValid must be between 1 and {} (730 days)",
                MAX_DAYS_VALID * DAY
            )));
        }
        return Ok(Some(secs));
    }
    let Some(days) = days_valid.or(default_days.map(i64::from)) else {
        return Ok(None);
    };
    if !(1..=MAX_DAYS_VALID).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "daysValid must be between 1 and {MAX_DAYS_VALID}"
        )));
    }
    Ok(Some(days * day_secs))
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

/// The `SHA256:` form of a new service account's or PAT's key, kept for the `publicKey` form
/// the profile may ask for.
pub(crate) fn fingerprint(key: &PublicKey) -> ApiResult<String> {
    crate::fingerprint::sha256_fingerprint(key).map_err(ApiError::bad_request)
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
    pub expires_at: Option<i64>,
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
        assert!(validity_secs(Some(0), None, None, DAY).is_err());
        assert!(validity_secs(Some(731), None, None, DAY).is_err());
        assert_eq!(validity_secs(Some(1), None, None, DAY).unwrap(), Some(DAY));
        assert_eq!(
            validity_secs(Some(730), None, None, DAY).unwrap(),
            Some(730 * DAY)
        );
    }

    #[test]
    fn no_validity_given_means_the_profile_default_or_no_expiry() {
        assert_eq!(validity_secs(None, None, None, DAY).unwrap(), None);
        assert_eq!(
            validity_secs(None, None, Some(365), DAY).unwrap(),
            Some(365 * DAY)
        );
        assert_eq!(
            validity_secs(Some(2), None, Some(365), DAY).unwrap(),
            Some(2 * DAY)
        );
    }

    #[test]
    fn a_shortened_day_scales_days_valid_but_not_seconds_valid() {
        assert_eq!(validity_secs(Some(2), None, None, 5).unwrap(), Some(10));
        assert_eq!(validity_secs(None, None, Some(3), 5).unwrap(), Some(15));
        assert_eq!(validity_secs(Some(2), Some(7), None, 5).unwrap(), Some(7));
        assert!(validity_secs(Some(731), None, None, 5).is_err());
    }

    #[test]
    fn seconds_valid_wins_over_days_valid() {
        assert_eq!(
            validity_secs(Some(5), Some(60), None, DAY).unwrap(),
            Some(60)
        );
        assert!(validity_secs(None, Some(0), None, DAY).is_err());
    }
}
