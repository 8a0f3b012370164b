//! Rendering the Helm chart with the real `helm` binary (built by tests/controlplane/build.sh
//! next to kubectl) and picking documents out of the output.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::repo_root;

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts").join("dfns-operator")
}

/// A binary from target/controlplane/bin; `ControlPlane::shared()` builds them when missing.
pub fn tool(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target")
        .join("controlplane")
        .join("bin")
        .join(name);
    assert!(
        path.exists(),
        "{} missing: run `make controlplane`",
        path.display()
    );
    path
}

/// `helm template <release> charts/dfns-operator --namespace <ns> [--set k=v ...]`.
pub fn helm_template(release: &str, namespace: &str, sets: &[&str]) -> String {
    let mut command = Command::new(tool("helm"));
    command
        .args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", namespace]);
    for set in sets {
        command.args(["--set", set]);
    }
    let output = command.output().expect("run helm template");
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm output is UTF-8")
}

/// Every non-empty YAML document of a multi-document stream.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|document| serde_json::Value::deserialize(document).expect("valid YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

pub fn of_kind<'a>(documents: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

pub fn one_of_kind<'a>(documents: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

/// Runs kubectl against `kubeconfig` with `stdin` as input; returns (success, stdout+stderr).
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().expect("kubectl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// YAML stream of the given documents.
pub fn to_yaml(documents: &[&serde_json::Value]) -> String {
    documents
        .iter()
        .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).unwrap()))
        .collect()
}
