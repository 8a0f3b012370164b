//! `dfns-operator verify`: does this Dfns credential work?
//!
//! Makes one authenticated read and completes one user-action signature (init + sign + complete,
//! for a read, so nothing is executed), then prints who the credential is and when its token
//! expires. On failure it names the cause. It never prints a token or a key.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use dfns_client::error::ErrorCategory;
use dfns_client::{
    AuthMode, ClientConfig, DEFAULT_API_URL, DfnsClient, DfnsError, KeySigner, PrivateKey,
    RetryPolicy, SecretString, TokenClaims, decode_claims,
};

/// Exit code when the credential does not work.
const EXIT_FAILED: i32 = 1;
/// Exit code when the inputs are missing or unusable.
const EXIT_USAGE: i32 = 2;

const REGION_HINT: &str = "if the credential was issued in another Dfns region, set DFNS_API_URL to it \
     (https://api.dfns.io for Europe, https://api.uae.dfns.io for the UAE)";

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

/// The DFNS_* values, from the environment or a Secret.
struct Inputs {
    api_url: String,
    auth_token: Option<SecretString>,
    cred_id: Option<String>,
    private_key: Option<SecretString>,
    org_id: Option<String>,
    username: Option<String>,
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

struct Failure {
    code: i32,
    message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        message: message.into(),
    }
}

fn failed(message: impl Into<String>) -> Failure {
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
    let context = Context {
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
        .map_err(|e| context.explain(Stage::Login, &e))?;
    println!("identity:    {}", describe_identity(&claims, &auth));
    println!("token:       {}", describe_expiry(&claims));

    match client.list_credentials().await {
        Ok(credentials) => {
            let ours = credentials
                .iter()
                .any(|credential| credential.credential_id == cred_id);
            let note = if ours {
                "includes DFNS_CRED_ID"
            } else {
                "DFNS_CRED_ID not among them"
            };
            println!(
                "read ok:     GET /auth/credentials ({} credentials, {note})",
                credentials.len()
            );
        }
        // A 403 still proves the token authenticates; some identities may not list credentials.
        Err(error) if error.category() == ErrorCategory::Forbidden => {
            println!(
                "read ok:     token accepted (this identity may not list credentials: {})",
                error.dfns_message().unwrap_or("403")
            );
        }
        Err(error) => return Err(context.explain(Stage::Read, &error)),
    }

    client
        .verify_signing()
        .await
        .map_err(|e| context.explain(Stage::Sign, &e))?;
    println!("signing ok");
    Ok(())
}

fn auth_mode(inputs: &Inputs) -> Result<AuthMode, Failure> {
    if let Some(token) = &inputs.auth_token {
        return Ok(AuthMode::Token(token.clone()));
    }
    match (&inputs.org_id, &inputs.username) {
        (Some(org_id), Some(username)) => Ok(AuthMode::UserLogin {
            org_id: org_id.clone(),
            username: username.clone(),
        }),
        _ => Err(usage(
            "set DFNS_AUTH_TOKEN (token mode), or DFNS_ORG_ID and DFNS_USERNAME (login mode)",
        )),
    }
}

impl Inputs {
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let value = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            api_url: value("DFNS_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
            auth_token: value("DFNS_AUTH_TOKEN").map(SecretString::from),
            cred_id: value("DFNS_CRED_ID"),
            private_key: lookup("DFNS_PRIVATE_KEY")
                .filter(|v| !v.trim().is_empty())
                .map(SecretString::from),
            org_id: value("DFNS_ORG_ID"),
            username: value("DFNS_USERNAME"),
        }
    }
}

async fn inputs_from_secret(
    reference: &str,
    kubeconfig: Option<&PathBuf>,
) -> Result<Inputs, Failure> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::config::{KubeConfigOptions, Kubeconfig};

    let (namespace, name) = reference
        .split_once('/')
        .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
        .ok_or_else(|| usage(format!("--from-secret `{reference}` is not NAMESPACE/NAME")))?;
    dfns_client::install_crypto_provider();
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| usage(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| usage(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| usage(format!("no Kubernetes configuration: {e}")))?,
    };
    let client =
        kube::Client::try_from(config).map_err(|e| usage(format!("Kubernetes client: {e}")))?;
    let secret = kube::Api::<Secret>::namespaced(client, namespace)
        .get(name)
        .await
        .map_err(|error| {
            let reason = match &error {
                kube::Error::Api(status) => format!("HTTP {}: {}", status.code, status.message),
                other => other.to_string(),
            };
            failed(format!("cannot read Secret {namespace}/{name}: {reason}"))
        })?;
    Ok(inputs_from_secret_data(
        secret.data.unwrap_or_default(),
        |key| std::env::var(key).ok(),
    ))
}

/// Secret values win; the environment fills what the Secret lacks (a login connection's Secret
/// has no username, for instance).
fn inputs_from_secret_data(
    data: BTreeMap<String, k8s_openapi::ByteString>,
    env: impl Fn(&str) -> Option<String>,
) -> Inputs {
    let mut values: BTreeMap<String, SecretString> = BTreeMap::new();
    for (key, bytes) in data {
        if let Ok(text) = String::from_utf8(bytes.0) {
            values.insert(key, SecretString::from(text));
        }
    }
    Inputs::from_lookup(|key| {
        values
            .get(key)
            .map(|value| value.expose().to_owned())
            .or_else(|| env(key))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Getting a bearer token (login mode) or reading it (token mode).
    Login,
    Read,
    Sign,
}

struct Context<'a> {
    api_url: String,
    cred_id: String,
    auth: &'a AuthMode,
    static_claims: Option<&'a TokenClaims>,
}

impl Context<'_> {
    /// Turns an error into a message naming the cause and the fix.
    fn explain(&self, stage: Stage, error: &DfnsError) -> Failure {
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

fn describe_expiry(claims: &TokenClaims) -> String {
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
    use reqwest::Method;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Inputs::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn token_mode_wins_over_login_mode_and_api_url_defaults_to_production() {
        let both = inputs(&[
            ("DFNS_AUTH_TOKEN", "t"),
            ("DFNS_ORG_ID", "or-1"),
            ("DFNS_USERNAME", "u"),
        ]);
        assert!(matches!(auth_mode(&both), Ok(AuthMode::Token(_))));
        assert_eq!(both.api_url, DEFAULT_API_URL);
        let login = inputs(&[
            ("DFNS_ORG_ID", "or-1"),
            ("DFNS_USERNAME", "u"),
            ("DFNS_API_URL", " http://x "),
        ]);
        assert!(matches!(auth_mode(&login), Ok(AuthMode::UserLogin { .. })));
        assert_eq!(login.api_url, "http://x");
        let neither = inputs(&[("DFNS_ORG_ID", "or-1"), ("DFNS_AUTH_TOKEN", "  ")]);
        assert_eq!(auth_mode(&neither).err().unwrap().code, EXIT_USAGE);
    }

    fn context<'a>(auth: &'a AuthMode) -> Context<'a> {
        Context {
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
        let context = context(&token);
        let bad_token = context
            .explain(Stage::Read, &api_error("/auth/credentials", 401))
            .message;
        assert!(
            bad_token.starts_with("bad token") && bad_token.contains("api.uae.dfns.io"),
            "{bad_token}"
        );
        let wrong_key = context
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
            context
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
            context
                .explain(Stage::Read, &unreachable)
                .message
                .starts_with("unreachable")
        );
        let login = AuthMode::UserLogin {
            org_id: "or-1".into(),
            username: "u".into(),
        };
        let rejected = crate::cli::verify::Context {
            auth: &login,
            ..context
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
        let context = Context {
            static_claims: Some(&claims),
            ..context(&token)
        };
        let message = context
            .explain(Stage::Read, &api_error("/auth/credentials", 401))
            .message;
        assert!(
            message.contains("expired at 1970-01-01T00:16:40Z"),
            "{message}"
        );
        assert!(describe_expiry(&claims).starts_with("expired at"));
    }

    #[test]
    fn secret_values_win_and_the_environment_fills_gaps() {
        let data: BTreeMap<String, k8s_openapi::ByteString> = [
            ("DFNS_API_URL", "https://api.uae.dfns.io"),
            ("DFNS_CRED_ID", "Y2k"),
            ("DFNS_PRIVATE_KEY", "PEM"),
            ("DFNS_ORG_ID", "or-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
        .collect();
        let env = |name: &str| match name {
            "DFNS_ORG_ID" => Some("or-env".to_owned()),
            "DFNS_USERNAME" => Some("ops@example.com".to_owned()),
            _ => None,
        };
        let inputs = inputs_from_secret_data(data, env);
        assert_eq!(inputs.api_url, "https://api.uae.dfns.io");
        assert_eq!(inputs.org_id.as_deref(), Some("or-secret"));
        assert_eq!(inputs.username.as_deref(), Some("ops@example.com"));
        assert_eq!(inputs.private_key.unwrap().expose(), "PEM");
        assert!(inputs.auth_token.is_none());
    }

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
