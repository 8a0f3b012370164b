//! The plumbing every call shares: reads with retries, signed writes, the user-action handshake,
//! and one logged exchange.
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DfnsClient;
use crate::auth::Session;
use crate::error::{DfnsError, ErrorCategory};
use crate::sensitive::SecretString;
use crate::transport::{ApiRequest, ApiResponse, BodyLimit, as_one_operation};
use crate::types::user_action::{Challenge, UserActionInitRequest, UserActionResponse};

impl DfnsClient {
    pub(super) async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<T, DfnsError> {
        self.read_under(path, BodyLimit::Normal).await
    }

    /// A read of one of Dfns' unpaginated lists, under the larger list cap
    /// ([`crate::ClientConfig::max_list_response_bytes`]).
    pub(super) async fn read_list<T: DeserializeOwned>(&self, path: &str) -> Result<T, DfnsError> {
        self.read_under(path, BodyLimit::List).await
    }

    async fn read_under<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: BodyLimit,
    ) -> Result<T, DfnsError> {
        let response = self
            .retrying(|session| async move {
                self.send_under(limit, Method::GET, path, &session, None, None)
                    .await
            })
            .await?;
        response.json(&Method::GET, path)
    }

    /// A POST that changes nothing in Dfns and takes no user action (a challenge request),
    /// retried like a read.
    pub(super) async fn post_unsigned<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &str,
    ) -> Result<T, DfnsError> {
        let response = self
            .retrying(|session| async move {
                self.send(Method::POST, path, &session, None, Some(body))
                    .await
            })
            .await?;
        response.json(&Method::POST, path)
    }

    pub(super) async fn write<B: Serialize, T: DeserializeOwned>(
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

    pub(super) async fn write_ignoring_body(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(), DfnsError> {
        self.signed_write(method, path, None).await.map(drop)
    }

    /// Runs `operation` with a session, retrying transient failures with backoff and a 401 once
    /// with a renewed session. Only for operations that change nothing in Dfns.
    ///
    /// The operation takes the session by value so its future borrows nothing from the loop,
    /// which keeps every client future `Send` (the controller spawns them).
    pub(super) async fn retrying<T, F, Fut>(&self, operation: F) -> Result<T, DfnsError>
    where
        F: FnMut(Session) -> Fut,
        Fut: Future<Output = Result<T, DfnsError>>,
    {
        as_one_operation(self.retrying_in_operation(operation)).await
    }

    async fn retrying_in_operation<T, F, Fut>(&self, mut operation: F) -> Result<T, DfnsError>
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
                    inner.transport.pause(delay).await?;
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
        as_one_operation(self.signed_write_in_operation(method, path, body)).await
    }

    async fn signed_write_in_operation(
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
                    inner
                        .transport
                        .pause(inner.retry.delay(attempts, retry_after(&category)))
                        .await?;
                }
                _ => return Err(error),
            }
        }
    }

    /// `POST /auth/action/init`, sign, `POST /auth/action`: a single-use token for one request.
    /// Retried as a whole, since a fresh challenge is needed after any failure.
    pub(super) async fn user_action(
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
        self.send_under(BodyLimit::Normal, method, path, session, user_action, body)
            .await
    }

    async fn send_under(
        &self,
        limit: BodyLimit,
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
                limit,
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
