//! `/auth/users/{id}/activate|deactivate`: switching an organization user on and off (an admin's
//! call; the operator itself never makes it).
use reqwest::Method;

use super::DfnsClient;
use crate::error::DfnsError;
use crate::identity::path_segment;

impl DfnsClient {
    pub async fn activate_user(&self, user_id: &str) -> Result<(), DfnsError> {
        let path = format!("/auth/users/{}/activate", path_segment(user_id));
        self.write_ignoring_body(Method::PUT, &path).await
    }

    /// A deactivated user's login sessions and PATs stop authenticating until it is activated.
    pub async fn deactivate_user(&self, user_id: &str) -> Result<(), DfnsError> {
        let path = format!("/auth/users/{}/deactivate", path_segment(user_id));
        self.write_ignoring_body(Method::PUT, &path).await
    }
}
