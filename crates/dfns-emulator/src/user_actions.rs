//! Key-credential assertions (login, user action, credential creation) and the binding of a
//! signed user action to one request.

use serde::Deserialize;
use serde_json::Value;

use super::crypto::{PublicKey, decode_b64url};
use super::error::{ApiError, ApiResult};
use super::state::model::BoundRequest;

/// `firstFactor` of `POST /auth/login` and `POST /auth/action`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Factor {
    pub kind: String,
    pub credential_assertion: KeyAssertion,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct KeyAssertion {
    pub cred_id: String,
    pub client_data: String,
    pub signature: String,
    #[serde(default)]
    pub algorithm: Option<String>,
}

impl Factor {
    pub fn require_key(&self) -> ApiResult<&KeyAssertion> {
        if self.kind == "Key" {
            Ok(&self.credential_assertion)
        } else {
            Err(ApiError::bad_request(format!(
                "credential kind {:?} is not supported by the emulator; use Key",
                self.kind
            )))
        }
    }
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
}

/// Checks clientData (`type`, issued `challenge`) and the signature over the decoded clientData
/// bytes exactly as received. Returns those bytes (credential creation hashes them).
pub(crate) fn verify_assertion(
    key: &PublicKey,
    client_data_b64: &str,
    signature_b64: &str,
    algorithm: Option<&str>,
    expected_type: &str,
    expected_challenge: &str,
) -> ApiResult<Vec<u8>> {
    let client_data = decode_b64url(client_data_b64)
        .map_err(|e| ApiError::bad_request(format!("clientData: {e}")))?;
    let parsed: ClientData = serde_json::from_slice(&client_data)
        .map_err(|e| ApiError::bad_request(format!("clientData is not the expected JSON: {e}")))?;
    if parsed.kind != expected_type {
        return Err(ApiError::unauthorized(format!(
            "clientData type must be {expected_type:?}, got {:?}",
            parsed.kind
        )));
    }
    if parsed.challenge != expected_challenge {
        return Err(ApiError::unauthorized(
            "clientData challenge does not match the issued challenge",
        ));
    }
    let signature = decode_b64url(signature_b64)
        .map_err(|e| ApiError::bad_request(format!("signature: {e}")))?;
    key.verify(&client_data, &signature, algorithm)
        .map_err(|e| ApiError::unauthorized(format!("invalid credential assertion: {e}")))?;
    Ok(client_data)
}

/// Path without its query string (GO SDK signs `path?query`, the others sign the bare path).
pub(crate) fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// A user action is valid only for the method, path and body it was signed for.
pub(crate) fn matches(bound: &BoundRequest, method: &str, path: &str, body: &Value) -> bool {
    bound.method.eq_ignore_ascii_case(method)
        && bound.path == strip_query(path)
        && &bound.body == body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bound() -> BoundRequest {
        BoundRequest {
            method: "PUT".into(),
            path: "/auth/pats/to-1/deactivate".into(),
            body: json!({}),
        }
    }

    #[test]
    fn query_is_ignored_but_path_method_and_body_must_match() {
        assert!(matches(
            &bound(),
            "PUT",
            "/auth/pats/to-1/deactivate?x=1",
            &json!({})
        ));
        assert!(!matches(
            &bound(),
            "PUT",
            "/auth/pats/to-2/deactivate",
            &json!({})
        ));
        assert!(!matches(
            &bound(),
            "DELETE",
            "/auth/pats/to-1/deactivate",
            &json!({})
        ));
        assert!(!matches(
            &bound(),
            "PUT",
            "/auth/pats/to-1/deactivate",
            &json!({"force": true})
        ));
    }
}
