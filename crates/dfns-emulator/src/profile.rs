//! How closely the emulator follows Dfns' reference pages where Dfns' own material disagrees or
//! where the old emulator was kinder than the documented API. [`Profile::strict`] (the default)
//! is the reference pages' reading; [`Profile::lenient`] is the emulator's earlier behaviour.
//! docs/emulator.md lists every disagreement and the switch for the other reading.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Whether service-account and PAT callers may use the credential endpoints (Create Credential
/// Challenge, Create/Activate/Deactivate/Delete Credential) on their own credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKeyRotation {
    /// The credential-rotation guide: an SA or PAT registers its new key itself.
    Allowed,
    /// The reference pages' caller tables: PAT ❌, Service Account ❌.
    #[default]
    Refused,
}

/// The form of `publicKey` in service-account and PAT responses (`accessTokens[]`, PAT objects).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PublicKeyForm {
    /// The PEM given at creation.
    Pem,
    /// `SHA256:` + unpadded standard base64 of SHA-256 over the key's SPKI DER.
    #[default]
    Fingerprint,
    /// `""`.
    Empty,
}

/// A write that an approval policy can hold back: it answers 202 with a change request instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalOperation {
    /// `POST /permissions/{permissionId}/assignments`.
    Assignment,
    /// `DELETE /permissions/{permissionId}/assignments/{assignmentId}`.
    Revoke,
    /// `POST /auth/service-accounts`.
    ServiceAccountCreate,
    /// `POST /auth/pats`.
    PatCreate,
    /// `PUT /auth/service-accounts/{id}/deactivate` (what a `deletionPolicy: Deactivate` sends).
    ServiceAccountDeactivate,
}

impl ApprovalOperation {
    pub const ALL: [Self; 5] = [
        Self::Assignment,
        Self::Revoke,
        Self::ServiceAccountCreate,
        Self::PatCreate,
        Self::ServiceAccountDeactivate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Assignment => "assignment",
            Self::Revoke => "revoke",
            Self::ServiceAccountCreate => "service-account-create",
            Self::PatCreate => "pat-create",
            Self::ServiceAccountDeactivate => "service-account-deactivate",
        }
    }
}

impl std::str::FromStr for ApprovalOperation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == s.trim())
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|op| op.name()).collect();
                format!(
                    "unknown approval operation {s:?} (known: {})",
                    known.join(", ")
                )
            })
    }
}

/// The emulator's fidelity switches. JSON form (camelCase) is what `GET/PUT /_emulator/profile`
/// and `/_emulator/state` show; fields omitted from a PUT take their strict value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Profile {
    /// Service-account callers may call List Credentials (`GET /auth/credentials`). The
    /// reference page marks Service Account ❌; PATs and users may always list.
    pub service_accounts_list_credentials: bool,
    /// Service-account and PAT responses carry the `externalId` given at creation. No
    /// documented response has it (it is a request field).
    pub external_id_in_responses: bool,
    pub identity_key_rotation: IdentityKeyRotation,
    /// `linkedAppId` is `""` instead of the documented `ap-…` id.
    pub empty_linked_app_id: bool,
    /// Validity in days of a service-account or PAT token created without `daysValid` /
    /// `secondsValid`. `None`: the token carries no `exp` (Dfns documents no default).
    pub default_days_valid: Option<u32>,
    pub public_key_form: PublicKeyForm,
    /// Every 429 carries `Retry-After`, whatever the faults say (Dfns documents no such header;
    /// `Faults::retry_after` turns it on for one fault setting).
    pub retry_after_on_every_429: bool,
    /// Writes held for approval (202 + change request) until approved or denied through
    /// `/_emulator/change-requests/{id}/approve|deny`. A new organization has no policy.
    pub require_approval: BTreeSet<ApprovalOperation>,
    /// A service account created without `permissionId` gets its creator's roles (an assignment
    /// of each), as older Dfns pages say. The latest reference page: no permissions by default.
    pub service_accounts_inherit_creator_permissions: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Self::strict()
    }
}

impl Profile {
    /// The reference pages' caller tables and response schemas, without approval policies.
    pub fn strict() -> Self {
        Self {
            service_accounts_list_credentials: false,
            external_id_in_responses: false,
            identity_key_rotation: IdentityKeyRotation::Refused,
            empty_linked_app_id: false,
            default_days_valid: None,
            public_key_form: PublicKeyForm::Fingerprint,
            retry_after_on_every_429: false,
            require_approval: BTreeSet::new(),
            service_accounts_inherit_creator_permissions: false,
        }
    }

    /// The emulator before it followed the reference pages: kinder than Dfns in every switch.
    pub fn lenient() -> Self {
        Self {
            service_accounts_list_credentials: true,
            external_id_in_responses: true,
            identity_key_rotation: IdentityKeyRotation::Allowed,
            empty_linked_app_id: true,
            default_days_valid: Some(365),
            public_key_form: PublicKeyForm::Pem,
            retry_after_on_every_429: true,
            require_approval: BTreeSet::new(),
            // Inheriting is harsher for the operator, not kinder: the earlier emulator did not.
            service_accounts_inherit_creator_permissions: false,
        }
    }

    pub fn requires_approval(&self, op: ApprovalOperation) -> bool {
        self.require_approval.contains(&op)
    }

    /// Rejects a zero default validity (a token valid for no time).
    pub fn validate(&self) -> Result<(), String> {
        match self.default_days_valid {
            Some(days) if !(1..=730).contains(&days) => Err(format!(
                "defaultDaysValid must be between 1 and 730, got {days} (omit it for no exp)"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_strict_and_differs_from_lenient_in_every_switch() {
        let strict = Profile::default();
        let lenient = Profile::lenient();
        assert_eq!(strict, Profile::strict());
        assert_ne!(
            strict.service_accounts_list_credentials,
            lenient.service_accounts_list_credentials
        );
        assert_ne!(
            strict.external_id_in_responses,
            lenient.external_id_in_responses
        );
        assert_ne!(strict.identity_key_rotation, lenient.identity_key_rotation);
        assert_ne!(strict.empty_linked_app_id, lenient.empty_linked_app_id);
        assert_ne!(strict.default_days_valid, lenient.default_days_valid);
        assert_ne!(strict.public_key_form, lenient.public_key_form);
        assert_ne!(
            strict.retry_after_on_every_429,
            lenient.retry_after_on_every_429
        );
    }

    #[test]
    fn partial_json_fills_in_strict_values() {
        let p: Profile =
            serde_json::from_str(r#"{"publicKeyForm":"pem","requireApproval":["pat-create"]}"#)
                .unwrap();
        assert_eq!(p.public_key_form, PublicKeyForm::Pem);
        assert!(p.requires_approval(ApprovalOperation::PatCreate));
        assert_eq!(p.identity_key_rotation, IdentityKeyRotation::Refused);
        assert!(!p.service_accounts_inherit_creator_permissions);
        let inherit: Profile =
            serde_json::from_str(r#"{"serviceAccountsInheritCreatorPermissions":true}"#).unwrap();
        assert!(inherit.service_accounts_inherit_creator_permissions);
        assert!(serde_json::from_str::<Profile>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn approval_operations_parse_by_their_flag_names() {
        for op in ApprovalOperation::ALL {
            assert_eq!(op.name().parse::<ApprovalOperation>().unwrap(), op);
            assert_eq!(serde_json::to_value(op).unwrap(), op.name());
        }
        assert!("wallet-create".parse::<ApprovalOperation>().is_err());
    }

    #[test]
    fn zero_default_validity_is_rejected() {
        let p = Profile {
            default_days_valid: Some(0),
            ..Profile::strict()
        };
        assert!(p.validate().unwrap_err().contains("defaultDaysValid"));
        assert!(Profile::lenient().validate().is_ok());
    }
}
