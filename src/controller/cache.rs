//! What the operator keeps of the objects it watches: only what reconciles read. Field-ownership
//! records (`managedFields`) and kubectl's copy of the last applied manifest are dropped before an
//! object reaches a reflector store; together they are most of a small object's size, and no
//! reconcile reads them (status is written by server-side apply, which the API server merges
//! with the stored object's own `managedFields`).

use futures::Stream;
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};

/// The annotation `kubectl apply` (client-side) keeps the whole last applied manifest in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes from `obj` what no reconcile reads: `managedFields` and the last-applied annotation.
/// `managedFields` becomes absent, not empty: an empty list written back would reset them.
pub fn strip_for_cache<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// Stores the objects of a watch stream, stripped, in `writer`'s store and passes on the applied
/// (stripped) objects: what a controller's own-kind trigger stream is made of.
pub fn stripped_into_store<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    events
        .modify(strip_for_cache::<K>)
        .reflect(writer)
        .applied_objects()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::StreamExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
    use kube::runtime::reflector::{self, ObjectRef};

    use super::*;
    use crate::api::{DfnsServiceAccount, DfnsServiceAccountSpec};

    fn applied_with_kubectl() -> DfnsServiceAccount {
        let mut obj = DfnsServiceAccount::new("ci", DfnsServiceAccountSpec::default());
        obj.metadata = ObjectMeta {
            name: Some("ci".into()),
            namespace: Some("team-a".into()),
            uid: Some("uid-1".into()),
            resource_version: Some("42".into()),
            labels: Some(BTreeMap::from([("app".into(), "ci".into())])),
            annotations: Some(BTreeMap::from([
                (
                    LAST_APPLIED_ANNOTATION.into(),
                    "{\"big\":\"manifest\"}".into(),
                ),
                ("team".into(), "payments".into()),
            ])),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some("kubectl".into()),
                operation: Some("Apply".into()),
                ..ManagedFieldsEntry::default()
            }]),
            finalizers: Some(vec!["dfns.io/cleanup".into()]),
            ..ObjectMeta::default()
        };
        obj
    }

    #[test]
    fn stripping_drops_managed_fields_and_last_applied_and_keeps_everything_else() {
        let original = applied_with_kubectl();
        let mut stripped = original.clone();
        strip_for_cache(&mut stripped);

        assert_eq!(stripped.metadata.managed_fields, None);
        assert_eq!(
            stripped.metadata.annotations,
            Some(BTreeMap::from([("team".into(), "payments".into())]))
        );
        let mut expected = original;
        expected.metadata.managed_fields = None;
        expected.metadata.annotations = stripped.metadata.annotations.clone();
        let json = |o: &DfnsServiceAccount| serde_json::to_value(o).expect("serializable");
        assert_eq!(json(&stripped), json(&expected));
    }

    #[tokio::test]
    async fn the_store_a_watch_fills_holds_objects_without_managed_fields_or_last_applied() {
        let (store, writer) = reflector::store::<DfnsServiceAccount>();
        let events = futures::stream::iter([
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(applied_with_kubectl())),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(applied_with_kubectl())),
        ]);

        let passed_on: Vec<_> = stripped_into_store(events, writer).collect().await;

        let cached = store
            .get(&ObjectRef::new("ci").within("team-a"))
            .expect("the object is cached");
        assert_eq!(cached.metadata.managed_fields, None);
        let annotations = cached.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED_ANNOTATION));
        assert_eq!(
            annotations.get("team").map(String::as_str),
            Some("payments")
        );
        // The trigger stream carries the same stripped objects as the store.
        assert_eq!(passed_on.len(), 2);
        for obj in passed_on {
            let obj = obj.expect("no watch error");
            assert_eq!(obj.metadata.managed_fields, None);
        }
    }
}
