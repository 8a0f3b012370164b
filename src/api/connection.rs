//! `DfnsConnection` and `ClusterDfnsConnection`: where and as whom to call Dfns (docs/architecture.md, "Resources").

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::credential::DeletionPolicy;

/// Settings shared by both connection kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.apiUrl.startsWith('https://') || (self.apiUrl.startsWith('http://') && has(self.allowInsecureHttp) && self.allowInsecureHttp)")
        .message("apiUrl must use https:// (plain http:// needs allowInsecureHttp: true, for a local emulator only)"),
    validation = Rule::new("!has(self.auth.userLogin) || has(self.orgId)")
        .message("orgId is required when auth.userLogin is used"),
)]
pub struct ConnectionSpec {
    /// Dfns API base URL: `https://api.dfns.io` (default, Europe) or `https://api.uae.dfns.io`.
    #[serde(default = "default_api_url")]
    #[schemars(length(min = 8, max = 2048))]
    pub api_url: String,
    /// Allow a plain `http://` apiUrl (a local emulator); never for a real Dfns endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,
    /// PEM bundle of a private CA that signs the API server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Dfns organization id (`or-…`); required for `auth.userLogin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^or-[a-z0-9]+(-[a-z0-9]+)*$"), length(max = 64))]
    pub org_id: Option<String>,
    /// How the operator authenticates: exactly one of `token` or `userLogin`.
    pub auth: ConnectionAuth,
    /// Request budget towards Dfns, shared by every resource that uses this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Roles (`pm-…`) that resources may request. A request for any other role goes `Stalled`
    /// with reason `PermissionNotAllowed`; unset or empty allows none. A credential that holds a
    /// role no longer listed is deactivated in Dfns (`CredentialNoLongerAllowed`) until it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowed_permission_ids: Vec<String>,
    /// Allow PATs without `permissionId`, which carry the user's full rights. Turned off, such
    /// PATs already minted are deactivated in Dfns (`CredentialNoLongerAllowed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unscoped_tokens: Option<bool>,
    /// Limits on the credentials minted through this connection, set by its owner
    /// (docs/architecture.md, "Connection rules").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_limits: Option<CredentialLimits>,
}

/// What the connection's owner allows the credentials minted through it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.allowedDeletionPolicies) || self.allowedDeletionPolicies.all(p, self.allowedDeletionPolicies.exists_one(q, q == p))")
        .message("allowedDeletionPolicies lists each policy at most once"),
)]
pub struct CredentialLimits {
    /// Longest validity, in days, of a credential minted through this connection. A resource
    /// asking for more (`daysValid`, or `secondsValid` of a PAT) goes `Stalled` with reason
    /// `LifetimeNotAllowed`; one asking for nothing is minted with this validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 730))]
    pub max_days_valid: Option<u32>,
    /// The `deletionPolicy` values resources may use; unset allows all three. A resource with
    /// another goes `Stalled` (`DeletionPolicyNotAllowed`) while it lives; at deletion the
    /// strictest allowed policy applies instead (Archive, then Deactivate, then Retain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 3))]
    pub allowed_deletion_policies: Option<Vec<DeletionPolicy>>,
    /// Whether `dfns.io/skip-cleanup: "true"` on a resource being deleted is honoured (default
    /// `true`). When `false` the annotation is ignored (with a Warning Event) and the deletion
    /// policy is applied in Dfns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honour_skip_cleanup: Option<bool>,
}

impl CredentialLimits {
    /// Whether resources may use this deletion policy.
    pub fn allows_deletion_policy(&self, policy: DeletionPolicy) -> bool {
        self.allowed_deletion_policies
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&policy))
    }

    /// The policy applied at deletion: the resource's when allowed, else the strictest allowed.
    pub fn deletion_policy_for(&self, asked: DeletionPolicy) -> DeletionPolicy {
        if self.allows_deletion_policy(asked) {
            return asked;
        }
        [
            DeletionPolicy::Archive,
            DeletionPolicy::Deactivate,
            DeletionPolicy::Retain,
        ]
        .into_iter()
        .find(|p| self.allows_deletion_policy(*p))
        .unwrap_or(DeletionPolicy::Archive)
    }

    pub fn honours_skip_cleanup(&self) -> bool {
        self.honour_skip_cleanup != Some(false)
    }
}

fn default_api_url() -> String {
    dfns_client::DEFAULT_API_URL.to_string()
}

/// Exactly one authentication mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.token) != has(self.userLogin)")
    .message("exactly one of auth.token or auth.userLogin must be set"))]
pub struct ConnectionAuth {
    /// A static bearer token with its signing key; the Secret holds `DFNS_AUTH_TOKEN`,
    /// `DFNS_CRED_ID` and `DFNS_PRIVATE_KEY` (a Secret written by this operator qualifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAuth>,
    /// An organization user with a Key credential; the Secret holds `DFNS_CRED_ID` and
    /// `DFNS_PRIVATE_KEY`. Needed to create service accounts and PATs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_login: Option<UserLoginAuth>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuth {
    pub secret_ref: SecretRef,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserLoginAuth {
    /// The user's username (usually an email address).
    #[schemars(length(min = 1, max = 256))]
    pub username: String,
    pub secret_ref: SecretRef,
}

/// A Secret in the connection's namespace (for `ClusterDfnsConnection`: the operator's namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests per minute (Dfns allows 1000 on paid plans, 100 on trial).
    #[serde(default = "default_requests_per_minute")]
    #[schemars(range(min = 1, max = 100000))]
    pub requests_per_minute: u32,
}

fn default_requests_per_minute() -> u32 {
    1000
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_minute: default_requests_per_minute(),
        }
    }
}

/// A namespaced connection, usable by resources in its own namespace.
// kube's printcolumn(...) attributes look alike to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "dfns.io",
    version = "v1alpha1",
    kind = "DfnsConnection",
    namespaced,
    status = "ConnectionStatus",
    shortname = "dfnsconn",
    category = "dfns",
    doc = "Where and as whom to call the Dfns API, for resources in this namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "API", type_ = "string", json_path = ".spec.apiUrl"),
    printcolumn(
        name = "Identity",
        type_ = "string",
        json_path = ".status.identity.userId"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct DfnsConnectionSpec {
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

/// A cluster-wide connection; its Secret lives in the operator's namespace.
// kube's printcolumn(...) attributes look alike to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "dfns.io",
    version = "v1alpha1",
    kind = "ClusterDfnsConnection",
    status = "ConnectionStatus",
    shortname = "cdfnsconn",
    category = "dfns",
    doc = "Where and as whom to call the Dfns API, shared by the namespaces it selects.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "API", type_ = "string", json_path = ".spec.apiUrl"),
    printcolumn(
        name = "Identity",
        type_ = "string",
        json_path = ".status.identity.userId"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDfnsConnectionSpec {
    #[serde(flatten)]
    pub connection: ConnectionSpec,
    /// Namespaces whose resources may use this connection; empty or unset selects all. The
    /// credentials of a namespace no longer selected are deactivated in Dfns
    /// (`CredentialNoLongerAllowed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::credential::conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ConnectionIdentity>,
}

/// Who the connection acts as, read from its token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionIdentity {
    /// `User`, `ServiceAccount` or `Pat` (the token's kind in Dfns).
    pub kind: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// When a static token (`auth.token`) expires; absent for a user login, whose session the
    /// operator renews itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<Time>,
}
