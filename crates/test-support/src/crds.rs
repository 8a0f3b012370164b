//! Installing CRD manifests the way a user would (server-side apply) and waiting until served.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize;

use super::error::HarnessError;

const FIELD_MANAGER: &str = "dfns-test-harness";
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);

/// The `*.yaml` files in `dir`, sorted; none if the directory does not exist.
pub fn crd_files(dir: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HarnessError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| HarnessError::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Server-side applies every CRD document in `files` (force: the harness owns test clusters) and
/// returns once all of them are Established.
pub async fn apply_crd_files(client: &kube::Client, files: &[PathBuf]) -> Result<(), HarnessError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in files {
        for crd in read_crds(file)? {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(&crd)).await?;
            names.push(name);
        }
    }
    for name in names {
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISHED_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => return Err(HarnessError::Watch { name, source }),
            Err(_) => {
                return Err(HarnessError::CrdNotEstablished {
                    name,
                    seconds: ESTABLISHED_TIMEOUT.as_secs(),
                });
            }
        }
    }
    Ok(())
}

fn read_crds(path: &Path) -> Result<Vec<CustomResourceDefinition>, HarnessError> {
    let yaml_error = |source| HarnessError::Yaml {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut crds = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(document).map_err(yaml_error)?;
        if !value.is_null() {
            crds.push(serde_yaml_ng::from_value(value).map_err(yaml_error)?);
        }
    }
    Ok(crds)
}
