//! Reading the claims of a Dfns JWT without verifying it.
//!
//! Dfns has no `/me` endpoint; who a token belongs to and when it expires is only in its claims.
//! The server verifies the signature on every call, so the client only needs to read them.
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is not a JWT (expected three dot-separated parts)")]
    NotAJwt,
    #[error("token payload is not base64url-encoded JSON")]
    BadPayload,
}

/// The claims the operator cares about. Nothing here is secret: a JWT's payload grants nothing
/// without its signature, so this type may be logged and shown in status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenClaims {
    pub subject: Option<String>,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub token_kind: Option<String>,
    pub username: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    #[serde(rename = "https://custom/app_metadata")]
    app_metadata: Option<AppMetadata>,
    #[serde(rename = "https://custom/username")]
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppMetadata {
    user_id: Option<String>,
    // Newer organisations carry tenantId instead of orgId.
    org_id: Option<String>,
    tenant_id: Option<String>,
    token_kind: Option<String>,
}

/// Decodes the payload of `token` (a compact JWS). Does not verify the signature.
pub fn decode_claims(token: &str) -> Result<TokenClaims, JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotAJwt);
    };
    // Some issuers pad base64url; tolerate it.
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwtError::BadPayload)?;
    let raw: RawClaims = serde_json::from_slice(&bytes).map_err(|_| JwtError::BadPayload)?;
    let metadata = raw.app_metadata;
    let timestamp = |secs: Option<i64>| secs.and_then(|s| Timestamp::from_second(s).ok());
    Ok(TokenClaims {
        subject: raw.sub,
        issued_at: timestamp(raw.iat),
        expires_at: timestamp(raw.exp),
        user_id: metadata.as_ref().and_then(|m| m.user_id.clone()),
        org_id: metadata
            .as_ref()
            .and_then(|m| m.org_id.clone().or_else(|| m.tenant_id.clone())),
        token_kind: metadata.as_ref().and_then(|m| m.token_kind.clone()),
        username: raw.username,
    })
}

/// Builds an unsigned token carrying `claims`, for tests.
#[cfg(test)]
pub(crate) fn encode_test_token(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"EdDSA"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APP_METADATA_CLAIM: &str = "https://custom/app_metadata";
    const USERNAME_CLAIM: &str = "https://custom/username";

    #[test]
    fn decodes_dfns_claims() {
        let token = encode_test_token(&json!({
            "iss": "auth.dfns.io", "sub": "or-1-us-2", "iat": 1_700_000_000, "exp": 1_700_003_600,
            APP_METADATA_CLAIM: {"userId": "us-abc", "orgId": "or-xyz", "tokenKind": "ServiceAccount", "extra": 1},
            USERNAME_CLAIM: "robot@example.com",
        }));
        let claims = decode_claims(&token).unwrap();
        assert_eq!(claims.user_id.as_deref(), Some("us-abc"));
        assert_eq!(claims.org_id.as_deref(), Some("or-xyz"));
        assert_eq!(claims.token_kind.as_deref(), Some("ServiceAccount"));
        assert_eq!(claims.username.as_deref(), Some("robot@example.com"));
        assert_eq!(claims.subject.as_deref(), Some("or-1-us-2"));
        assert_eq!(
            claims.expires_at,
            Some(Timestamp::from_second(1_700_003_600).unwrap())
        );
        assert_eq!(
            claims.issued_at,
            Some(Timestamp::from_second(1_700_000_000).unwrap())
        );
    }

    #[test]
    fn tenant_id_stands_in_for_org_id() {
        let token = encode_test_token(
            &json!({APP_METADATA_CLAIM: {"userId": "us-a", "tenantId": "acct-b"}}),
        );
        assert_eq!(
            decode_claims(&token).unwrap().org_id.as_deref(),
            Some("acct-b")
        );
    }

    #[test]
    fn missing_claims_are_none_not_errors() {
        let claims = decode_claims(&encode_test_token(&json!({}))).unwrap();
        assert_eq!(claims, TokenClaims::default());
    }

    #[test]
    fn padded_payloads_are_accepted() {
        let token = encode_test_token(&json!({"exp": 5}));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        while !parts[1].len().is_multiple_of(4) {
            parts[1].push('=');
        }
        assert_eq!(
            decode_claims(&parts.join(".")).unwrap().expires_at,
            Some(Timestamp::from_second(5).unwrap())
        );
    }

    #[test]
    fn rejects_non_jwts() {
        assert_eq!(
            decode_claims("opaque-token").unwrap_err(),
            JwtError::NotAJwt
        );
        assert_eq!(decode_claims("a.b.c.d").unwrap_err(), JwtError::NotAJwt);
        assert_eq!(decode_claims("a.!!!.c").unwrap_err(), JwtError::BadPayload);
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode("not json"));
        assert_eq!(decode_claims(&not_json).unwrap_err(), JwtError::BadPayload);
    }
}
