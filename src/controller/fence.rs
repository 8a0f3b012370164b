//! Fencing the Kubernetes writes of a leader whose Lease may have run out: the controllers'
//! client refuses every write once the leadership gate is past its deadline (a renew deadline
//! after the last successful renewal, on the monotonic clock). A replica paused past its Lease
//! (SIGSTOP, a long GC pause) thus writes nothing when it wakes, even before its renewer learns
//! that another replica leads. Reads and watches pass. The Lease itself is written through
//! another client, so it can still be handed back.
//!
//! Shutdown alone does not fence Kubernetes writes: a reconcile whose Dfns call was answered may
//! still record it during the shutdown grace period.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use dfns_client::Gate;
use http::{Method, Request, Response};
use kube::client::Body;

/// The error a fenced write fails with (inside `kube::Error::Service`).
#[derive(Debug, thiserror::Error)]
#[error("refused to write to Kubernetes: this replica's leadership may have expired")]
pub struct Fenced;

/// `kube` with every write refused while `gate` is past its deadline.
pub fn fenced_client(kube: kube::Client, gate: Gate) -> kube::Client {
    let default_namespace = kube.default_namespace().to_owned();
    kube::Client::new(FencedService { kube, gate }, default_namespace)
}

/// Whether `error` is a write refused by the fence.
pub fn refused(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Service(inner) if inner.is::<Fenced>())
}

#[derive(Clone)]
struct FencedService {
    kube: kube::Client,
    gate: Gate,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Request<Body>> for FencedService {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let write = !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if write && self.gate.is_expired() {
            return Box::pin(async { Err(Box::new(Fenced) as BoxError) });
        }
        let kube = self.kube.clone();
        // The inner client's error goes back boxed; the outer client unboxes it unchanged, so
        // callers still see the API server's status codes.
        Box::pin(async move {
            kube.send(request)
                .await
                .map_err(|e| Box::new(e) as BoxError)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fenced_refusal_counts_as_refused() {
        assert!(refused(&kube::Error::Service(Box::new(Fenced))));
        assert!(!refused(&kube::Error::Service("connection reset".into())));
    }
}
