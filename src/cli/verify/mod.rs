//! `dfns-operator verify`: does this Dfns credential work?
//!
//! Makes one authenticated read and completes one user-action signature (init + sign + complete,
//! for a read, so nothing is executed), then prints who the credential is and when its token
//! expires. On failure it names the cause. It never prints a token or a key.
mod explain;
mod inputs;

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use dfns_client::error::ErrorCategory;
use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, IdentityKind, KeySigner, PrivateKey, RetryPolicy,
    TokenClaims, decode_claims,
};

use explain::{Explainer, Stage};
use inputs::{Inputs, auth_mode, inputs_from_secret};

/// Exit code when the credential does not work.
const EXIT_FAILED: i32 = 1;
/// Exit code when the inputs are missing or unusable.
const EXIT_USAGE: i32 = 2;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Read DFNS_* values from this Kubernetes Secret instead of the environment (values missing
    /// from the Secret, such as DFNS_USERNAME for a login connection, still come from the environment).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub from_secret: Option<String>,
    /// Kubeconfig for --from-secret (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// PEM file of an extra CA to trust (private CA, local emulator).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Allow a plain http:// DFNS_API_URL (local emulators only).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Per-request timeout in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub timeout: u64,
}

pub async fn run(args: VerifyArgs) -> i32 {
    match verify(&args).await {
        Ok(()) => 0,
        Err(Failure { code, message }) => {
            eprintln!("verify failed: {message}");
            code
        }
    }
}

pub(super) struct Failure {
    code: i32,
    message: String,
}

pub(super) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        message: message.into(),
    }
}

pub(super) fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_FAILED,
        message: message.into(),
    }
}

async fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let inputs = match &args.from_secret {
        Some(reference) => inputs_from_secret(reference, args.kubeconfig.as_ref()).await?,
        None => Inputs::from_lookup(|name| std::env::var(name).ok()),
    };
    let ca_bundle_pem = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read --ca-cert {}: {e}", path.display())))?,
        ),
        None => None,
    };
    if inputs
        .api_url
        .trim()
        .to_ascii_lowercase()
        .starts_with("http://")
        && !args.allow_insecure_http
    {
        return Err(usage(format!(
            "DFNS_API_URL {} is plain http; pass --allow-insecure-http (local emulators only)",
            inputs.api_url
        )));
    }
    let cred_id = inputs
        .cred_id
        .clone()
        .ok_or_else(|| usage("DFNS_CRED_ID is not set"))?;
    let private_key = inputs
        .private_key
        .as_ref()
        .ok_or_else(|| usage("DFNS_PRIVATE_KEY is not set"))?;
    let key = PrivateKey::from_pem(private_key.expose())
        .map_err(|e| usage(format!("DFNS_PRIVATE_KEY: {e}")))?;
    let key_summary = format!(
        "{} key, public key sha256 {}",
        key.algorithm(),
        key.public_key_sha256().unwrap_or_default()
    );
    let auth = auth_mode(&inputs)?;
    let static_claims = match &auth {
        AuthMode::Token(token) => Some(
            decode_claims(token.expose())
                .map_err(|e| failed(format!("bad token: DFNS_AUTH_TOKEN {e}")))?,
        ),
        AuthMode::UserLogin { .. } => None,
    };

    let mut config = ClientConfig::new(
        inputs.api_url.clone(),
        auth.clone(),
        KeySigner::new(cred_id.clone(), key),
    );
    config.ca_bundle_pem = ca_bundle_pem;
    config.allow_insecure_http = args.allow_insecure_http;
    config.request_timeout = Duration::from_secs(args.timeout.max(1));
    config.connect_timeout = Duration::from_secs(args.timeout.clamp(1, 10));
    // One quick retry for a blip; a tool that answers in seconds beats a patient one.
    config.retry = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let client = DfnsClient::new(config).map_err(|e| usage(e.to_string()))?;
    let explainer = Explainer {
        api_url: client.api_url().to_owned(),
        cred_id: cred_id.clone(),
        auth: &auth,
        static_claims: static_claims.as_ref(),
    };

    println!("api:         {}", client.api_url());
    println!("credential:  {cred_id} ({key_summary})");
    let claims = client
        .identity()
        .await
        .map_err(|e| explainer.explain(Stage::Login, &e))?;
    println!("identity:    {}", describe_identity(&claims, &auth));
    println!("token:       {}", describe_expiry(&claims));

    // List PATs is the read Dfns' caller tables allow every identity kind, with no permission.
    match client.list(IdentityKind::PersonalAccessToken).await {
        Ok(tokens) => {
            println!(
                "read ok:     GET /auth/pats ({} personal access tokens of this identity)",
                tokens.len()
            );
        }
        // A 403 still proves the token authenticates.
        Err(error) if error.category() == ErrorCategory::Forbidden => {
            println!(
                "read ok:     token accepted (this identity may not list PATs: {})",
                error.dfns_message().unwrap_or("403")
            );
        }
        Err(error) => return Err(explainer.explain(Stage::Read, &error)),
    }

    client
        .verify_signing()
        .await
        .map_err(|e| explainer.explain(Stage::Sign, &e))?;
    println!("signing ok");
    Ok(())
}

fn describe_identity(claims: &TokenClaims, auth: &AuthMode) -> String {
    let kind = claims.token_kind.as_deref().unwrap_or(match auth {
        AuthMode::Token(_) => "token",
        AuthMode::UserLogin { .. } => "user session",
    });
    let user = claims.user_id.as_deref().unwrap_or("unknown user");
    let org = claims
        .org_id
        .as_deref()
        .map(|org| format!(" in {org}"))
        .unwrap_or_default();
    let name = claims
        .username
        .as_deref()
        .map(|name| format!(" ({name})"))
        .unwrap_or_default();
    format!("{kind} {user}{org}{name}")
}

pub(super) fn describe_expiry(claims: &TokenClaims) -> String {
    let Some(expires_at) = claims.expires_at else {
        return "no expiry in token".to_owned();
    };
    let left = expires_at.duration_since(Timestamp::now());
    if left.is_negative() {
        return format!("expired at {expires_at}");
    }
    let seconds = left.as_secs();
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
    );
    format!("expires at {expires_at} (in {days}d {hours}h {minutes}m)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfns_client::SecretString;

    #[test]
    fn identity_lines_use_the_token_claims() {
        let claims = TokenClaims {
            user_id: Some("us-1".into()),
            org_id: Some("or-1".into()),
            token_kind: Some("ServiceAccount".into()),
            ..TokenClaims::default()
        };
        assert_eq!(
            describe_identity(&claims, &AuthMode::Token(SecretString::new("t"))),
            "ServiceAccount us-1 in or-1"
        );
        let far = TokenClaims {
            expires_at: Some(Timestamp::now() + jiff::SignedDuration::from_hours(49)),
            ..claims
        };
        assert!(
            describe_expiry(&far).contains("(in 2d 0h"),
            "{}",
            describe_expiry(&far)
        );
    }
}
