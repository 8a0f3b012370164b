//! The CRD manifests, as `dfns-operator crds` prints them and `crds/` holds them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{ClusterDfnsConnection, DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};

pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        DfnsConnection::crd(),
        ClusterDfnsConnection::crd(),
        DfnsServiceAccount::crd(),
        DfnsPersonalAccessToken::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    all_crds()
        .iter()
        .map(|crd| {
            format!(
                "---\n{}",
                serde_yaml_ng::to_string(crd).expect("CRD serialises to YAML")
            )
        })
        .collect()
}
