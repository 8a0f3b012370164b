use std::path::PathBuf;

/// Why the harness could not provide a control plane or set up test state.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{script} failed ({status}); see its output above")]
    Script {
        script: PathBuf,
        status: std::process::ExitStatus,
    },

    #[error("could not run {script}: {source}")]
    Spawn {
        script: PathBuf,
        source: std::io::Error,
    },

    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },

    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("parsing {path}: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },

    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("watching {name}: {source}")]
    Watch {
        name: String,
        source: kube::runtime::wait::Error,
    },

    #[error("CRD {name} not Established within {seconds}s")]
    CrdNotEstablished { name: String, seconds: u64 },
}
