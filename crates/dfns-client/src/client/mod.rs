//! The Dfns API client: typed calls on top of authentication, user-action signing and retries.
//!
//! Retry rules, because a create is not idempotent and its token is shown only once:
//! - Reads, logins and the user-action handshake (init + sign + complete) change nothing in
//!   Dfns; they are retried with backoff and jitter on 429, 5xx, timeouts and transport errors.
//! - A write is sent once. It is sent again only when Dfns provably did not execute it: a 429
//!   (rejected by the rate limiter) or a 401 in login mode (rejected before authorization; the
//!   session is renewed and the write re-signed). A 5xx, timeout or dropped connection leaves
//!   the outcome unknown; the error goes to the caller, who looks the object up (the operator's crash-safe create).
//! - Any request that gets a 401 in login mode is retried once after logging in again.
//!
//! The calls are grouped by endpoint family, one module each; [`requests`] holds the plumbing
//! they share.
mod credentials;
mod identities;
mod pats;
mod permissions;
mod requests;
mod service_accounts;
mod users;

use std::fmt;
use std::sync::Arc;

use reqwest::Method;

use super::auth::Authenticator;
use super::config::ClientConfig;
use super::error::DfnsError;
use super::jwt::TokenClaims;
use super::retry::RetryPolicy;
use super::signer::KeySigner;
use super::transport::{Transport, TransportConfig, as_one_operation};
use super::types::ItemList;
use super::types::credential::UserCredential;

pub use credentials::{NewKeyCredential, new_cred_id};

/// A Dfns API client for one connection. Cheap to clone; clones share the session and the rate
/// limiter.
#[derive(Clone)]
pub struct DfnsClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    auth: Authenticator,
    signer: KeySigner,
    retry: RetryPolicy,
}

impl fmt::Debug for DfnsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DfnsClient")
            .field("api_url", &self.inner.transport.base_url())
            .field("auth", self.inner.auth.mode())
            .field("cred_id", &self.inner.signer.cred_id())
            .finish()
    }
}

impl DfnsClient {
    pub fn new(config: ClientConfig) -> Result<Self, DfnsError> {
        let transport = Transport::new(&TransportConfig {
            api_url: config.api_url,
            ca_bundle_pem: config.ca_bundle_pem,
            allow_insecure_http: config.allow_insecure_http,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            max_response_bytes: config.max_response_bytes,
            max_list_response_bytes: config
                .max_list_response_bytes
                .max(config.max_response_bytes),
            requests_per_minute: config.requests_per_minute,
            request_observer: config.request_observer,
            rate_limit_wait_bound: config.rate_limit_wait_bound,
            gate: config.gate,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                auth: Authenticator::new(config.auth),
                signer: config.signer,
                retry: config.retry,
            }),
        })
    }

    /// Runs `work` as one operation of this client (as a create is: only its first request may
    /// be turned away by the wait bound) with that first request's token taken before `work`
    /// starts. A caller that must write something down before its Dfns write (the operator's
    /// `pendingCreate`) learns it is throttled before that write, not after it.
    pub async fn admitted_before<T, E>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        E: From<DfnsError>,
    {
        as_one_operation(async {
            self.inner.transport.admit_ahead().await?;
            work.await
        })
        .await
    }

    pub fn api_url(&self) -> &str {
        self.inner.transport.base_url()
    }

    /// Who the client acts as, from the bearer token's claims (logs in first in login mode).
    pub async fn identity(&self) -> Result<TokenClaims, DfnsError> {
        let session = self.retrying(|session| async move { Ok(session) }).await?;
        Ok(session.claims.unwrap_or_default())
    }

    /// Proves the signing key works without changing anything: obtains a user-action token for a
    /// read (`GET /auth/pats`, which every identity kind may call) and discards it.
    pub async fn verify_signing(&self) -> Result<(), DfnsError> {
        self.user_action(&Method::GET, "/auth/pats", "")
            .await
            .map(drop)
    }

    /// The calling user's credentials.
    pub async fn list_credentials(&self) -> Result<Vec<UserCredential>, DfnsError> {
        Ok(self
            .read_list::<ItemList<UserCredential>>("/auth/credentials")
            .await?
            .items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMode;
    use crate::config::DEFAULT_API_URL;
    use crate::identity::{IdentityKind, NewIdentity};
    use crate::keys::generate_p256;

    fn assert_send<T: Send>(_: &T) {}

    /// The controller spawns these futures on a multi-threaded runtime.
    #[test]
    fn client_futures_are_send() {
        let pair = generate_p256().unwrap();
        let signer = KeySigner::from_pem("c", pair.private_key_pem.expose()).unwrap();
        let client = DfnsClient::new(ClientConfig::new(
            DEFAULT_API_URL,
            AuthMode::Token("t".into()),
            signer,
        ))
        .unwrap();
        let new = NewIdentity::default();
        assert_send(&client.list(IdentityKind::ServiceAccount));
        assert_send(&client.create(IdentityKind::PersonalAccessToken, &new));
        assert_send(&client.deactivate(IdentityKind::ServiceAccount, "us-1"));
        assert_send(&client.assign_permission("pm-1", "us-1"));
        assert_send(&client.identity());
        assert_send(&client.verify_signing());
    }
}
