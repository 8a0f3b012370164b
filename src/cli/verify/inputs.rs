//! What `verify` checks: the DFNS_* values, from the environment or from a Kubernetes Secret.
use std::collections::BTreeMap;
use std::path::PathBuf;

use dfns_client::{AuthMode, DEFAULT_API_URL, SecretString};

use super::{Failure, failed, usage};

/// The DFNS_* values, from the environment or a Secret.
pub(super) struct Inputs {
    pub api_url: String,
    pub auth_token: Option<SecretString>,
    pub cred_id: Option<String>,
    pub private_key: Option<SecretString>,
    pub org_id: Option<String>,
    pub username: Option<String>,
}

pub(super) fn auth_mode(inputs: &Inputs) -> Result<AuthMode, Failure> {
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
    pub(super) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
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

pub(super) async fn inputs_from_secret(
    reference: &str,
    kubeconfig: Option<&PathBuf>,
) -> Result<Inputs, Failure> {
    use k8s_openapi::api::core::v1::Secret;

    let (namespace, name) = reference
        .split_once('/')
        .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
        .ok_or_else(|| usage(format!("--from-secret `{reference}` is not NAMESPACE/NAME")))?;
    dfns_client::install_crypto_provider();
    let config = crate::cli::kubeconfig::load(kubeconfig.map(PathBuf::as_path))
        .await
        .map_err(|e| usage(e.to_string()))?;
    let client = kube::Client::try_from(config)
        .map_err(|e| usage(crate::cli::Error::KubeClient(e).to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::verify::EXIT_USAGE;

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
}
