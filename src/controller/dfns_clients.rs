//! Resolving a resource's `connectionRef` to a ready Dfns client. Clients are cached per
//! connection object (its UID) and spec, and its Secret's version: a connection deleted and
//! re-created under the same name, or edited, gets a new client, and rotated bootstrap
//! credentials are picked up without a restart.
//!
//! Connections are read from the shared connection watches' stores (`connection_feed.rs`) and
//! their Secrets from small watch caches (`connection_secrets.rs`): no GET per reconcile. A
//! connection missing from the store (not listed yet, or outside the operator's
//! `--cluster-connection-selector`) is read with a GET, so a miss is never taken for "deleted"
//! on a cache's word alone.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::allowed_hosts::AllowedHosts;
use super::connection_secrets::ConnectionSecrets;
use super::error::Error;
use super::secret_layout::{AUTH_TOKEN, CRED_ID, PRIVATE_KEY, TextError, text};
use crate::api::{
    ClusterDfnsConnection, ConnectionKind, ConnectionSpec, ConnectionStatus, DfnsConnection,
};
use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, Gate, KeySigner, RequestObserver, SecretString,
};

/// The longest a reconcile waits for a connection's rate limit before its next Dfns call; beyond
/// it the worker is given back and the resource requeued for when a request is possible.
const RATE_LIMIT_WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// Which connection: kind, namespace (for `DfnsConnection`) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    pub kind: ConnectionKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ConnectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.namespace) {
            (ConnectionKind::DfnsConnection, Some(ns)) => {
                write!(f, "DfnsConnection {ns}/{}", self.name)
            }
            (ConnectionKind::DfnsConnection, None) => write!(f, "DfnsConnection {}", self.name),
            (ConnectionKind::ClusterDfnsConnection, _) => {
                write!(f, "ClusterDfnsConnection {}", self.name)
            }
        }
    }
}

/// A connection object as read from the cluster.
#[derive(Clone, Debug)]
pub struct ConnectionObject {
    pub key: ConnectionKey,
    /// The object's UID: a connection re-created under the same name is another connection.
    pub uid: String,
    pub generation: i64,
    pub spec: ConnectionSpec,
    pub status: Option<ConnectionStatus>,
    pub namespace_selector: Option<LabelSelector>,
}

impl ConnectionObject {
    /// The organization: as the spec names it, or as the connection's token showed it.
    pub fn org_id(&self) -> Option<String> {
        self.spec
            .org_id
            .clone()
            .or_else(|| self.status.as_ref()?.identity.as_ref()?.org_id.clone())
    }
}

impl From<&DfnsConnection> for ConnectionObject {
    fn from(c: &DfnsConnection) -> Self {
        Self {
            key: ConnectionKey {
                kind: ConnectionKind::DfnsConnection,
                namespace: c.namespace(),
                name: c.name_any(),
            },
            uid: c.uid().unwrap_or_default(),
            generation: c.metadata.generation.unwrap_or_default(),
            spec: c.spec.connection.clone(),
            status: c.status.clone(),
            namespace_selector: None,
        }
    }
}

impl From<&ClusterDfnsConnection> for ConnectionObject {
    fn from(c: &ClusterDfnsConnection) -> Self {
        Self {
            key: ConnectionKey {
                kind: ConnectionKind::ClusterDfnsConnection,
                namespace: None,
                name: c.name_any(),
            },
            uid: c.uid().unwrap_or_default(),
            generation: c.metadata.generation.unwrap_or_default(),
            spec: c.spec.connection.clone(),
            status: c.status.clone(),
            namespace_selector: c.spec.namespace_selector.clone(),
        }
    }
}

/// A usable client for one connection.
pub struct ConnectionHandle {
    pub key: ConnectionKey,
    pub client: DfnsClient,
    /// Unique per client built: what the shared inventory listed through another client (a
    /// connection re-created or pointed elsewhere under the same name) is not served through this one.
    pub build: u64,
}

static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What a cached client was built from: the connection object, its spec, and its Secret (UID
/// and version). Any difference builds a new client; the generation alone is not enough, since a
/// re-created connection starts again at generation 1.
#[derive(Clone, Debug, PartialEq)]
struct Version {
    connection_uid: String,
    spec: ConnectionSpec,
    secret_uid: String,
    secret_version: String,
}

impl Version {
    fn of(connection: &ConnectionObject, secret: &Secret) -> Self {
        Self {
            connection_uid: connection.uid.clone(),
            spec: connection.spec.clone(),
            secret_uid: secret.uid().unwrap_or_default(),
            secret_version: secret.resource_version().unwrap_or_default(),
        }
    }
}

/// The stores of the connection watches.
#[derive(Clone)]
pub struct ConnectionStores {
    pub namespaced: Store<DfnsConnection>,
    pub cluster: Store<ClusterDfnsConnection>,
}

pub struct DfnsClients {
    kube: Client,
    stores: Option<ConnectionStores>,
    secrets: ConnectionSecrets,
    /// Where the Secrets of `ClusterDfnsConnection`s live.
    operator_namespace: String,
    cache: Mutex<HashMap<ConnectionKey, (Version, Arc<ConnectionHandle>)>>,
    request_observer: Option<RequestObserver>,
    /// Shared by every client built here (see [`crate::controller::Context::new`]).
    gate: Gate,
    allowed_api_hosts: AllowedHosts,
    max_list_response_bytes: usize,
}

impl DfnsClients {
    /// Without `stores`, every connection is read with a GET.
    pub fn new(
        kube: Client,
        stores: Option<ConnectionStores>,
        operator_namespace: String,
        request_observer: Option<RequestObserver>,
        gate: Gate,
        allowed_api_hosts: AllowedHosts,
        max_list_response_bytes: usize,
    ) -> Self {
        Self {
            secrets: ConnectionSecrets::new(kube.clone()),
            kube,
            stores,
            operator_namespace,
            cache: Mutex::default(),
            request_observer,
            gate,
            allowed_api_hosts,
            max_list_response_bytes,
        }
    }

    /// The connection object, from the watch's store; `None` when it does not exist.
    pub async fn fetch(&self, key: &ConnectionKey) -> Result<Option<ConnectionObject>, Error> {
        if let Some(cached) = self.cached(key) {
            return Ok(Some(cached));
        }
        Ok(match (&key.kind, &key.namespace) {
            (ConnectionKind::DfnsConnection, Some(ns)) => {
                Api::<DfnsConnection>::namespaced(self.kube.clone(), ns)
                    .get_opt(&key.name)
                    .await?
                    .as_ref()
                    .map(Into::into)
            }
            (ConnectionKind::DfnsConnection, None) => None,
            (ConnectionKind::ClusterDfnsConnection, _) => {
                Api::<ClusterDfnsConnection>::all(self.kube.clone())
                    .get_opt(&key.name)
                    .await?
                    .as_ref()
                    .map(Into::into)
            }
        })
    }

    /// The connection object as the watch's store holds it; never a read.
    pub fn cached(&self, key: &ConnectionKey) -> Option<ConnectionObject> {
        let stores = self.stores.as_ref()?;
        match (&key.kind, &key.namespace) {
            (ConnectionKind::DfnsConnection, Some(ns)) => stores
                .namespaced
                .get(&ObjectRef::new(&key.name).within(ns))
                .map(|c| c.as_ref().into()),
            (ConnectionKind::DfnsConnection, None) => None,
            (ConnectionKind::ClusterDfnsConnection, _) => stores
                .cluster
                .get(&ObjectRef::new(&key.name))
                .map(|c| c.as_ref().into()),
        }
    }

    /// A client for the connection, built from its Secret (cached while neither changes).
    pub async fn client_for(
        &self,
        connection: &ConnectionObject,
    ) -> Result<Arc<ConnectionHandle>, Error> {
        // Before any client exists: a host that is not allowed receives nothing, not even a login.
        self.check_api_host(connection)?;
        let secret_namespace = connection
            .key
            .namespace
            .clone()
            .unwrap_or_else(|| self.operator_namespace.clone());
        let secret_name = secret_name(&connection.spec);
        let secret = self
            .secrets
            .get(&secret_namespace, secret_name)
            .await?
            .ok_or_else(|| {
                Error::Connection(format!(
                    "{}: Secret {secret_namespace}/{secret_name} not found",
                    connection.key
                ))
            })?;
        let version = Version::of(connection, &secret);
        if let Some((cached_version, handle)) = self
            .cache
            .lock()
            .expect("registry lock")
            .get(&connection.key)
            && *cached_version == version
        {
            return Ok(handle.clone());
        }
        let handle = Arc::new(build(
            connection,
            &secret,
            &format!("{secret_namespace}/{secret_name}"),
            self.request_observer.clone(),
            self.gate.clone(),
            self.max_list_response_bytes,
        )?);
        self.cache
            .lock()
            .expect("registry lock")
            .insert(connection.key.clone(), (version, handle.clone()));
        Ok(handle)
    }

    /// Whether the connection's apiUrl names a host in `--allowed-api-hosts`.
    pub fn check_api_host(&self, connection: &ConnectionObject) -> Result<(), Error> {
        self.allowed_api_hosts
            .check_url(&connection.spec.api_url)
            .map_err(|host| Error::ApiHostNotAllowed {
                host,
                allowed: self.allowed_api_hosts.to_string(),
            })
    }

    /// A client acting as the identity whose token and key `credential` (a credential resource's
    /// Secret) holds, at the connection's endpoint: what a key rotation signs with (Dfns lets an
    /// identity manage only its own key credentials). Built per use; never cached.
    pub fn identity_client(
        &self,
        connection: &ConnectionObject,
        credential: &Secret,
    ) -> Result<DfnsClient, Error> {
        self.check_api_host(connection)?;
        let read = |key: &str| {
            text(credential, key)
                .map_err(|_| Error::Conflict(format!("the credential Secret has no usable {key}")))
        };
        let signer = KeySigner::from_pem(read(CRED_ID)?.trim(), read(PRIVATE_KEY)?)
            .map_err(|e| Error::Conflict(format!("{PRIVATE_KEY} of the credential Secret: {e}")))?;
        let auth = AuthMode::Token(SecretString::new(read(AUTH_TOKEN)?.trim()));
        let mut config = client_config(&connection.spec, auth, signer);
        config.request_observer = self.request_observer.clone();
        config.gate = self.gate.clone();
        DfnsClient::new(config).map_err(|e| Error::Connection(format!("{}: {e}", connection.key)))
    }

    /// Forget a deleted connection's client.
    pub fn forget(&self, key: &ConnectionKey) {
        self.cache.lock().expect("registry lock").remove(key);
    }
}

fn secret_name(spec: &ConnectionSpec) -> &str {
    match (&spec.auth.token, &spec.auth.user_login) {
        (Some(token), _) => &token.secret_ref.name,
        (None, Some(login)) => &login.secret_ref.name,
        (None, None) => "",
    }
}

fn build(
    connection: &ConnectionObject,
    secret: &Secret,
    secret_path: &str,
    request_observer: Option<RequestObserver>,
    gate: Gate,
    max_list_response_bytes: usize,
) -> Result<ConnectionHandle, Error> {
    let spec = &connection.spec;
    let read = |key: &str| -> Result<&str, Error> {
        text(secret, key).map_err(|e| {
            Error::Connection(match e {
                TextError::Missing => {
                    format!("{}: Secret {secret_path} has no key {key}", connection.key)
                }
                TextError::NotText => format!(
                    "{}: key {key} of Secret {secret_path} is not text",
                    connection.key
                ),
            })
        })
    };
    let signer = KeySigner::from_pem(read(CRED_ID)?.trim(), read(PRIVATE_KEY)?).map_err(|e| {
        Error::Connection(format!(
            "{}: {PRIVATE_KEY} of Secret {secret_path}: {e}",
            connection.key
        ))
    })?;
    let auth = match (&spec.auth.token, &spec.auth.user_login) {
        (Some(_), _) => AuthMode::Token(SecretString::new(read(AUTH_TOKEN)?.trim())),
        (None, Some(login)) => AuthMode::UserLogin {
            org_id: spec.org_id.clone().unwrap_or_default(),
            username: login.username.clone(),
        },
        (None, None) => {
            return Err(Error::Connection(format!(
                "{}: spec.auth names no mode",
                connection.key
            )));
        }
    };
    let mut config = client_config(spec, auth, signer);
    config.request_observer = request_observer;
    config.gate = gate;
    config.max_list_response_bytes = max_list_response_bytes;
    let client = DfnsClient::new(config)
        .map_err(|e| Error::Connection(format!("{}: {e}", connection.key)))?;
    Ok(ConnectionHandle {
        key: connection.key.clone(),
        client,
        build: BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

/// What every client for a connection's endpoint shares: URL, trust, rate limit, wait bound.
fn client_config(spec: &ConnectionSpec, auth: AuthMode, signer: KeySigner) -> ClientConfig {
    let mut config = ClientConfig::new(spec.api_url.clone(), auth, signer);
    config.ca_bundle_pem = spec.ca_bundle.clone();
    config.allow_insecure_http = spec.allow_insecure_http == Some(true);
    config.requests_per_minute = spec
        .rate_limit
        .as_ref()
        .map_or(1000, |r| r.requests_per_minute);
    config.rate_limit_wait_bound = Some(RATE_LIMIT_WAIT_BOUND);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DfnsConnectionSpec;
    use kube::api::ObjectMeta;

    fn connection(uid: &str, api_url: &str) -> ConnectionObject {
        let c = DfnsConnection {
            metadata: ObjectMeta {
                name: Some("main".into()),
                namespace: Some("team".into()),
                uid: Some(uid.into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: DfnsConnectionSpec {
                connection: ConnectionSpec {
                    api_url: api_url.into(),
                    ..Default::default()
                },
            },
            status: None,
        };
        (&c).into()
    }

    fn secret(version: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                uid: Some("secret-uid".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_connection_recreated_under_the_same_name_or_edited_needs_a_new_client() {
        let original = Version::of(&connection("uid-1", "https://a.example"), &secret("7"));
        assert_eq!(
            original,
            Version::of(&connection("uid-1", "https://a.example"), &secret("7"))
        );
        // Same name, same generation (1), same Secret: another object all the same.
        assert_ne!(
            original,
            Version::of(&connection("uid-2", "https://a.example"), &secret("7"))
        );
        assert_ne!(
            original,
            Version::of(&connection("uid-1", "https://b.example"), &secret("7"))
        );
        assert_ne!(
            original,
            Version::of(&connection("uid-1", "https://a.example"), &secret("8"))
        );
    }
}
