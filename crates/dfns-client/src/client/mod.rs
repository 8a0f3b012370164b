//! The Dfns API client: typed calls on top of authentication, user-action signing and retries.
//!
//! Retry rules, because a create is not idempotent and its token is shown only once:
//! - Reads, logins and the user-action handshake (init + sign + complete) change nothing in
//!   Dfns; they are retried with backoff and jitter on 429, 5xx, timeouts and transport errors.
//! - A write is sent once. It is sent again only when Dfns provably did not execute it: a 429
//!   (rejected by the rate limiter) or a 401 in login mode (rejected before authorization; the
//!   session is renewed and the write re-signed). A 5xx, timeout or dropped connection leaves
//!   the outcome unknown; the error goes to the caller, who looks the object up (design §3).
//! - Any request that gets a 401 in login mode is retried once after logging in again.
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::{AuthMode, Authenticator, Session};
use super::identity::{
    CreatedIdentity, IdentityKind, Identity, NewIdentity, path_segment,
};
use super::error::{DfnsError, ErrorCategory};
use super::jwt::TokenClaims;
use super::retry::RetryPolicy;
use super::sensitive::SecretString;
use super::signer::KeySigner;
use super::transport::{ApiRequest, ApiResponse, Transport, TransportConfig};
use super::types::credential::UserCredential;
use super::types::pat::{CreatePatRequest, PersonalAccessToken, UpdatePatRequest};
use super::types::permission::{
    AssignPermissionRequest, CreatePermissionRequest, Permission, PermissionAssignment,
};
use super::types::service_account::{
    CreateServiceAccountRequest, ServiceAccount, UpdateServiceAccountRequest,
};
use super::types::user_action::{Challenge, UserActionInitRequest, UserActionResponse};
use super::types::{ItemList, Page};

/// The production Dfns API (Europe). `https://api.uae.dfns.io` is the other region.
pub const DEFAULT_API_URL: &str = "https://api.dfns.io";

/// Everything needed to build a [`DfnsClient`].
pub struct ClientConfig {
    pub api_url: String,
    pub auth: AuthMode,
    /// The Key credential that signs user actions (and logins, in login mode).
    pub signer: KeySigner,
    /// Extra trusted CA certificates (PEM).
    pub ca_bundle_pem: Option<String>,
    pub allow_insecure_http: bool,
    /// Shared by every request of this client (Dfns' paid-plan limit is 1000).
    pub requests_per_minute: u32,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    pub fn new(api_url: impl Into<String>, auth: AuthMode, signer: KeySigner) -> Self {
        Self {
            api_url: api_url.into(),
            auth,
            signer,
            ca_bundle_pem: None,
            allow_insecure_http: false,
            requests_per_minute: 1000,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_url", &self.api_url)
            .field("auth", &self.auth)
            .field("signer", &self.signer)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("requests_per_minute", &self.requests_per_minute)
            .finish_non_exhaustive()
    }
}

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
            requests_per_minute: config.requests_per_minute,
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

    pub fn api_url(&self) -> &str {
        self.inner.transport.base_url()
    }

    pub fn cred_id(&self) -> &str {
        self.inner.signer.cred_id()
    }

    pub fn auth_mode(&self) -> &AuthMode {
        self.inner.auth.mode()
    }

    /// Who the client acts as, from the bearer token's claims (logs in first in login mode).
    pub async fn identity(&self) -> Result<TokenClaims, DfnsError> {
        let session = self.retrying(|session| async move { Ok(session) }).await?;
        Ok(session.claims.unwrap_or_default())
    }

    /// One cheap authenticated read, for a connection's health: Ok when Dfns accepts the token.
    /// A 403 counts as success, since it proves authentication and some identities may not list
    /// credentials.
    pub async fn check_authentication(&self) -> Result<TokenClaims, DfnsError> {
        match self.list_credentials().await {
            Ok(_) => {}
            Err(error) if error.category() == ErrorCategory::Forbidden => {}
            Err(error) => return Err(error),
        }
        self.identity().await
    }

    /// Proves the signing key works without changing anything: obtains a user-action token for a
    /// read (`GET /auth/credentials`) and discards it.
    pub async fn verify_signing(&self) -> Result<(), DfnsError> {
        self.user_action(&Method::GET, "/auth/credentials", "")
            .await
            .map(drop)
    }

    // ---- service accounts ----

    pub async fn list_service_accounts(&self) -> Result<Vec<ServiceAccount>, DfnsError> {
        Ok(self
            .read::<ItemList<ServiceAccount>>("/auth/service-accounts")
            .await?
            .items)
    }

    pub async fn get_service_account(&self, id: &str) -> Result<ServiceAccount, DfnsError> {
        self.read(&IdentityKind::ServiceAccount.item_path(id))
            .await
    }

    pub async fn create_service_account(
        &self,
        body: &CreateServiceAccountRequest,
    ) -> Result<ServiceAccount, DfnsError> {
        self.write(Method::POST, "/auth/service-accounts", Some(body))
            .await
    }

    pub async fn update_service_account(
        &self,
        id: &str,
        body: &UpdateServiceAccountRequest,
    ) -> Result<ServiceAccount, DfnsError> {
        self.write(
            Method::PUT,
            &IdentityKind::ServiceAccount.item_path(id),
            Some(body),
        )
        .await
    }

    pub async fn activate_service_account(&self, id: &str) -> Result<ServiceAccount, DfnsError> {
        let path = format!("{}/activate", IdentityKind::ServiceAccount.item_path(id));
        self.write(Method::PUT, &path, None::<&()>).await
    }

    pub async fn deactivate_service_account(&self, id: &str) -> Result<ServiceAccount, DfnsError> {
        let path = format!(
            "{}/deactivate",
            IdentityKind::ServiceAccount.item_path(id)
        );
        self.write(Method::PUT, &path, None::<&()>).await
    }

    /// Archives the service account (Dfns has no hard delete).
    pub async fn delete_service_account(&self, id: &str) -> Result<(), DfnsError> {
        self.write_ignoring_body(
            Method::DELETE,
            &IdentityKind::ServiceAccount.item_path(id),
        )
        .await
    }

    // ---- personal access tokens ----

    pub async fn list_pats(&self) -> Result<Vec<PersonalAccessToken>, DfnsError> {
        Ok(self
            .read::<ItemList<PersonalAccessToken>>("/auth/pats")
            .await?
            .items)
    }

    pub async fn get_pat(&self, token_id: &str) -> Result<PersonalAccessToken, DfnsError> {
        self.read(&IdentityKind::PersonalAccessToken.item_path(token_id))
            .await
    }

    pub async fn create_pat(
        &self,
        body: &CreatePatRequest,
    ) -> Result<PersonalAccessToken, DfnsError> {
        self.write(Method::POST, "/auth/pats", Some(body)).await
    }

    pub async fn update_pat(
        &self,
        token_id: &str,
        body: &UpdatePatRequest,
    ) -> Result<PersonalAccessToken, DfnsError> {
        self.write(
            Method::PUT,
            &IdentityKind::PersonalAccessToken.item_path(token_id),
            Some(body),
        )
        .await
    }

    pub async fn activate_pat(&self, token_id: &str) -> Result<PersonalAccessToken, DfnsError> {
        let path = format!(
            "{}/activate",
            IdentityKind::PersonalAccessToken.item_path(token_id)
        );
        self.write(Method::PUT, &path, None::<&()>).await
    }

    pub async fn deactivate_pat(&self, token_id: &str) -> Result<PersonalAccessToken, DfnsError> {
        let path = format!(
            "{}/deactivate",
            IdentityKind::PersonalAccessToken.item_path(token_id)
        );
        self.write(Method::PUT, &path, None::<&()>).await
    }

    pub async fn delete_pat(&self, token_id: &str) -> Result<(), DfnsError> {
        self.write_ignoring_body(
            Method::DELETE,
            &IdentityKind::PersonalAccessToken.item_path(token_id),
        )
        .await
    }

    // ---- either kind, for the generic reconciler ----

    pub async fn list(&self, kind: IdentityKind) -> Result<Vec<Identity>, DfnsError> {
        Ok(match kind {
            IdentityKind::ServiceAccount => self
                .list_service_accounts()
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
            IdentityKind::PersonalAccessToken => self
                .list_pats()
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        })
    }

    pub async fn get(&self, kind: IdentityKind, id: &str) -> Result<Identity, DfnsError> {
        Ok(match kind {
            IdentityKind::ServiceAccount => self.get_service_account(id).await?.into(),
            IdentityKind::PersonalAccessToken => self.get_pat(id).await?.into(),
        })
    }

    /// Creates the object. Never retried after an unknown outcome: on a transport, timeout or
    /// server error, look it up by `external_id` before creating again.
    pub async fn create(
        &self,
        kind: IdentityKind,
        new: &NewIdentity,
    ) -> Result<CreatedIdentity, DfnsError> {
        let path = kind.collection_path();
        let (credential, access_token) = match kind {
            IdentityKind::ServiceAccount => {
                if new.seconds_valid.is_some() {
                    return Err(DfnsError::Config(
                        "secondsValid applies to personal access tokens only".into(),
                    ));
                }
                let mut account = self
                    .create_service_account(&CreateServiceAccountRequest {
                        name: new.name.clone(),
                        public_key: new.public_key_pem.clone(),
                        permission_id: new.permission_id.clone(),
                        external_id: new.external_id.clone(),
                        days_valid: new.days_valid,
                    })
                    .await?;
                let token = account
                    .access_tokens
                    .iter_mut()
                    .find_map(|token| token.access_token.take());
                (Identity::from(account), token)
            }
            IdentityKind::PersonalAccessToken => {
                let mut pat = self
                    .create_pat(&CreatePatRequest {
                        name: new.name.clone(),
                        public_key: new.public_key_pem.clone(),
                        permission_id: new.permission_id.clone(),
                        external_id: new.external_id.clone(),
                        days_valid: new.days_valid,
                        seconds_valid: new.seconds_valid,
                    })
                    .await?;
                let token = pat.access_token.take();
                (Identity::from(pat), token)
            }
        };
        // The object now exists in Dfns, so this error must reach the caller as "created but
        // unusable" rather than be retried: the caller retires the object by its id.
        let access_token = access_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| DfnsError::UnexpectedResponse {
                method: Method::POST,
                path: path.to_owned(),
                status: 200,
                reason: format!(
                    "created {kind} {} but the response carried no access token",
                    credential.id
                ),
            })?;
        Ok(CreatedIdentity {
            identity: credential,
            access_token,
        })
    }

    pub async fn update(
        &self,
        kind: IdentityKind,
        id: &str,
        name: Option<String>,
        external_id: Option<String>,
    ) -> Result<Identity, DfnsError> {
        Ok(match kind {
            IdentityKind::ServiceAccount => self
                .update_service_account(id, &UpdateServiceAccountRequest { name, external_id })
                .await?
                .into(),
            IdentityKind::PersonalAccessToken => self
                .update_pat(id, &UpdatePatRequest { name, external_id })
                .await?
                .into(),
        })
    }

    pub async fn activate(
        &self,
        kind: IdentityKind,
        id: &str,
    ) -> Result<Identity, DfnsError> {
        Ok(match kind {
            IdentityKind::ServiceAccount => self.activate_service_account(id).await?.into(),
            IdentityKind::PersonalAccessToken => self.activate_pat(id).await?.into(),
        })
    }

    pub async fn deactivate(
        &self,
        kind: IdentityKind,
        id: &str,
    ) -> Result<Identity, DfnsError> {
        Ok(match kind {
            IdentityKind::ServiceAccount => self.deactivate_service_account(id).await?.into(),
            IdentityKind::PersonalAccessToken => self.deactivate_pat(id).await?.into(),
        })
    }

    pub async fn delete(&self, kind: IdentityKind, id: &str) -> Result<(), DfnsError> {
        match kind {
            IdentityKind::ServiceAccount => self.delete_service_account(id).await,
            IdentityKind::PersonalAccessToken => self.delete_pat(id).await,
        }
    }

    // ---- permissions and credentials ----

    /// All permissions (roles) of the organisation, following pagination.
    pub async fn list_permissions(&self) -> Result<Vec<Permission>, DfnsError> {
        self.read_all_pages("/permissions").await
    }

    pub async fn get_permission(&self, permission_id: &str) -> Result<Permission, DfnsError> {
        self.read(&format!("/permissions/{}", path_segment(permission_id)))
            .await
    }

    pub async fn create_permission(
        &self,
        body: &CreatePermissionRequest,
    ) -> Result<Permission, DfnsError> {
        self.write(Method::POST, "/permissions", Some(body)).await
    }

    /// Assigns `permission_id` to an identity (`us-...` for users and service accounts, `to-...`
    /// for PATs). A policy requiring approval yields [`ErrorCategory::PendingApproval`].
    pub async fn assign_permission(
        &self,
        permission_id: &str,
        identity_id: &str,
    ) -> Result<PermissionAssignment, DfnsError> {
        let path = format!("/permissions/{}/assignments", path_segment(permission_id));
        let body = AssignPermissionRequest {
            identity_id: identity_id.to_owned(),
        };
        self.write(Method::POST, &path, Some(&body)).await
    }

    pub async fn revoke_permission(
        &self,
        permission_id: &str,
        assignment_id: &str,
    ) -> Result<(), DfnsError> {
        let path = format!(
            "/permissions/{}/assignments/{}",
            path_segment(permission_id),
            path_segment(assignment_id)
        );
        self.write_ignoring_body(Method::DELETE, &path).await
    }

    /// All assignments of a permission, following pagination.
    pub async fn list_permission_assignments(
        &self,
        permission_id: &str,
    ) -> Result<Vec<PermissionAssignment>, DfnsError> {
        self.read_all_pages(&format!(
            "/permissions/{}/assignments",
            path_segment(permission_id)
        ))
        .await
    }

    /// The calling user's credentials.
    pub async fn list_credentials(&self) -> Result<Vec<UserCredential>, DfnsError> {
        Ok(self
            .read::<ItemList<UserCredential>>("/auth/credentials")
            .await?
            .items)
    }

    // ---- plumbing ----

    async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<T, DfnsError> {
        let response = self
            .retrying(
                |session| async move { self.send(Method::GET, path, &session, None, None).await },
            )
            .await?;
        response.json(&Method::GET, path)
    }

    async fn read_all_pages<T: DeserializeOwned>(&self, base: &str) -> Result<Vec<T>, DfnsError> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                Some(token) => format!("{base}?paginationToken={}", path_segment(token)),
                None => base.to_owned(),
            };
            let page: Page<T> = self.read(&path).await?;
            items.extend(page.items);
            match page.next_page_token.filter(|token| !token.is_empty()) {
                // A server repeating its token would loop forever; stop instead.
                Some(token) if next.as_ref() != Some(&token) => next = Some(token),
                _ => return Ok(items),
            }
        }
    }

    async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, DfnsError> {
        let body = body
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| DfnsError::Config(format!("cannot encode the body of {method} {path}")))?;
        let response = self
            .signed_write(method.clone(), path, body.as_deref())
            .await?;
        response.json(&method, path)
    }

    async fn write_ignoring_body(&self, method: Method, path: &str) -> Result<(), DfnsError> {
        self.signed_write(method, path, None).await.map(drop)
    }

    /// Runs `operation` with a session, retrying transient failures with backoff and a 401 once
    /// with a renewed session. Only for operations that change nothing in Dfns.
    ///
    /// The operation takes the session by value so its future borrows nothing from the loop,
    /// which keeps every client future `Send` (the controller spawns them).
    async fn retrying<T, F, Fut>(&self, mut operation: F) -> Result<T, DfnsError>
    where
        F: FnMut(Session) -> Fut,
        Fut: Future<Output = Result<T, DfnsError>>,
    {
        let inner = &*self.inner;
        let mut attempts = 0;
        let mut renewed = false;
        loop {
            attempts += 1;
            let (error, rejected) = match inner.auth.session(&inner.transport, &inner.signer).await
            {
                Ok(session) => {
                    let token = session.token.clone();
                    match operation(session).await {
                        Ok(value) => return Ok(value),
                        Err(error) => (error, Some(token)),
                    }
                }
                Err(error) => (error, None),
            };
            match error.category() {
                ErrorCategory::Unauthorized
                    if !renewed && inner.auth.can_renew() && rejected.is_some() =>
                {
                    renewed = true;
                    inner
                        .auth
                        .invalidate(rejected.as_ref().expect("checked"))
                        .await;
                }
                category if category.is_transient() && inner.retry.allows_another(attempts) => {
                    let delay = inner.retry.delay(attempts, retry_after(&category));
                    tracing::debug!(error = %error, attempt = attempts, ?delay, "retrying Dfns request");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(error),
            }
        }
    }

    /// A write with user-action signing; see the module documentation for when it is re-sent.
    async fn signed_write(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<ApiResponse, DfnsError> {
        let inner = &*self.inner;
        let mut attempts = 0;
        let mut renewed = false;
        loop {
            attempts += 1;
            let (session, user_action) =
                self.user_action(&method, path, body.unwrap_or("")).await?;
            let error = match self
                .send(method.clone(), path, &session, Some(&user_action), body)
                .await
            {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            match error.category() {
                ErrorCategory::Unauthorized if !renewed && inner.auth.can_renew() => {
                    renewed = true;
                    inner.auth.invalidate(&session.token).await;
                }
                category @ ErrorCategory::RateLimited { .. }
                    if inner.retry.allows_another(attempts) =>
                {
                    tokio::time::sleep(inner.retry.delay(attempts, retry_after(&category))).await;
                }
                _ => return Err(error),
            }
        }
    }

    /// `POST /auth/action/init`, sign, `POST /auth/action`: a single-use token for one request.
    /// Retried as a whole, since a fresh challenge is needed after any failure.
    async fn user_action(
        &self,
        method: &Method,
        path: &str,
        payload: &str,
    ) -> Result<(Session, SecretString), DfnsError> {
        let init = serde_json::to_string(&UserActionInitRequest {
            user_action_payload: payload.to_owned(),
            user_action_http_method: method.as_str().to_owned(),
            user_action_http_path: path.split('?').next().unwrap_or(path).to_owned(),
            user_action_server_kind: "Api",
        })
        .map_err(|_| DfnsError::Config("cannot encode user action init".into()))?;
        let init = init.as_str();
        self.retrying(|session| async move {
            let challenge: Challenge = self
                .send(
                    Method::POST,
                    "/auth/action/init",
                    &session,
                    None,
                    Some(init),
                )
                .await?
                .json(&Method::POST, "/auth/action/init")?;
            let signed = serde_json::to_string(&self.inner.signer.sign(&challenge)?)
                .map_err(|_| DfnsError::Config("cannot encode signed challenge".into()))?;
            let response: UserActionResponse = self
                .send(Method::POST, "/auth/action", &session, None, Some(&signed))
                .await?
                .json(&Method::POST, "/auth/action")?;
            Ok((session, response.user_action))
        })
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        session: &Session,
        user_action: Option<&SecretString>,
        body: Option<&str>,
    ) -> Result<ApiResponse, DfnsError> {
        let result = self
            .inner
            .transport
            .send(ApiRequest {
                method: method.clone(),
                path,
                bearer: Some(&session.token),
                user_action,
                body,
            })
            .await;
        match &result {
            Ok(response) => {
                tracing::debug!(%method, path, status = response.status.as_u16(), "Dfns request")
            }
            Err(error) => tracing::debug!(%method, path, error = %error, "Dfns request failed"),
        }
        result
    }
}

fn retry_after(category: &ErrorCategory) -> Option<Duration> {
    match category {
        ErrorCategory::RateLimited { retry_after } => *retry_after,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_send(&client.list_permission_assignments("pm-1"));
        assert_send(&client.identity());
        assert_send(&client.verify_signing());
    }
}
