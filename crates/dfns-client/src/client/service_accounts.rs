//! `/auth/service-accounts`: service accounts as Dfns returns them.
use reqwest::Method;

use super::DfnsClient;
use crate::error::DfnsError;
use crate::identity::IdentityKind;
use crate::types::ItemList;
use crate::types::service_account::{
    CreateServiceAccountRequest, ServiceAccount, UpdateServiceAccountRequest,
};

impl DfnsClient {
    pub async fn list_service_accounts(&self) -> Result<Vec<ServiceAccount>, DfnsError> {
        Ok(self
            .read_list::<ItemList<ServiceAccount>>("/auth/service-accounts")
            .await?
            .items)
    }

    pub async fn get_service_account(&self, id: &str) -> Result<ServiceAccount, DfnsError> {
        self.read(&IdentityKind::ServiceAccount.item_path(id)).await
    }

    pub async fn create_service_account(
        &self,
        body: &CreateServiceAccountRequest,
    ) -> Result<ServiceAccount, DfnsError> {
        self.write(Method::POST, "/auth/service-accounts", Some(body))
            .await
    }

    pub async fn update_service_account(
        &self,
        id: &str,
        body: &UpdateServiceAccountRequest,
    ) -> Result<ServiceAccount, DfnsError> {
        self.write(
            Method::PUT,
            &IdentityKind::ServiceAccount.item_path(id),
            Some(body),
        )
        .await
    }

    pub async fn activate_service_account(&self, id: &str) -> Result<ServiceAccount, DfnsError> {
        let path = format!("{}/activate", IdentityKind::ServiceAccount.item_path(id));
        self.write(Method::PUT, &path, None::<&()>).await
    }

    pub async fn deactivate_service_account(&self, id: &str) -> Result<ServiceAccount, DfnsError> {
        let path = format!("{}/deactivate", IdentityKind::ServiceAccount.item_path(id));
        self.write(Method::PUT, &path, None::<&()>).await
    }

    /// Archives the service account (Dfns has no hard delete).
    pub async fn delete_service_account(&self, id: &str) -> Result<(), DfnsError> {
        self.write_ignoring_body(Method::DELETE, &IdentityKind::ServiceAccount.item_path(id))
            .await
    }
}
