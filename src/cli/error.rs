//! Why a command could not start: a flag that does not parse, or no way to reach Kubernetes.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("no Kubernetes configuration: {0}")]
    NoKubeConfig(#[source] kube::config::InferConfigError),
    #[error("Kubernetes client: {0}")]
    KubeClient(#[source] kube::Error),
    #[error("{0:?} is not a duration such as 90s, 10m or 1h")]
    NotADuration(String),
    #[error("{text:?}: unknown unit {unit:?} (use s, m or h)")]
    UnknownDurationUnit { text: String, unit: String },
    #[error("the duration must be positive")]
    ZeroDuration,
}
