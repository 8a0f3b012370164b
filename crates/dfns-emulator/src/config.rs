//! Emulator configuration and the fault-injection controls.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::profile::Profile;

/// How to run an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port (see [`super::RunningEmulator::api_url`]).
    pub listen: SocketAddr,
    /// Serve HTTPS with a freshly generated CA and server certificate.
    pub tls: bool,
    /// Extra DNS names or IPs for the server certificate (it always covers `localhost`,
    /// `127.0.0.1`, `::1` and the listen address), e.g. the name a cluster reaches it by.
    pub tls_hosts: Vec<String>,
    /// Faults injected from the start; changeable later.
    pub faults: Faults,
    /// Fidelity switches, strict (the reference pages' reading) by default; changeable later.
    /// `Profile::lenient()` asks for the emulator's earlier, kinder behaviour.
    pub profile: Profile,
    /// Username of the bootstrap organization admin.
    pub admin_username: String,
    /// Lifetime of a login challenge.
    pub login_challenge_ttl: Duration,
    /// Lifetime of user-action and credential-creation challenges.
    pub challenge_ttl: Duration,
    /// Lifetime of a signed user action before it is used.
    pub user_action_ttl: Duration,
    /// Lifetime of a login session token.
    pub session_ttl: Duration,
    /// Test knob, not a fidelity switch: how many seconds one day of `daysValid` (and of the
    /// profile's `default_days_valid`) lasts. Dfns counts real days (86 400 s, the default);
    /// service accounts take nothing shorter than one day, so tests of renewal before expiry
    /// shrink the day instead. `secondsValid` is seconds either way.
    pub seconds_per_valid_day: u32,
}

/// A real day: the default of [`EmulatorConfig::seconds_per_valid_day`].
pub const SECONDS_PER_DAY: u32 = 86_400;

impl EmulatorConfig {
    /// Rejects a zero-second day (every token would be born expired).
    pub fn validate(&self) -> Result<(), String> {
        if self.seconds_per_valid_day == 0 {
            return Err("secondsPerValidDay must be at least 1".to_owned());
        }
        self.faults.validate()?;
        self.profile.validate()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            tls_hosts: Vec::new(),
            faults: Faults::default(),
            profile: Profile::strict(),
            admin_username: "admin@emulator.local".to_owned(),
            login_challenge_ttl: Duration::from_secs(300),
            challenge_ttl: Duration::from_secs(300),
            user_action_ttl: Duration::from_secs(300),
            session_ttl: Duration::from_secs(3600),
            seconds_per_valid_day: SECONDS_PER_DAY,
        }
    }
}

/// Faults applied to Dfns API paths (never to `/_emulator/`). Default: none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Fixed delay before every response.
    pub latency: Duration,
    /// Extra random delay, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// Requests per minute allowed for the organization; more get 429.
    pub rate_limit_per_minute: Option<u32>,
    /// Requests the rate-limit bucket holds at start (and after `set_faults`); `None`: full, one
    /// minute's allowance. A benchmark shorter than a minute sets it low so the limit binds from
    /// the first second instead of never.
    pub rate_limit_initial_tokens: Option<u32>,
    /// Send `Retry-After` (seconds) with those 429s. Dfns documents no such header, so the
    /// default is not to (unless the profile's `retry_after_on_every_429` says so).
    pub retry_after: bool,
    /// Share of requests (0.0–1.0) answered with a 5xx before anything is changed.
    pub error_ratio: f64,
    /// Share of state-changing requests (0.0–1.0) that are applied but whose reply fails with
    /// 502. Reads and login/user-action signing steps are never lost.
    pub lost_response_ratio: f64,
}

impl Faults {
    /// Rejects ratios outside 0–1 and a zero rate limit.
    pub fn validate(&self) -> Result<(), String> {
        for (name, ratio) in [
            ("errorRatio", self.error_ratio),
            ("lostResponseRatio", self.lost_response_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("{name} must be between 0 and 1, got {ratio}"));
            }
        }
        if self.rate_limit_per_minute == Some(0) {
            return Err("rateLimitPerMinute must be at least 1 (omit it for no limit)".to_owned());
        }
        Ok(())
    }
}

/// JSON shape of [`Faults`] under `/_emulator/faults` (milliseconds, camelCase).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub(crate) struct FaultsWire {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub rate_limit_per_minute: Option<u32>,
    /// Only shown when set: clients written before it existed read the same shape back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_initial_tokens: Option<u32>,
    pub retry_after: bool,
    pub error_ratio: f64,
    pub lost_response_ratio: f64,
}

impl From<&Faults> for FaultsWire {
    fn from(f: &Faults) -> Self {
        Self {
            latency_ms: f.latency.as_millis() as u64,
            jitter_ms: f.jitter.as_millis() as u64,
            rate_limit_per_minute: f.rate_limit_per_minute,
            rate_limit_initial_tokens: f.rate_limit_initial_tokens,
            retry_after: f.retry_after,
            error_ratio: f.error_ratio,
            lost_response_ratio: f.lost_response_ratio,
        }
    }
}

impl From<FaultsWire> for Faults {
    fn from(w: FaultsWire) -> Self {
        Self {
            latency: Duration::from_millis(w.latency_ms),
            jitter: Duration::from_millis(w.jitter_ms),
            rate_limit_per_minute: w.rate_limit_per_minute,
            rate_limit_initial_tokens: w.rate_limit_initial_tokens,
            retry_after: w.retry_after,
            error_ratio: w.error_ratio,
            lost_response_ratio: w.lost_response_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_faults_are_valid_and_inject_nothing() {
        let f = Faults::default();
        assert!(f.validate().is_ok());
        assert_eq!(f.rate_limit_per_minute, None);
        assert!(!f.retry_after);
        assert_eq!(f.error_ratio, 0.0);
    }

    #[test]
    fn ratios_outside_unit_interval_are_rejected() {
        let f = Faults {
            error_ratio: 1.5,
            ..Faults::default()
        };
        assert!(f.validate().unwrap_err().contains("errorRatio"));
        let f = Faults {
            lost_response_ratio: -0.1,
            ..Faults::default()
        };
        assert!(f.validate().unwrap_err().contains("lostResponseRatio"));
    }

    #[test]
    fn wire_form_round_trips() {
        let f = Faults {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            rate_limit_per_minute: Some(100),
            rate_limit_initial_tokens: Some(10),
            retry_after: true,
            error_ratio: 0.1,
            lost_response_ratio: 0.2,
        };
        let json = serde_json::to_string(&FaultsWire::from(&f)).unwrap();
        let back: FaultsWire = serde_json::from_str(&json).unwrap();
        assert_eq!(Faults::from(back), f);
    }
}
