//! Checking and normalising the API URL a connection names.
use crate::error::DfnsError;

/// The base URL without a trailing slash; `http://` only when explicitly allowed.
pub(super) fn normalize_base_url(
    api_url: &str,
    allow_insecure_http: bool,
) -> Result<String, DfnsError> {
    let trimmed = api_url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|_| DfnsError::Config(format!("API URL `{trimmed}` is not a URL")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(DfnsError::Config(format!(
                "API URL `{trimmed}` is plain http; set allowInsecureHttp (local emulators only)"
            )));
        }
        scheme => {
            return Err(DfnsError::Config(format!(
                "API URL scheme `{scheme}` is not http(s)"
            )));
        }
    }
    if parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(DfnsError::Config(
            "API URL must not carry a user name, password, query or fragment".into(),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_refuses_plain_http_unless_allowed() {
        assert_eq!(
            normalize_base_url("https://api.dfns.io/", false).unwrap(),
            "https://api.dfns.io"
        );
        assert!(normalize_base_url("http://127.0.0.1:8080", false).is_err());
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080", true).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_base_url("ftp://x", true).is_err());
        assert!(normalize_base_url("https://user:pw@api.dfns.io", false).is_err());
        assert!(normalize_base_url("not a url", false).is_err());
    }
}
