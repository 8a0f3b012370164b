//! JWTs signed by the emulator (EdDSA, in-memory key): access tokens in Dfns' claim layout, and
//! opaque handles (challenge identifiers, user actions) that Dfns also issues as JWTs.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub(crate) const ISSUER: &str = "dfns-emulator";
pub(crate) const AUD_ACCESS: &str = "dfns:auth:user";
pub(crate) const AUD_CHALLENGE: &str = "dfns:auth:challenge";
pub(crate) const AUD_USER_ACTION: &str = "dfns:auth:useraction";

/// What kind of bearer token: the values of Dfns' `tokenKind` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TokenKind {
    /// An organization user's login session.
    Temp,
    ServiceAccount,
    Pat,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppMetadata {
    pub user_id: String,
    pub org_id: String,
    pub token_kind: TokenKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// Claims of a bearer token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    /// Absent for a service-account or PAT token created without a validity (see `Profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(rename = "https://custom/username")]
    pub username: String,
    #[serde(rename = "https://custom/app_metadata")]
    pub app_metadata: AppMetadata,
}

/// Claims of a challenge identifier or user action token: a handle into emulator state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct HandleClaims {
    pub iss: String,
    pub aud: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not meant for this use")]
    WrongAudience,
}

/// Verified access tokens kept to skip repeated signature checks (bounded; cleared when full).
const VERIFIED_CACHE_LIMIT: usize = 10_000;
/// Access tokens remembered for [`TokenKeys::issued`] (the newest ones; bounded).
const ISSUED_LIMIT: usize = 10_000;

/// The emulator's JWT keys: EdDSA for access tokens (what Dfns uses), HMAC-SHA256 for the
/// short-lived handles only the emulator itself reads. Regenerated on every start, so tokens
/// of an earlier run are unknown (401) to a new one.
pub(crate) struct TokenKeys {
    signing: SigningKey,
    handle_key: ring::hmac::Key,
    /// Token string → claims whose signature checked out. Expiry and revocation are still
    /// checked on every use; only the signature check is skipped.
    verified: Mutex<HashMap<String, AccessClaims>>,
    /// Every access token signed (service account, PAT and login session tokens), newest last,
    /// so tests can search the operator's outputs for each of them.
    issued: Mutex<std::collections::VecDeque<String>>,
}

fn encode_part<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("claims serialize to JSON"))
}

/// Splits a compact JWS into (signing input, payload, signature bytes).
fn split(token: &str) -> Result<(&str, &str, Vec<u8>), TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    Ok((&token[..header.len() + 1 + payload.len()], payload, sig))
}

fn decode_payload<C: DeserializeOwned>(payload: &str) -> Result<C, TokenError> {
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
}

impl TokenKeys {
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            signing: SigningKey::generate(&mut rand::rng()),
            handle_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            verified: Mutex::new(HashMap::new()),
            issued: Mutex::default(),
        }
    }

    /// The access tokens signed so far (at most the newest [`ISSUED_LIMIT`]).
    pub fn issued(&self) -> Vec<String> {
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.iter().cloned().collect()
    }

    /// An EdDSA-signed JWT.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#),
            encode_part(claims)
        );
        let sig = self.signing.sign(signing_input.as_bytes());
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        if issued.len() >= ISSUED_LIMIT {
            issued.pop_front();
        }
        issued.push_back(token.clone());
        token
    }

    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let (signing_input, payload, sig) = split(token)?;
                let sig = ed25519_dalek::Signature::from_slice(&sig)
                    .map_err(|_| TokenError::Malformed)?;
                self.signing
                    .verifying_key()
                    .verify(signing_input.as_bytes(), &sig)
                    .map_err(|_| TokenError::BadSignature)?;
                let claims: AccessClaims = decode_payload(payload)?;
                if claims.aud != AUD_ACCESS {
                    return Err(TokenError::WrongAudience);
                }
                let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= VERIFIED_CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.exp.is_some_and(|exp| now >= exp) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// An HS256 JWT naming a challenge or user action held in emulator state.
    pub fn handle(&self, aud: &str, jti: &str, now: i64, ttl_secs: i64) -> String {
        let claims = HandleClaims {
            iss: ISSUER.to_owned(),
            aud: aud.to_owned(),
            jti: jti.to_owned(),
            iat: now,
            exp: now + ttl_secs,
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            encode_part(&claims)
        );
        let tag = ring::hmac::sign(&self.handle_key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    pub fn verify_handle(
        &self,
        token: &str,
        aud: &str,
        now: i64,
    ) -> Result<HandleClaims, TokenError> {
        let (signing_input, payload, sig) = split(token)?;
        ring::hmac::verify(&self.handle_key, signing_input.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: HandleClaims = decode_payload(payload)?;
        if claims.aud != aud {
            return Err(TokenError::WrongAudience);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: impl Into<Option<i64>>) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUD_ACCESS.into(),
            sub: "or-1".into(),
            jti: "to-1".into(),
            iat: 0,
            exp: exp.into(),
            username: "u".into(),
            app_metadata: AppMetadata {
                user_id: "us-1".into(),
                org_id: "or-1".into(),
                token_kind: TokenKind::Pat,
                token_id: Some("to-1".into()),
            },
        }
    }

    #[test]
    fn signed_token_verifies_and_carries_dfns_claims() {
        let keys = TokenKeys::generate();
        let jwt = keys.sign(&claims(100));
        let back = keys.verify_access(&jwt, 50).unwrap();
        assert_eq!(back.app_metadata.token_kind, TokenKind::Pat);
        let payload = URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["https://custom/app_metadata"]["tokenKind"], "Pat");
        assert_eq!(v["https://custom/app_metadata"]["orgId"], "or-1");
    }

    #[test]
    fn expired_token_is_refused() {
        let keys = TokenKeys::generate();
        let jwt = keys.sign(&claims(100));
        assert_eq!(
            keys.verify_access(&jwt, 100).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn token_without_exp_has_no_exp_claim_and_never_expires() {
        let keys = TokenKeys::generate();
        let jwt = keys.sign(&claims(None));
        let payload = URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(v.get("exp").is_none(), "{v}");
        assert!(keys.verify_access(&jwt, i64::MAX).is_ok());
        // A forged copy without exp still needs the emulator's signature.
        assert_eq!(
            TokenKeys::generate().verify_access(&jwt, 0).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn token_from_another_key_is_refused() {
        let jwt = TokenKeys::generate().sign(&claims(100));
        assert_eq!(
            TokenKeys::generate().verify_access(&jwt, 0).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn handle_is_not_a_bearer_token() {
        let keys = TokenKeys::generate();
        let h = keys.handle(AUD_USER_ACTION, "x", 0, 10);
        assert!(keys.verify_access(&h, 1).is_err());
        assert_eq!(
            keys.verify_handle(&h, AUD_CHALLENGE, 1).unwrap_err(),
            TokenError::WrongAudience
        );
        assert!(keys.verify_handle(&h, AUD_USER_ACTION, 1).is_ok());
    }
}
