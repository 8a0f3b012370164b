//! Everything request handlers share.

use std::sync::{Arc, Mutex, RwLock};

use super::config::{EmulatorConfig, Faults};
use super::counters::Counters;
use super::faults::RateLimiter;
use super::state::Store;
use super::tokens::TokenKeys;

pub(crate) struct AppState {
    pub store: Store,
    pub keys: TokenKeys,
    pub config: EmulatorConfig,
    pub faults: RwLock<Faults>,
    pub limiter: Mutex<RateLimiter>,
    pub counters: Counters,
}

pub(crate) type Shared = Arc<AppState>;

impl AppState {
    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        *limiter = RateLimiter::new(
            faults.rate_limit_per_minute,
            faults.rate_limit_initial_tokens,
        );
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    pub fn challenge_ttl_secs(&self) -> i64 {
        self.config.challenge_ttl.as_secs() as i64
    }

    pub fn login_challenge_ttl_secs(&self) -> i64 {
        self.config.login_challenge_ttl.as_secs() as i64
    }

    /// Seconds in one day of `daysValid` (the test knob; 86 400 unless a test shrinks it).
    pub fn valid_day_secs(&self) -> i64 {
        i64::from(self.config.seconds_per_valid_day)
    }

    pub fn user_action_ttl_secs(&self) -> i64 {
        self.config.user_action_ttl.as_secs() as i64
    }
}
