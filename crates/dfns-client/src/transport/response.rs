//! Reading a response: its status as a result, Dfns' error message, Retry-After, and the body
//! as JSON.
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{DfnsError, scrub};
use crate::types::permission::ChangeRequest;

pub(crate) struct ApiResponse {
    pub status: StatusCode,
    /// Zeroized on drop: create and login responses carry tokens.
    pub body: Zeroizing<Vec<u8>>,
}

impl ApiResponse {
    /// Parses the body. On failure the error names the JSON problem by position only, because
    /// serde's messages quote values and this body may hold a token.
    pub fn json<T: for<'de> Deserialize<'de>>(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<T, DfnsError> {
        serde_json::from_slice(&self.body).map_err(|error| DfnsError::UnexpectedResponse {
            method: method.clone(),
            path: path.to_owned(),
            status: self.status.as_u16(),
            reason: format!(
                "invalid JSON ({:?} error at line {} column {})",
                error.classify(),
                error.line(),
                error.column()
            ),
        })
    }
}

/// What a complete response means: a body to parse, a change queued for approval (202), or
/// a [`DfnsError::Api`] carrying Dfns' message.
pub(super) fn into_result(
    method: Method,
    path: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Zeroizing<Vec<u8>>,
) -> Result<ApiResponse, DfnsError> {
    if status == StatusCode::ACCEPTED {
        let change = serde_json::from_slice::<ChangeRequest>(&body).ok();
        return Err(DfnsError::PendingApproval {
            method,
            path: path.to_owned(),
            change_request_id: change.as_ref().map(|c| scrub(&c.id)),
            approval_id: change.and_then(|c| c.approval_id).map(|id| scrub(&id)),
        });
    }
    if status.is_success() {
        return Ok(ApiResponse { status, body });
    }
    Err(DfnsError::Api {
        method,
        path: path.to_owned(),
        status: status.as_u16(),
        message: error_message(status, &body),
        retry_after,
    })
}

/// Dfns' message (`error.message`, else top-level `message`), scrubbed; the status reason if none.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<ErrorField>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object { message: Option<String> },
        Text(String),
    }
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let message = parsed.and_then(|body| match body.error {
        Some(ErrorField::Object {
            message: Some(message),
        })
        | Some(ErrorField::Text(message)) => Some(message),
        _ => body.message,
    });
    match message {
        Some(message) if !message.trim().is_empty() => scrub(message.trim()),
        _ => status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned(),
    }
}

/// Retry-After as delta-seconds or an HTTP date.
pub(super) fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    let delta = date.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_dfns_error_message_then_top_level_message() {
        let nested = br#"{"error":{"id":"e1","status":403,"message":"not authorized to perform operation (Auth:Pats:Create)"}}"#;
        assert_eq!(
            error_message(StatusCode::FORBIDDEN, nested),
            "not authorized to perform operation (Auth:Pats:Create)"
        );
        assert_eq!(
            error_message(
                StatusCode::UNAUTHORIZED,
                br#"{"message":"Not Authorized."}"#
            ),
            "Not Authorized."
        );
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, br#"{"error":"bad thing"}"#),
            "bad thing"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"<html>oops</html>"),
            "Bad Gateway"
        );
    }

    #[test]
    fn error_message_scrubs_echoed_tokens() {
        let body = br#"{"error":{"message":"token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln is expired"}}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, body),
            "token [redacted] is expired"
        );
    }

    #[test]
    fn a_202_carries_the_change_request_and_approval_ids() {
        let body = br#"{"id":"cr-1","kind":"Assignment","operationKind":"Create","status":"Pending","approvalId":"ap-9","body":{"identityId":"us-1"}}"#;
        let error = into_result(
            Method::POST,
            "/permissions/pm-1/assignments",
            StatusCode::ACCEPTED,
            None,
            Zeroizing::new(body.to_vec()),
        )
        .err()
        .expect("a 202 is not a success");
        assert_eq!(error.pending_approval(), Some((Some("cr-1"), Some("ap-9"))));
        let bare = into_result(
            Method::POST,
            "/p",
            StatusCode::ACCEPTED,
            None,
            Zeroizing::new(b"{}".to_vec()),
        )
        .err()
        .expect("a 202 is not a success");
        assert_eq!(bare.pending_approval(), Some((None, None)));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header = HeaderValue::from_str(
            &jiff::fmt::rfc2822::to_string(&future.to_zoned(jiff::tz::TimeZone::UTC)).unwrap(),
        )
        .unwrap();
        let parsed = parse_retry_after(&header).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
