//! Where the bearer token comes from: a static token, or a user login kept fresh in memory.
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use tokio::sync::Mutex;

use super::error::DfnsError;
use super::jwt::{TokenClaims, decode_claims};
use super::sensitive::SecretString;
use super::signer::KeySigner;
use super::transport::{ApiRequest, BodyLimit, Transport};
use super::types::user_action::{Challenge, LoginInitRequest, LoginResponse};

/// How the client authenticates.
#[derive(Clone)]
pub enum AuthMode {
    /// A long-lived service-account or PAT token (or any bearer token) used as is.
    Token(SecretString),
    /// An organization user with a Key credential; the client logs in and renews the session.
    UserLogin { org_id: String, username: String },
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(token) => f.debug_tuple("Token").field(token).finish(),
            Self::UserLogin { org_id, username } => f
                .debug_struct("UserLogin")
                .field("org_id", org_id)
                .field("username", username)
                .finish(),
        }
    }
}

/// A bearer token with what its JWT says about it.
#[derive(Clone)]
pub(crate) struct Session {
    pub token: SecretString,
    pub claims: Option<TokenClaims>,
}

impl Session {
    fn new(token: SecretString) -> Self {
        let claims = decode_claims(token.expose()).ok();
        Self { token, claims }
    }

    /// Fresh enough to use: not within the renewal margin of its expiry. The margin is a fifth
    /// of the token's lifetime, at most a minute, so short-lived sessions are not renewed on
    /// every call and long-lived ones are renewed before clocks or latency can bite.
    fn is_fresh(&self, now: Timestamp) -> bool {
        let Some(expires_at) = self.claims.as_ref().and_then(|claims| claims.expires_at) else {
            return true;
        };
        let lifetime = self
            .claims
            .as_ref()
            .and_then(|claims| claims.issued_at)
            .map_or(SignedDuration::from_secs(300), |issued| {
                expires_at.duration_since(issued)
            });
        let margin = (lifetime / 5).clamp(SignedDuration::ZERO, SignedDuration::from_secs(60));
        now + margin < expires_at
    }
}

pub(crate) struct Authenticator {
    mode: AuthMode,
    /// In login mode, the current session; in token mode, always `Some(static token)`.
    session: Mutex<Option<Session>>,
}

impl Authenticator {
    pub fn new(mode: AuthMode) -> Self {
        let session = match &mode {
            AuthMode::Token(token) => Some(Session::new(token.clone())),
            AuthMode::UserLogin { .. } => None,
        };
        Self {
            mode,
            session: Mutex::new(session),
        }
    }

    pub fn mode(&self) -> &AuthMode {
        &self.mode
    }

    /// Whether a 401 is worth one more try with a new token.
    pub fn can_renew(&self) -> bool {
        matches!(self.mode, AuthMode::UserLogin { .. })
    }

    /// The token to send, logging in first when there is no fresh session.
    pub async fn session(
        &self,
        transport: &Transport,
        signer: &KeySigner,
    ) -> Result<Session, DfnsError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref()
            && (!self.can_renew() || session.is_fresh(Timestamp::now()))
        {
            return Ok(session.clone());
        }
        let AuthMode::UserLogin { org_id, username } = &self.mode else {
            unreachable!("token mode always holds a session");
        };
        // Holding the lock while logging in makes concurrent callers share one login.
        let session = Session::new(login(transport, signer, org_id, username).await?);
        tracing::debug!(username = %username, expires_at = ?session.claims.as_ref().and_then(|c| c.expires_at), "logged in to Dfns");
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Drops the session after Dfns rejected it (401), unless another caller already renewed it.
    pub async fn invalidate(&self, rejected: &SecretString) {
        if !self.can_renew() {
            return;
        }
        let mut guard = self.session.lock().await;
        if guard
            .as_ref()
            .is_some_and(|session| &session.token == rejected)
        {
            *guard = None;
        }
    }
}

/// `POST /auth/login/init` then `POST /auth/login`, signing the challenge with the Key credential.
async fn login(
    transport: &Transport,
    signer: &KeySigner,
    org_id: &str,
    username: &str,
) -> Result<SecretString, DfnsError> {
    let init_body = serde_json::to_string(&LoginInitRequest {
        org_id: org_id.to_owned(),
        username: username.to_owned(),
    })
    .map_err(|_| DfnsError::Config("cannot encode login request".into()))?;
    let path = "/auth/login/init";
    let response = transport
        .send(ApiRequest {
            method: Method::POST,
            path,
            bearer: None,
            user_action: None,
            body: Some(&init_body),
            limit: BodyLimit::Normal,
        })
        .await?;
    let challenge: Challenge = response.json(&Method::POST, path)?;
    let signed = signer.sign(&challenge)?;
    let login_body = serde_json::to_string(&signed)
        .map_err(|_| DfnsError::Config("cannot encode login".into()))?;
    let path = "/auth/login";
    let response = transport
        .send(ApiRequest {
            method: Method::POST,
            path,
            bearer: None,
            user_action: None,
            body: Some(&login_body),
            limit: BodyLimit::Normal,
        })
        .await?;
    let login: LoginResponse = response.json(&Method::POST, path)?;
    Ok(login.token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::encode_test_token;
    use serde_json::json;

    fn session(iat: i64, exp: i64) -> Session {
        Session::new(SecretString::new(encode_test_token(
            &json!({"iat": iat, "exp": exp}),
        )))
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn long_sessions_renew_a_minute_before_expiry() {
        let hour = session(0, 3600);
        assert!(hour.is_fresh(at(3539)));
        assert!(!hour.is_fresh(at(3540)));
    }

    #[test]
    fn short_sessions_renew_in_their_last_fifth() {
        let short = session(0, 10);
        assert!(short.is_fresh(at(7)));
        assert!(!short.is_fresh(at(8)));
    }

    #[test]
    fn tokens_without_expiry_are_always_fresh() {
        let opaque = Session::new(SecretString::new("opaque"));
        assert!(opaque.is_fresh(at(i64::from(i32::MAX))));
    }

    #[test]
    fn auth_mode_debug_hides_the_token() {
        let mode = AuthMode::Token(SecretString::new("eyJ.secret.sig"));
        assert_eq!(format!("{mode:?}"), "Token([redacted])");
    }
}
