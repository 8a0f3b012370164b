//! Which API hosts a connection may name (`--allowed-api-hosts`). Pure.
//!
//! A pattern is `host` or `host:port`, case-insensitive. `*.example.com` matches one or more
//! labels in front of `example.com` (`a.example.com`, `a.b.example.com`), never `example.com`
//! itself. A pattern without a port allows any port of that host. IPv6 hosts are written in
//! brackets (`[::1]:8080`).
use std::fmt;

/// Dfns' public API hosts: Europe (default) and UAE.
pub const DEFAULT_ALLOWED_API_HOSTS: &str = "api.dfns.io,api.uae.dfns.io";

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPattern {
    /// Lower case, without the `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

/// The parsed flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHosts {
    patterns: Vec<HostPattern>,
}

impl AllowedHosts {
    /// Parses a comma-separated list; blanks around entries are ignored, an empty list refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let patterns = text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_pattern)
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err("no host given".into());
        }
        Ok(Self { patterns })
    }

    /// Whether `url`'s host (and port) is allowed. `Err` names the host, for a message.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|_| format!("API URL `{}` is not a URL", url.trim()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("API URL `{}` names no host", url.trim()))?
            .to_ascii_lowercase();
        let port = parsed.port_or_known_default();
        if self.patterns.iter().any(|p| p.matches(&host, port)) {
            Ok(())
        } else {
            Err(match parsed.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        }
    }
}

impl Default for AllowedHosts {
    fn default() -> Self {
        Self::parse(DEFAULT_ALLOWED_API_HOSTS).expect("the default parses")
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, pattern) in self.patterns.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if pattern.wildcard {
                f.write_str("*.")?;
            }
            f.write_str(&pattern.host)?;
            if let Some(port) = pattern.port {
                write!(f, ":{port}")?;
            }
        }
        Ok(())
    }
}

impl HostPattern {
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if self.port.is_some() && self.port != port {
            return false;
        }
        if self.wildcard {
            host.strip_suffix(&self.host)
                .and_then(|front| front.strip_suffix('.'))
                .is_some_and(|labels| !labels.is_empty() && !labels.ends_with('.'))
        } else {
            host == self.host
        }
    }
}

fn parse_pattern(entry: &str) -> Result<HostPattern, String> {
    let bad = |why: &str| format!("`{entry}` is not a host pattern: {why}");
    let lower = entry.to_ascii_lowercase();
    let (wildcard, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let (host_part, port_text) = match rest.strip_prefix('[') {
        Some(inner) => {
            let (address, after) = inner.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match after {
                "" => (format!("[{address}]"), None),
                _ => (
                    format!("[{address}]"),
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("junk after `]`"))?,
                    ),
                ),
            }
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        },
    };
    let port = port_text
        .map(|port| {
            port.parse::<u16>()
                .map_err(|_| bad("the port is not a number from 0 to 65535"))
        })
        .transpose()?;
    // The URL parser validates and normalises the host (IDNA, IPv6).
    let parsed = reqwest::Url::parse(&format!("https://{host_part}/"))
        .map_err(|error| bad(&error.to_string()))?;
    let host = parsed.host_str().unwrap_or_default();
    if host.is_empty()
        || host.contains('*')
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.port().is_some()
        || parsed.path() != "/"
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(bad(
            "only `host`, `host:port` and a leading `*.` are allowed",
        ));
    }
    Ok(HostPattern {
        host: host.to_owned(),
        wildcard,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(flag: &str, url: &str) -> bool {
        AllowedHosts::parse(flag).unwrap().check_url(url).is_ok()
    }

    #[test]
    fn the_default_allows_dfns_public_hosts_only() {
        let hosts = AllowedHosts::default();
        assert!(hosts.check_url("https://api.dfns.io").is_ok());
        assert!(hosts.check_url("https://API.UAE.DFNS.IO/").is_ok());
        assert_eq!(
            hosts.check_url("https://api.dfns.io.evil.example"),
            Err("api.dfns.io.evil.example".into())
        );
        assert_eq!(
            hosts.check_url("http://127.0.0.1:8080"),
            Err("127.0.0.1:8080".into())
        );
        assert!(hosts.check_url("https://evil.api.dfns.io").is_err());
    }

    #[test]
    fn a_plain_host_matches_that_host_on_any_port_case_insensitively() {
        assert!(allows(
            "Dfns.Internal.Example",
            "https://dfns.internal.example:8443"
        ));
        assert!(allows(
            "dfns.internal.example",
            "https://DFNS.internal.example"
        ));
        assert!(!allows(
            "dfns.internal.example",
            "https://x.dfns.internal.example"
        ));
        assert!(!allows("dfns.internal.example", "https://internal.example"));
    }

    #[test]
    fn a_port_pattern_matches_that_port_only() {
        assert!(allows("127.0.0.1:8080", "http://127.0.0.1:8080"));
        assert!(!allows("127.0.0.1:8080", "http://127.0.0.1:8081"));
        assert!(!allows("127.0.0.1:8080", "http://127.0.0.1"));
        assert!(allows("api.dfns.io:443", "https://api.dfns.io"));
        assert!(allows("localhost:80", "http://LOCALHOST/"));
        assert!(allows("[::1]:9000", "http://[::1]:9000"));
        assert!(!allows("[::1]:9000", "http://[::1]:9001"));
        assert!(allows("[::1]", "http://[::1]:9001"));
    }

    #[test]
    fn a_wildcard_matches_one_or_more_labels_but_not_the_bare_domain() {
        assert!(allows("*.dfns.example", "https://api.dfns.example"));
        assert!(allows("*.dfns.example", "https://a.b.dfns.example"));
        assert!(!allows("*.dfns.example", "https://dfns.example"));
        assert!(!allows("*.dfns.example", "https://evildfns.example"));
        assert!(!allows("*.dfns.example", "https://dfns.example.evil"));
        assert!(allows("*.dfns.example:8443", "https://x.dfns.example:8443"));
        assert!(!allows("*.dfns.example:8443", "https://x.dfns.example"));
    }

    #[test]
    fn lists_are_comma_separated_and_printed_back() {
        let hosts = AllowedHosts::parse(" api.dfns.io , *.Corp.Example:8443,,127.0.0.1:1").unwrap();
        assert_eq!(
            hosts.to_string(),
            "api.dfns.io,*.corp.example:8443,127.0.0.1:1"
        );
        assert!(hosts.check_url("http://127.0.0.1:1").is_ok());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            " , ",
            "https://api.dfns.io",
            "api.dfns.io/path",
            "user@api.dfns.io",
            "*api.dfns.io",
            "a.*.dfns.io",
            "api.dfns.io:port",
            "api.dfns.io:70000",
        ] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn urls_without_a_host_are_refused_with_a_message() {
        let hosts = AllowedHosts::default();
        assert!(
            hosts
                .check_url("not a url")
                .unwrap_err()
                .contains("not a URL")
        );
    }
}
