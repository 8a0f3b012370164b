//! The one status writer both reconcilers use: conditions from a [`Verdict`], and a write only
//! when the status differs from what the API server holds, so a reconcile that learns nothing
//! new costs no write.
//!
//! Every full-status apply carries the `resourceVersion` the decision was made on. All replicas
//! share one field manager and the apply is forced, so without it a replica that was paused
//! past its Lease would overwrite, on waking, the ids the new leader recorded; with it, such a
//! write fails with 409 and the reconcile decides again on a fresh read.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::conditions::{Verdict, conditions_for};
use crate::api::{ConnectionStatus, CredentialStatus};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "dfns-operator";

/// A status carrying kstatus conditions and `observedGeneration`.
pub trait ConditionedStatus: Clone + PartialEq + Serialize {
    fn conditions(&self) -> &[Condition];
    fn set_conditions(&mut self, conditions: Vec<Condition>);
    fn observed_generation(&self) -> Option<i64>;
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

macro_rules! conditioned_status {
    ($status:ty) => {
        impl ConditionedStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn set_conditions(&mut self, conditions: Vec<Condition>) {
                self.conditions = conditions;
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    };
}
conditioned_status!(CredentialStatus);
conditioned_status!(ConnectionStatus);

/// Writes the status of one object. It remembers what the API server holds, as last read or
/// written, and writes only what differs.
pub struct StatusWriter<K, S> {
    api: Api<K>,
    name: String,
    generation: i64,
    /// The object's version as read or last written: the precondition of the next apply.
    resource_version: Option<String>,
    persisted: S,
    /// Told the version each write replaced and the one it produced.
    on_written: Option<WriteReport>,
}

/// See [`StatusWriter::reporting_to`].
pub type WriteReport = Box<dyn Fn(Option<String>, Option<String>) + Send + Sync>;

impl<K, S> StatusWriter<K, S>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: ConditionedStatus,
{
    /// `persisted` is the status as read with `obj`.
    pub fn new(api: Api<K>, obj: &K, persisted: S) -> Self {
        Self {
            api,
            name: obj.name_any(),
            generation: obj.meta().generation.unwrap_or_default(),
            resource_version: obj.resource_version(),
            persisted,
            on_written: None,
        }
    }

    /// Tells `report` the version each write replaced and the one it produced.
    pub fn reporting_to(mut self, report: WriteReport) -> Self {
        self.on_written = Some(report);
        self
    }

    fn written(&mut self, version: Option<String>) {
        let replaced = std::mem::replace(&mut self.resource_version, version);
        if let Some(report) = &self.on_written {
            report(replaced, self.resource_version.clone());
        }
    }

    /// What the API server holds.
    pub fn persisted(&self) -> &S {
        &self.persisted
    }

    /// `status` with the conditions `verdict` implies; transition times of conditions whose
    /// status did not change are kept, and an `Unchanged` verdict keeps conditions and
    /// `observedGeneration` as they were (it has not acted on this generation).
    pub fn with_verdict(&self, mut status: S, verdict: &Verdict) -> S {
        let generation = match verdict {
            Verdict::Unchanged => self.persisted.observed_generation(),
            _ => Some(self.generation),
        };
        status.set_observed_generation(generation);
        status.set_conditions(conditions_for(
            verdict,
            self.generation,
            self.persisted.conditions(),
            jiff::Timestamp::now().into(),
        ));
        status
    }

    /// Writes `status` (server-side apply, forced: the operator owns status) unless the API
    /// server already holds it.
    pub async fn save(&mut self, status: S) -> Result<(), kube::Error> {
        if status == self.persisted {
            return Ok(());
        }
        let patch = versioned_apply::<K>(&status, self.resource_version.as_deref());
        let written = self
            .api
            .patch_status(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.written(written.resource_version());
        self.persisted = status;
        Ok(())
    }

    /// Writes only the conditions `verdict` implies, as a merge patch: for a reconcile that could
    /// not observe, so fields it never saw (recorded ids) cannot be lost to its decision. An
    /// apply would remove the fields this manager set before and omits now.
    pub async fn save_conditions_only(&mut self, verdict: &Verdict) -> Result<(), kube::Error> {
        let status = self.with_verdict(self.persisted.clone(), verdict);
        if status.conditions() == self.persisted.conditions() {
            return Ok(());
        }
        let patch = json!({ "status": { "conditions": status.conditions() } });
        let written = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.written(written.resource_version());
        self.persisted.set_conditions(status.conditions().to_vec());
        Ok(())
    }
}

/// A server-side apply of `status` that only succeeds on `resource_version` (when known).
fn versioned_apply<K: Resource<DynamicType = ()>>(
    status: &impl Serialize,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    if let Some(version) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DfnsServiceAccount;

    #[test]
    fn a_status_apply_is_conditional_on_the_version_it_was_decided_on() {
        let status = CredentialStatus {
            service_account_id: Some("us-1".into()),
            ..CredentialStatus::default()
        };
        let patch = versioned_apply::<DfnsServiceAccount>(&status, Some("4711"));
        assert_eq!(patch["metadata"]["resourceVersion"], "4711");
        assert_eq!(patch["status"]["serviceAccountId"], "us-1");
        assert_eq!(patch["kind"], "DfnsServiceAccount");
        // An object never read (no version) is applied without a precondition.
        let patch = versioned_apply::<DfnsServiceAccount>(&status, None);
        assert!(patch.get("metadata").is_none());
    }
}
