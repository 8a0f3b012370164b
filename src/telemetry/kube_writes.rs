//! A tower layer on the Kubernetes client that counts the operator's writes by verb and
//! resource (`dfns_operator_kubernetes_writes_total`): the cost a no-op reconcile must keep at 0.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

use super::Metrics;

#[derive(Clone)]
pub struct KubeWriteCounterLayer {
    metrics: Arc<Metrics>,
}

impl KubeWriteCounterLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for KubeWriteCounterLayer {
    type Service = KubeWriteCounter<S>;
    fn layer(&self, inner: S) -> Self::Service {
        KubeWriteCounter {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct KubeWriteCounter<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for KubeWriteCounter<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(verb) = write_verb(request.method()) {
            self.metrics
                .kube_write(verb, resource_of(request.uri().path()));
        }
        self.inner.call(request)
    }
}

fn write_verb(method: &Method) -> Option<&'static str> {
    match *method {
        Method::POST => Some("create"),
        Method::PUT => Some("update"),
        Method::PATCH => Some("patch"),
        Method::DELETE => Some("delete"),
        _ => None,
    }
}

/// The resource (and subresource) a Kubernetes API path names, without namespace or name:
/// `/api/v1/namespaces/ns/secrets/x` is `secrets`,
/// `/apis/dfns.io/v1alpha1/namespaces/ns/dfnsserviceaccounts/x/status` is `dfnsserviceaccounts/status`.
fn resource_of(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Skip `api/v1` or `apis/<group>/<version>`.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    // Skip `namespaces/<ns>` unless the namespace itself is the object.
    let rest = match rest {
        ["namespaces", _, resource, tail @ ..] => [&[*resource][..], tail].concat(),
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [] => "unknown".into(),
        [resource] | [resource, _] => (*resource).to_owned(),
        [resource, _, subresource, ..] => format!("{resource}/{subresource}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_resource_and_subresource() {
        assert_eq!(resource_of("/api/v1/namespaces/pay/secrets/x"), "secrets");
        assert_eq!(resource_of("/api/v1/namespaces/pay/secrets"), "secrets");
        assert_eq!(
            resource_of("/apis/dfns.io/v1alpha1/namespaces/pay/dfnsserviceaccounts/sa/status"),
            "dfnsserviceaccounts/status"
        );
        assert_eq!(
            resource_of("/apis/dfns.io/v1alpha1/clusterdfnsconnections/default/status"),
            "clusterdfnsconnections/status"
        );
        assert_eq!(
            resource_of("/apis/events.k8s.io/v1/namespaces/pay/events"),
            "events"
        );
        assert_eq!(
            resource_of("/apis/coordination.k8s.io/v1/namespaces/dfns-system/leases/dfns-operator"),
            "leases"
        );
        assert_eq!(resource_of("/api/v1/namespaces/pay"), "namespaces");
        assert_eq!(resource_of("/version"), "unknown");
    }

    #[test]
    fn only_writes_are_counted() {
        assert_eq!(write_verb(&Method::GET), None);
        assert_eq!(write_verb(&Method::PATCH), Some("patch"));
        assert_eq!(write_verb(&Method::DELETE), Some("delete"));
    }
}
