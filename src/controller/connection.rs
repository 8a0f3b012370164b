//! The connection reconciler: proves a connection's credentials work with one authenticated read,
//! and records `Ready` and the identity in its status.

use std::sync::Arc;

use kube::api::Api;
use kube::core::ClusterResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::conditions::Verdict;
use super::context::Context;
use super::dfns_clients::ConnectionObject;
use super::error::Error;
use super::status::StatusWriter;
use crate::api::{
    ClusterDfnsConnection, ConditionReason, ConnectionIdentity, ConnectionStatus, DfnsConnection,
};
use dfns_client::TokenClaims;

pub trait ConnectionResource:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    fn object(&self) -> ConnectionObject;
    fn api(client: kube::Client, obj: &Self) -> Api<Self>;
}

impl ConnectionResource for DfnsConnection {
    fn object(&self) -> ConnectionObject {
        self.into()
    }
    fn api(client: kube::Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }
}

impl ConnectionResource for ClusterDfnsConnection {
    fn object(&self) -> ConnectionObject {
        self.into()
    }
    fn api(client: kube::Client, _obj: &Self) -> Api<Self> {
        Api::<ClusterDfnsConnection>::all(client)
    }
}

// Keeps the two impls honest about their scopes.
const _: fn() = || {
    fn cluster_scoped<T: Resource<Scope = ClusterResourceScope>>() {}
    cluster_scoped::<ClusterDfnsConnection>();
};

pub async fn reconcile<C: ConnectionResource>(
    obj: Arc<C>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let connection = obj.object();
    let checked: Result<TokenClaims, Error> = async {
        let handle = ctx.dfns_clients.client_for(&connection).await?;
        let claims = handle.client.identity().await?;
        // The one read every identity kind may make per Dfns' caller tables (List PATs: org user,
        // end user and service account, no permission needed); List Credentials refuses service
        // accounts.
        handle
            .client
            .list(dfns_client::IdentityKind::PersonalAccessToken)
            .await?;
        Ok(claims)
    }
    .await;
    // A wait for the rate limit (or a stop) is no news about the connection.
    let checked = match checked {
        Err(error) if error.waiting().is_some() => return Err(error),
        checked => checked,
    };
    let persisted = connection.status.clone().unwrap_or_default();
    let (verdict, identity) = match &checked {
        Ok(claims) => {
            let identity = identity_of(claims, connection.spec.auth.token.is_some());
            let verdict = Verdict::Ready {
                reason: ConditionReason::Ready,
                message: format!("authenticated as {} {}", identity.kind, identity.user_id),
            };
            (verdict, Some(identity))
        }
        Err(error) => (error.verdict(), persisted.identity.clone()),
    };
    let mut writer = StatusWriter::new(C::api(ctx.kube.clone(), &obj), &*obj, persisted);
    let status = ConnectionStatus {
        identity,
        ..writer.persisted().clone()
    };
    writer.save(writer.with_verdict(status, &verdict)).await?;
    match checked {
        Ok(_) => {
            ctx.succeeded(&ObjectRef::from_obj(&*obj));
            Ok(Action::requeue(ctx.resync_delay()))
        }
        Err(error) => Err(error),
    }
}

pub fn error_policy<C: ConnectionResource>(
    obj: Arc<C>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    if let Some(retry_in) = error.waiting() {
        return Action::requeue(retry_in);
    }
    let delay = ctx.failure_delay(&ObjectRef::from_obj(&*obj));
    tracing::warn!(kind = C::kind(&()).as_ref(), name = obj.name_any(), category = error.category(), %error, "connection check failed");
    Action::requeue(error.retry_after().map_or(delay, |after| after.max(delay)))
}

/// Dfns calls a user's login session token `Temp` (older: `Auth`); we say `User`. A static
/// token's expiry is worth showing (someone must replace it); a login session's is not: the
/// operator renews it itself, and recording it would rewrite the status after every renewal.
fn identity_of(claims: &TokenClaims, static_token: bool) -> ConnectionIdentity {
    let kind = match claims.token_kind.as_deref() {
        Some("ServiceAccount") => "ServiceAccount",
        Some("Pat") => "Pat",
        _ => "User",
    };
    ConnectionIdentity {
        kind: kind.into(),
        user_id: claims.user_id.clone().unwrap_or_default(),
        org_id: claims.org_id.clone(),
        token_expires_at: claims.expires_at.filter(|_| static_token).map(Into::into),
    }
}
