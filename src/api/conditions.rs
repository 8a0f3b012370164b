//! Condition types and reasons shared by every kind (kstatus: `Ready`, `Reconciling`, `Stalled`).

/// The three kstatus condition types. `Reconciling` and `Stalled` are "abnormal-true":
/// they are absent or False when all is well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    Ready,
    Reconciling,
    Stalled,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
        }
    }
}

/// Stable reasons for conditions and Events; people and alerts match on these strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionReason {
    Ready,
    Creating,
    Progressing,
    Deleting,
    Inactive,
    DeactivatedInDfns,
    CredentialLost,
    SecretConflict,
    PermissionNotAllowed,
    UnscopedTokenNotAllowed,
    ConnectionNotFound,
    ConnectionNotReady,
    ConnectionNotAllowed,
    InvalidSpec,
    Forbidden,
    Unauthorized,
    DfnsUnavailable,
    RateLimited,
    PendingApproval,
    ApprovalDenied,
    ApprovedWithoutToken,
    CleanupBlocked,
    OrphanNotProven,
    /// An id in status names a Dfns identity that cannot be proven this resource's.
    ForeignCredential,
    /// The connection's apiUrl host is outside the operator's `--allowed-api-hosts`.
    ApiHostNotAllowed,
    /// The connection's rules changed and no longer allow what the credential holds.
    CredentialNoLongerAllowed,
    /// The resource asks for a longer validity than the connection's `credentialLimits`.
    LifetimeNotAllowed,
    /// The resource's `deletionPolicy` is not among the connection's allowed ones.
    DeletionPolicyNotAllowed,
    /// The connection's `apiUrl` or organization differs from the one the credential was minted with.
    ConnectionChanged,
    /// Dfns created an identity with permissions nobody asked for; it was deactivated at once.
    UnaskedPermissions,
    /// The access token in the Secret is past its expiry: workloads using it fail.
    Expired,
    /// Dfns refused the identity a rotation of its own key (`spec.rotation.onKeyRotationRefused`).
    KeyRotationRefused,
}

impl ConditionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Creating => "Creating",
            Self::Progressing => "Progressing",
            Self::Deleting => "Deleting",
            Self::Inactive => "Inactive",
            Self::DeactivatedInDfns => "DeactivatedInDfns",
            Self::CredentialLost => "CredentialLost",
            Self::SecretConflict => "SecretConflict",
            Self::PermissionNotAllowed => "PermissionNotAllowed",
            Self::UnscopedTokenNotAllowed => "UnscopedTokenNotAllowed",
            Self::ConnectionNotFound => "ConnectionNotFound",
            Self::ConnectionNotReady => "ConnectionNotReady",
            Self::ConnectionNotAllowed => "ConnectionNotAllowed",
            Self::InvalidSpec => "InvalidSpec",
            Self::Forbidden => "Forbidden",
            Self::Unauthorized => "Unauthorized",
            Self::DfnsUnavailable => "DfnsUnavailable",
            Self::RateLimited => "RateLimited",
            Self::PendingApproval => "PendingApproval",
            Self::ApprovalDenied => "ApprovalDenied",
            Self::ApprovedWithoutToken => "ApprovedWithoutToken",
            Self::CleanupBlocked => "CleanupBlocked",
            Self::OrphanNotProven => "OrphanNotProven",
            Self::ForeignCredential => "ForeignCredential",
            Self::ApiHostNotAllowed => "ApiHostNotAllowed",
            Self::CredentialNoLongerAllowed => "CredentialNoLongerAllowed",
            Self::LifetimeNotAllowed => "LifetimeNotAllowed",
            Self::DeletionPolicyNotAllowed => "DeletionPolicyNotAllowed",
            Self::ConnectionChanged => "ConnectionChanged",
            Self::UnaskedPermissions => "UnaskedPermissions",
            Self::Expired => "Expired",
            Self::KeyRotationRefused => "KeyRotationRefused",
        }
    }
}

impl std::fmt::Display for ConditionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
