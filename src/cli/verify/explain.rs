//! Turning a failed check into a message that names the cause and the fix.
use jiff::Timestamp;

use dfns_client::error::ErrorCategory;
use dfns_client::{AuthMode, DfnsError, TokenClaims};

use super::{Failure, failed};

const REGION_HINT: &str = "if the credential was issued in another Dfns region, set DFNS_API_URL to it \
     (https://api.dfns.io for Europe, https://api.uae.dfns.io for the UAE)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Getting a bearer token (login mode) or reading it (token mode).
    Login,
    Read,
    Sign,
}

pub(super) struct Explainer<'a> {
    pub api_url: String,
    pub cred_id: String,
    pub auth: &'a AuthMode,
    pub static_claims: Option<&'a TokenClaims>,
}

impl Explainer<'_> {
    /// Turns an error into a message naming the cause and the fix.
    pub(super) fn explain(&self, stage: Stage, error: &DfnsError) -> Failure {
        let login = matches!(self.auth, AuthMode::UserLogin { .. });
        let message = match error.category() {
            _ if matches!(error, DfnsError::CredentialNotAllowed { .. }) => {
                format!("wrong credential id: {error}")
            }
            ErrorCategory::Transport => {
                let tls = error.to_string().to_ascii_lowercase();
                let hint = if tls.contains("certificate")
                    || tls.contains("tls")
                    || tls.contains("unknown issuer")
                {
                    " (TLS: pass the server's CA with --ca-cert)"
                } else {
                    ""
                };
                format!("unreachable: {error}{hint}")
            }
            ErrorCategory::Timeout => format!("unreachable: {error}"),
            ErrorCategory::Misconfigured => error.to_string(),
            ErrorCategory::Unauthorized | ErrorCategory::Forbidden if stage == Stage::Sign => {
                format!(
                    "wrong key: Dfns rejected the signature made with DFNS_PRIVATE_KEY for credential {} ({error})",
                    self.cred_id
                )
            }
            ErrorCategory::Unauthorized
            | ErrorCategory::Forbidden
            | ErrorCategory::NotFound
            | ErrorCategory::InvalidRequest
                if login && stage == Stage::Login =>
            {
                format!(
                    "login rejected: check DFNS_ORG_ID, DFNS_USERNAME and that DFNS_PRIVATE_KEY is the key of credential {} ({error}); {REGION_HINT}",
                    self.cred_id
                )
            }
            ErrorCategory::Unauthorized => {
                let expired = self
                    .static_claims
                    .and_then(|claims| claims.expires_at)
                    .filter(|expires_at| *expires_at <= Timestamp::now())
                    .map(|expires_at| format!("; the token expired at {expires_at}"))
                    .unwrap_or_default();
                let which = if login {
                    "the session token"
                } else {
                    "DFNS_AUTH_TOKEN"
                };
                format!(
                    "bad token: Dfns at {} rejected {which} ({error}){expired}; {REGION_HINT}",
                    self.api_url
                )
            }
            _ => format!("{error}"),
        };
        failed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::verify::describe_expiry;
    use dfns_client::SecretString;
    use reqwest::Method;

    fn explainer<'a>(auth: &'a AuthMode) -> Explainer<'a> {
        Explainer {
            api_url: "https://api.dfns.io".into(),
            cred_id: "Y2k".into(),
            auth,
            static_claims: None,
        }
    }

    fn api_error(path: &str, status: u16) -> DfnsError {
        DfnsError::Api {
            method: Method::POST,
            path: path.into(),
            status,
            message: "Not Authorized.".into(),
            retry_after: None,
        }
    }

    #[test]
    fn explanations_name_the_cause() {
        let token = AuthMode::Token(SecretString::new("eyJ.secret.x"));
        let explainer = explainer(&token);
        let bad_token = explainer
            .explain(Stage::Read, &api_error("/auth/credentials", 401))
            .message;
        assert!(
            bad_token.starts_with("bad token") && bad_token.contains("api.uae.dfns.io"),
            "{bad_token}"
        );
        let wrong_key = explainer
            .explain(Stage::Sign, &api_error("/auth/action", 401))
            .message;
        assert!(
            wrong_key.starts_with("wrong key") && wrong_key.contains("Y2k"),
            "{wrong_key}"
        );
        let not_allowed = DfnsError::CredentialNotAllowed {
            cred_id: "Y2k".into(),
            allowed: vec!["other".into()],
        };
        assert!(
            explainer
                .explain(Stage::Sign, &not_allowed)
                .message
                .starts_with("wrong credential id")
        );
        let unreachable = DfnsError::Transport {
            method: Method::GET,
            path: "/x".into(),
            reason: "connection refused".into(),
        };
        assert!(
            explainer
                .explain(Stage::Read, &unreachable)
                .message
                .starts_with("unreachable")
        );
        let login = AuthMode::UserLogin {
            org_id: "or-1".into(),
            username: "u".into(),
        };
        let rejected = Explainer {
            auth: &login,
            ..explainer
        };
        assert!(
            rejected
                .explain(Stage::Login, &api_error("/auth/login", 401))
                .message
                .starts_with("login rejected")
        );
    }

    #[test]
    fn expired_static_tokens_say_so() {
        let token = AuthMode::Token(SecretString::new("t"));
        let claims = TokenClaims {
            expires_at: Some(Timestamp::from_second(1_000).unwrap()),
            ..TokenClaims::default()
        };
        let explainer = Explainer {
            static_claims: Some(&claims),
            ..explainer(&token)
        };
        let message = explainer
            .explain(Stage::Read, &api_error("/auth/credentials", 401))
            .message;
        assert!(
            message.contains("expired at 1970-01-01T00:16:40Z"),
            "{message}"
        );
        assert!(describe_expiry(&claims).starts_with("expired at"));
    }
}
