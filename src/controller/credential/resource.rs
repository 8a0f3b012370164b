//! What the generic reconciler needs from each credential kind; the kinds differ only in their
//! Dfns endpoints, their id field and PAT-only `secondsValid`.

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{CredentialSpec, CredentialStatus, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_client::{Identity, IdentityKind};

pub trait CredentialResource:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const DFNS_KIND: IdentityKind;
    fn credential_spec(&self) -> &CredentialSpec;
    fn credential_status(&self) -> Option<&CredentialStatus>;
    fn seconds_valid(&self) -> Option<u64> {
        None
    }
}

impl CredentialResource for DfnsServiceAccount {
    const DFNS_KIND: IdentityKind = IdentityKind::ServiceAccount;
    fn credential_spec(&self) -> &CredentialSpec {
        &self.spec.credential
    }
    fn credential_status(&self) -> Option<&CredentialStatus> {
        self.status.as_ref()
    }
}

impl CredentialResource for DfnsPersonalAccessToken {
    const DFNS_KIND: IdentityKind = IdentityKind::PersonalAccessToken;
    fn credential_spec(&self) -> &CredentialSpec {
        &self.spec.credential
    }
    fn credential_status(&self) -> Option<&CredentialStatus> {
        self.status.as_ref()
    }
    fn seconds_valid(&self) -> Option<u64> {
        self.spec.seconds_valid
    }
}

/// The name the credential has in Dfns: `spec.displayName`, or `<namespace>-<name>`.
pub fn display_name<K: CredentialResource>(obj: &K) -> String {
    obj.credential_spec()
        .display_name
        .clone()
        .unwrap_or_else(|| {
            format!(
                "{}-{}",
                obj.meta().namespace.as_deref().unwrap_or_default(),
                obj.meta().name.as_deref().unwrap_or_default()
            )
        })
}

/// Writes the ids of `credential` into `status`, in the fields of its kind.
pub fn record_ids(status: &mut CredentialStatus, credential: &Identity) {
    match credential.kind {
        IdentityKind::ServiceAccount => {
            status.service_account_id = Some(credential.id.clone());
            status.token_id = credential.token_id.clone();
            status.linked_user_id = None;
        }
        IdentityKind::PersonalAccessToken => {
            status.service_account_id = None;
            status.token_id = Some(credential.id.clone());
            status.linked_user_id = credential.linked_user_id.clone();
        }
    }
    status.credential_id = credential.cred_id.clone();
    status.active = Some(credential.is_active);
}

/// Clears every id of the recorded credential.
pub fn clear_ids(status: &mut CredentialStatus) {
    status.seal = None;
    status.service_account_id = None;
    status.token_id = None;
    status.credential_id = None;
    status.linked_user_id = None;
    status.active = None;
    status.deactivated_in_dfns_at = None;
    status.expires_at = None;
    status.public_key_sha256 = None;
    status.permission_assignment_id = None;
    status.assigned_permission_id = None;
}
