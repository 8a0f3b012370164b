//! Where the commands find Kubernetes: an explicit kubeconfig file, or kube's inference
//! (in-cluster, then $KUBECONFIG, then ~/.kube/config).
use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Error;

pub async fn load(path: Option<&Path>) -> Result<kube::Config, Error> {
    let Some(path) = path else {
        return kube::Config::infer().await.map_err(Error::NoKubeConfig);
    };
    let unreadable = |source| Error::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let file = Kubeconfig::read_from(path).map_err(unreadable)?;
    kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(unreadable)
}
