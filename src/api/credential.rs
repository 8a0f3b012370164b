//! `DfnsServiceAccount` and `DfnsPersonalAccessToken` (docs/architecture.md, "Resources"). Both kinds share one spec
//! and one status shape so that one generic reconciler serves them; only the PAT adds
//! `secondsValid`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Annotation asking for one renewal of the token now: each new value renews once (the last
/// one acted on is `status.renewRequested`). `dfns-operator renew` sets it.
pub const RENEW_ANNOTATION: &str = "dfns.io/renew";
/// Annotation asking for one rotation of the signing key now: each new value rotates once (the
/// last one acted on is `status.keyRotationRequested`). `dfns-operator renew --key` sets it.
pub const ROTATE_KEY_ANNOTATION: &str = "dfns.io/rotate-key";

/// Which kind of connection a resource uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConnectionKind {
    DfnsConnection,
    #[default]
    ClusterDfnsConnection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    /// `DfnsConnection` (same namespace) or `ClusterDfnsConnection`.
    #[serde(default)]
    pub kind: ConnectionKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl Default for ConnectionRef {
    fn default() -> Self {
        Self {
            kind: ConnectionKind::ClusterDfnsConnection,
            name: super::DEFAULT_CLUSTER_CONNECTION.into(),
        }
    }
}

/// What happens in Dfns when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Deactivate the credential in Dfns and delete the Secret.
    #[default]
    Deactivate,
    /// Archive (delete) the credential in Dfns and delete the Secret.
    Archive,
    /// Leave the credential active in Dfns and keep the Secret.
    Retain,
}

/// Where the credential is written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Secret name; defaults to the resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Fields shared by both credential kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.daysValid) == has(oldSelf.daysValid) && (!has(self.daysValid) || self.daysValid == oldSelf.daysValid)")
        .message("daysValid is immutable once set; create a new resource for a different validity"),
    validation = Rule::new("(has(self.secret) && has(self.secret.name)) == (has(oldSelf.secret) && has(oldSelf.secret.name)) && (!has(self.secret) || !has(self.secret.name) || self.secret.name == oldSelf.secret.name)")
        .message("secret.name is immutable"),
    validation = Rule::new("has(self.connectionRef) == has(oldSelf.connectionRef) && (!has(self.connectionRef) || self.connectionRef == oldSelf.connectionRef)")
        .message("connectionRef is immutable: the credential belongs to the organization of its connection"),
)]
pub struct CredentialSpec {
    /// The connection to create the credential with; default: ClusterDfnsConnection `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_ref: Option<ConnectionRef>,
    /// Name in Dfns; default `<namespace>-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub display_name: Option<String>,
    /// Role (`pm-…`) assigned to the credential; changing it assigns the new role and revokes the old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^pm-[a-z0-9]+(-[a-z0-9]+)*$"),
        length(min = 4, max = 64)
    )]
    pub permission_id: Option<String>,
    /// Validity of the token in days, 1 to 730. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 730))]
    pub days_valid: Option<u32>,
    /// `false` deactivates the credential in Dfns, `true` activates it again.
    #[serde(default = "default_active")]
    pub active: bool,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretTemplate>,
    /// Renewal of the token before it expires, and rotation of the signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Workloads in the resource's namespace restarted (pod-template annotation
    /// `dfns.io/restartedAt`) once after the Secret switched to a new token or key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rollout_restart_targets: Vec<RolloutRestartTarget>,
}

/// A Go-style duration such as `720h`, `90m` or `1h30m` (units h, m, s, ms).
const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$";

/// When the operator renews the token and rotates the key (docs/architecture.md, "Renewal",
/// "Key rotation").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Renew when less than this is left of the token's lifetime: a new keypair and a new
    /// service account or PAT with the same role and validity. Default: one third of the
    /// token's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("renewBefore must be longer than 0s"))]
    pub renew_before: Option<String>,
    /// How long the previous credential stays active after the Secret switched to its
    /// replacement, for pods that still run with the old values; then it is retired per
    /// `deletionPolicy`. Default `1h`, and never past the previous token's expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    pub grace_period: Option<String>,
    /// Rotate the signing key on this interval, keeping the service account or PAT and its
    /// token (Dfns' credential rotation guide): a new key credential, then the old one is
    /// deactivated after `gracePeriod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("keyRotationInterval must be at least 1m"))]
    pub key_rotation_interval: Option<String>,
    /// What to do when Dfns refuses the identity a key rotation: `Report` (a condition and a
    /// Warning Event, nothing changed) or `Renew` (a renewal by replacement instead).
    #[serde(default)]
    pub on_key_rotation_refused: OnKeyRotationRefused,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnKeyRotationRefused {
    #[default]
    Report,
    Renew,
}

/// A workload restarted after the Secret switches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRestartTarget {
    pub kind: RolloutRestartKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RolloutRestartKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

fn default_active() -> bool {
    true
}

// kube's printcolumn(...) attributes look alike to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "dfns.io",
    version = "v1alpha1",
    kind = "DfnsServiceAccount",
    namespaced,
    status = "CredentialStatus",
    shortname = "dfnssa",
    category = "dfns",
    doc = "A Dfns service account whose token and key are kept in a Secret.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Active", type_ = "boolean", json_path = ".status.active"),
    printcolumn(
        name = "Dfns ID",
        type_ = "string",
        json_path = ".status.serviceAccountId"
    ),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Renews", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct DfnsServiceAccountSpec {
    #[serde(flatten)]
    pub credential: CredentialSpec,
}

// kube's printcolumn(...) attributes look alike to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "dfns.io",
    version = "v1alpha1",
    kind = "DfnsPersonalAccessToken",
    namespaced,
    status = "CredentialStatus",
    shortname = "dfnspat",
    category = "dfns",
    doc = "A Dfns personal access token of the connection's user, kept in a Secret.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Active", type_ = "boolean", json_path = ".status.active"),
    printcolumn(name = "Dfns ID", type_ = "string", json_path = ".status.tokenId"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Renews", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.daysValid) && has(self.secondsValid))")
        .message("set at most one of daysValid and secondsValid"),
    validation = Rule::new("has(self.secondsValid) == has(oldSelf.secondsValid) && (!has(self.secondsValid) || self.secondsValid == oldSelf.secondsValid)")
        .message("secondsValid is immutable once set; create a new resource for a different validity"),
)]
pub struct DfnsPersonalAccessTokenSpec {
    #[serde(flatten)]
    pub credential: CredentialSpec,
    /// Validity of the token in seconds (instead of daysValid). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 63072000))]
    pub seconds_valid: Option<u64>,
}

// The records of work under way (`pendingCreate`, `retiring`, ...) are boxed: they are absent
// from almost every cached object, and inline they made up two thirds of its size
// (`make bench-cache`, `inline_bytes`).
/// Observed state of a credential (both kinds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Dfns service account id (`us-…`), service accounts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_id: Option<String>,
    /// Dfns access token id (`to-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Dfns `credId` of the key (base64url, what `DFNS_CRED_ID` holds and the signer uses; not
    /// the `cr-…` `credentialUuid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// The operator's seal of the recorded id for this resource: its proof, where the key in the
    /// Secret cannot give one, that it recorded the id itself (docs/architecture.md, "Ownership").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The user a PAT belongs to (`us-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_user_id: Option<String>,
    /// Whether the credential is active in Dfns, as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// When the operator found the credential deactivated in Dfns by someone else. While set, it
    /// is never activated again; setting spec.active to false acknowledges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_in_dfns_at: Option<Time>,
    /// Expiry of the access token (its JWT `exp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Hex SHA-256 of the public key (SPKI DER) registered in Dfns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_sha256: Option<String>,
    /// Set just before a create call to Dfns and cleared once its ids are recorded; finding it
    /// without ids means a create may have happened whose outcome was not seen (docs/architecture.md, "Crash-safe create").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<Box<PendingCreate>>,
    /// Role assignment made for `permissionId` (`as-…`), needed to revoke it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_assignment_id: Option<String>,
    /// The role `permissionAssignmentId` assigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_permission_id: Option<String>,
    /// The previous credential: one a renewal replaced, active until `retireAt` (the grace
    /// period), or one that was lost (archived in Dfns, or its Secret gone), deactivated once its
    /// replacement is in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<Box<RetiringCredential>>,
    /// A write Dfns holds for a policy approval (it answered 202). While set, the write is not
    /// sent again (docs/architecture.md, "Approvals").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<Box<PendingApproval>>,
    /// The Dfns API URL of the connection the credential was minted through. When the
    /// connection's `apiUrl` changes, the resource goes `Stalled` (`ConnectionChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The Dfns organization the credential was minted in, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// A create that Dfns answered with permissions nobody asked for (an identity that inherited
    /// its creator's rights): the identity was deactivated at once and its token never stored.
    /// Nothing is created again until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unasked_permissions: Option<Box<UnaskedPermissions>>,
    /// When the token is renewed next: `spec.rotation.renewBefore` before its expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    /// A renewal under way: its replacement is minted into a staging Secret and switched into
    /// the Secret in one write (docs/architecture.md, "Renewal").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_renewal: Option<Box<PendingRenewal>>,
    /// The `dfns.io/renew` value last acted on: a new value renews once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_requested: Option<String>,
    /// When the Secret last switched to another token or key (a renewal, a key rotation, or a
    /// new credential after a loss); `rolloutRestartTargets` are restarted after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<Time>,
    /// The `dfns.io/rotate-key` value last acted on: a new value rotates the key once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation_requested: Option<String>,
    /// When the key is rotated next (`spec.rotation.keyRotationInterval` after the last key
    /// switch, or after the interval was first seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation_time: Option<Time>,
    /// The key credential the Secret holds when it is not the one the identity was created
    /// with (after a key rotation): Dfns keeps showing the original `credId` and `publicKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_credential: Option<Box<KeyCredential>>,
    /// A key rotation under way (docs/architecture.md, "Key rotation").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_key_rotation: Option<Box<PendingKeyRotation>>,
    /// The key credential a rotation replaced: active until `retireAt`, then deactivated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_key: Option<Box<RetiringKey>>,
    /// Dfns refused this identity a key rotation: not tried again on schedule until the spec
    /// changes (a new `dfns.io/rotate-key` value tries once more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation_refused: Option<Box<KeyRotationRefusal>>,
}

/// A Key credential of the identity (Dfns' `credId` and, where known, its `cr-…` uuid).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredential {
    pub cred_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_uuid: Option<String>,
    /// The operator's seal of `credId` for this resource; without it the id is not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingKeyRotation {
    pub started_at: Time,
    /// Why: `Scheduled` (keyRotationTime passed) or `Requested` (`dfns.io/rotate-key`).
    pub trigger: String,
    /// The `dfns.io/rotate-key` value this rotation answers, recorded once it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// The new key credential, chosen (and sealed) before it is registered: after a crash its
    /// registration is recognised by this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<KeyCredential>,
    /// Fingerprint of the new key (in the staging Secret until the switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetiringKey {
    #[serde(flatten)]
    pub credential: KeyCredential,
    pub retire_at: Time,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotationRefusal {
    pub at: Time,
    /// The resource's generation then; a spec change allows scheduled rotations again.
    pub generation: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRenewal {
    pub started_at: Time,
    /// Why: `Scheduled` (renewalTime passed), `Requested` (`dfns.io/renew`), `Expired`.
    pub trigger: String,
    /// The `dfns.io/renew` value this renewal answers, recorded once it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// The create of the replacement, as `pendingCreate` records a first create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<PendingCreate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnaskedPermissions {
    /// The identity Dfns created (`us-…` or `to-…`), deactivated at once.
    pub id: String,
    /// The roles it carried that were not asked for.
    pub permission_ids: Vec<String>,
    /// The resource's generation when it happened; a spec change allows a new create.
    pub generation: i64,
}

impl CredentialStatus {
    /// Dfns id of the recorded identity: the service account's id or the PAT's token id.
    pub fn recorded_id(&self) -> Option<&str> {
        self.service_account_id
            .as_deref()
            .or(self.token_id.as_deref())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetiringCredential {
    /// Dfns id of the lost credential (`us-…` or `to-…`).
    pub id: String,
    /// Fingerprint of its key, so that a replacement never reuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_sha256: Option<String>,
    /// The operator's seal of `id` for this resource; without it the id is never acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The previous credential of a renewal stays active until then (`rotation.gracePeriod`);
    /// unset: a lost credential, retired as soon as its replacement is in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<Time>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    pub started_at: Time,
    /// Fingerprint of the key the create call registers.
    pub public_key_sha256: String,
    /// Identities Dfns showed without key or `externalId` before this attempt began (reported
    /// for an earlier one): they cannot be this attempt's result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preexisting: Vec<String>,
    /// The operator's seal of `publicKeySha256` for this resource: only then does an identity
    /// with that key count as this attempt's result once the Secret lost the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// What waits, e.g. `assign permission pm-…` or `create service account`.
    pub operation: String,
    /// The Dfns policy approval deciding it, which the operator looks at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The change request Dfns queued (`cr-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request_id: Option<String>,
    pub requested_at: Time,
    /// The resource's generation when the write was sent; a spec change ends a decided approval.
    pub generation: i64,
    /// Once decided against: `Denied`, `Expired`, or `ApprovedWithoutToken` (an approved create,
    /// whose token Dfns shows to no one). Not retried until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The approver's reason, where Dfns gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Held while the resource was being deleted (a `deletionPolicy` write): the deletion waits
    /// for it. A write held before the deletion began is forgotten by the deletion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub during_deletion: bool,
}

/// Conditions as a map keyed by `type`, so server-side apply merges them per type.
pub(super) fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}
