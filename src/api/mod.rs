//! Custom resource types of the `dfns.io/v1alpha1` API (docs/architecture.md, "Resources").
//!
//! The types derive their OpenAPI schemas and CEL rules; `crds/` holds the generated YAML
//! (`dfns-operator crds`), and a test keeps the two identical.

mod conditions;
mod connection;
mod crds;
mod credential;

pub use conditions::{ConditionReason, ConditionType};
pub use connection::{
    ClusterDfnsConnection, ClusterDfnsConnectionSpec, ConnectionAuth, ConnectionIdentity,
    ConnectionSpec, ConnectionStatus, CredentialLimits, DfnsConnection, DfnsConnectionSpec,
    RateLimit, SecretRef, TokenAuth, UserLoginAuth,
};
pub use crds::{all_crds, crds_yaml};
pub use credential::{
    ConnectionKind, ConnectionRef, CredentialSpec, CredentialStatus, DeletionPolicy,
    DfnsPersonalAccessToken, DfnsPersonalAccessTokenSpec, DfnsServiceAccount,
    DfnsServiceAccountSpec, KeyCredential, KeyRotationRefusal, OnKeyRotationRefused,
    PendingApproval, PendingCreate, PendingKeyRotation, PendingRenewal, RENEW_ANNOTATION,
    ROTATE_KEY_ANNOTATION, RetiringCredential, RetiringKey, RolloutRestartKind,
    RolloutRestartTarget, Rotation, SecretTemplate, UnaskedPermissions,
};

/// API group of every resource of this operator.
pub const GROUP: &str = "dfns.io";
/// Name of the cluster connection used when a resource names none.
pub const DEFAULT_CLUSTER_CONNECTION: &str = "default";
