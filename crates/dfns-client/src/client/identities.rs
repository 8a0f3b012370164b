//! Either kind of identity through one set of calls, for the generic reconciler: each call picks
//! the kind's endpoint and maps the answer onto [`Identity`].
use reqwest::Method;

use super::DfnsClient;
use crate::error::DfnsError;
use crate::identity::{CreatedIdentity, Identity, IdentityKind, NewIdentity};
use crate::types::ConvertedList;
use crate::types::pat::{CreatePatRequest, PersonalAccessToken, UpdatePatRequest};
use crate::types::service_account::{
    CreateServiceAccountRequest, ServiceAccount, UpdateServiceAccountRequest,
};

impl DfnsClient {
    /// Every identity of `kind`, each mapped onto [`Identity`] as it is parsed.
    pub async fn list(&self, kind: IdentityKind) -> Result<Vec<Identity>, DfnsError> {
        let path = kind.collection_path();
        Ok(match kind {
            IdentityKind::ServiceAccount => {
                self.read_list::<ConvertedList<ServiceAccount, Identity>>(path)
                    .await?
                    .items
            }
            IdentityKind::PersonalAccessToken => {
                self.read_list::<ConvertedList<PersonalAccessToken, Identity>>(path)
                    .await?
                    .items
            }
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
        let (identity, access_token) = match kind {
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
                    identity.id
                ),
            })?;
        Ok(CreatedIdentity {
            identity,
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

    pub async fn activate(&self, kind: IdentityKind, id: &str) -> Result<Identity, DfnsError> {
        Ok(match kind {
            IdentityKind::ServiceAccount => self.activate_service_account(id).await?.into(),
            IdentityKind::PersonalAccessToken => self.activate_pat(id).await?.into(),
        })
    }

    pub async fn deactivate(&self, kind: IdentityKind, id: &str) -> Result<Identity, DfnsError> {
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
}
