//! The Events the operator published about a resource, as `kubectl describe` shows them.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

use crate::operator::{Setup, WAIT};

/// (reason, message) of every Event about the object `name` in the test's namespace.
pub async fn events_of(setup: &Setup, name: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(setup.kube.clone(), setup.namespace())
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Waits for an Event with `reason` about `name`; returns its message.
pub async fn wait_event(setup: &Setup, name: &str, reason: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = events_of(setup, name).await;
        if let Some((_, note)) = events.iter().find(|(r, _)| r == reason) {
            return note.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event for {name}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
