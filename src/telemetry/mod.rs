//! What an operator shows its operators: Prometheus metrics, health and readiness over HTTP.

pub mod credentials;
pub mod endpoint;
pub mod health;
pub mod kube_writes;
pub mod metrics;
pub mod server;

pub use credentials::{CredentialSample, CredentialSource, CredentialState};
pub use health::Health;
pub use kube_writes::KubeWriteCounterLayer;
pub use metrics::{Metrics, ReconcileOutcome};
pub use server::{ServerError, serve};
