//! `/auth/pats`: personal access tokens as Dfns returns them.
use reqwest::Method;

use super::DfnsClient;
use crate::error::DfnsError;
use crate::identity::IdentityKind;
use crate::types::ItemList;
use crate::types::pat::{CreatePatRequest, PersonalAccessToken, UpdatePatRequest};

impl DfnsClient {
    pub async fn list_pats(&self) -> Result<Vec<PersonalAccessToken>, DfnsError> {
        Ok(self
            .read_list::<ItemList<PersonalAccessToken>>("/auth/pats")
            .await?
            .items)
    }

    pub async fn get_pat(&self, token_id: &str) -> Result<PersonalAccessToken, DfnsError> {
        self.read(&IdentityKind::PersonalAccessToken.item_path(token_id))
            .await
    }

    pub async fn create_pat(
        &self,
        body: &CreatePatRequest,
    ) -> Result<PersonalAccessToken, DfnsError> {
        self.write(Method::POST, "/auth/pats", Some(body)).await
    }

    pub async fn update_pat(
        &self,
        token_id: &str,
        body: &UpdatePatRequest,
    ) -> Result<PersonalAccessToken, DfnsError> {
        self.write(
            Method::PUT,
            &IdentityKind::PersonalAccessToken.item_path(token_id),
            Some(body),
        )
        .await
    }

    pub async fn activate_pat(&self, token_id: &str) -> Result<PersonalAccessToken, DfnsError> {
        let path = format!(
            "{}/activate",
            IdentityKind::PersonalAccessToken.item_path(token_id)
        );
        self.write(Method::PUT, &path, None::<&()>).await
    }

    pub async fn deactivate_pat(&self, token_id: &str) -> Result<PersonalAccessToken, DfnsError> {
        let path = format!(
            "{}/deactivate",
            IdentityKind::PersonalAccessToken.item_path(token_id)
        );
        self.write(Method::PUT, &path, None::<&()>).await
    }

    pub async fn delete_pat(&self, token_id: &str) -> Result<(), DfnsError> {
        self.write_ignoring_body(
            Method::DELETE,
            &IdentityKind::PersonalAccessToken.item_path(token_id),
        )
        .await
    }
}
