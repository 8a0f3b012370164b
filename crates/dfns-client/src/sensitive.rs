//! A string that must never be shown: tokens, private keys, user-action tokens.
//!
//! `Debug` and `Display` print `[redacted]`; the bytes are zeroized when the value is dropped.
//! There is deliberately no `Serialize` impl, so a secret cannot end up in a JSON log by accident;
//! callers that must send it (HTTP headers, Kubernetes Secrets) call [`SecretString::expose`].
use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroize;

/// What every redacted value prints as.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Also registers the value with [`crate::redact`], so error texts never carry it.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::redact::register(&value);
        Self(value)
    }

    /// The secret itself. Call sites are where a secret leaves the process; keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Responses carry tokens (`accessToken`, `token`, `userAction`); they are wrapped on arrival.
impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SecretString::new("eyJhbGciOiJFZERTQSJ9.top-secret");
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(secret.expose(), "eyJhbGciOiJFZERTQSJ9.top-secret");
    }

    #[test]
    fn deserializes_from_a_json_string() {
        #[derive(Deserialize, Debug)]
        struct Body {
            token: SecretString,
        }
        let body: Body = serde_json::from_str(r#"{"token":"abc.def.ghi"}"#).unwrap();
        assert_eq!(body.token.expose(), "abc.def.ghi");
        assert!(!format!("{body:?}").contains("abc.def.ghi"));
    }

    #[test]
    fn zeroize_clears_the_buffer() {
        // Drop calls exactly this; checking it on a live value avoids reading freed memory.
        let mut secret = SecretString::new("sensitive");
        secret.0.zeroize();
        assert!(secret.is_empty());
    }
}
