//! Request body parsing with Dfns' rules: unknown fields → 400, and an empty body reads as `{}`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, ApiResult};

/// Parses a JSON request body into `T` (whose type denies unknown fields); empty means `{}`.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("invalid request body: {e}"))
            .with_details(serde_json::json!({ "reason": e.to_string() }))
    })
}

/// The body as compared for user actions: `""`, `"{}"` and no body are all `{}`.
pub(crate) fn normalized_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        name: Option<String>,
    }

    #[test]
    fn unknown_fields_are_a_bad_request() {
        let err = parse_body::<Body>(br#"{"name":"a","extra":1}"#).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("extra"));
    }

    #[test]
    fn empty_body_parses_as_empty_object() {
        assert!(parse_body::<Body>(b"").is_ok());
    }

    #[test]
    fn empty_string_and_empty_object_and_spacing_are_equal() {
        assert_eq!(
            normalized_body(b"").unwrap(),
            normalized_body(b"{}").unwrap()
        );
        assert_eq!(
            normalized_body(br#"{"a":1,"b":"x"}"#).unwrap(),
            normalized_body(br#"{ "b": "x", "a": 1 }"#).unwrap()
        );
        assert_ne!(
            normalized_body(br#"{"a":1}"#).unwrap(),
            normalized_body(br#"{"a":2}"#).unwrap()
        );
    }
}
