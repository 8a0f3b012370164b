//! The image `make image` builds is the Dockerfile's (same user, entrypoint, command, port and
//! binary path), and it runs as the chart hardens it: non-root, no capabilities, read-only root.

use std::process::Command;

use dfns_test_support::{NodeCluster, repo_root};
use serde_json::{Value, json};

use crate::failover::on_node_emulator;
use crate::release::Release;

#[tokio::test(flavor = "multi_thread")]
async fn operator_image_has_the_dockerfiles_user_entrypoint_command_and_binary_and_runs_non_root_read_only_without_capabilities()
 {
    let Some(node) = NodeCluster::shared() else {
        return;
    };
    let setup = on_node_emulator(node, "node-image").await;
    let (release, _) = Release::install(node, setup.namespace(), &[]);

    let dockerfile = final_stage(&std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap());
    let archive = repo_root().join("target/images/dfns-operator.tar");
    let manifest: Value = serde_json::from_str(&tar_entry(&archive, "manifest.json")).unwrap();
    let config: Value = serde_json::from_str(&tar_entry(
        &archive,
        manifest[0]["Config"].as_str().unwrap(),
    ))
    .unwrap();
    let config = &config["config"];
    assert_eq!(config["User"], dockerfile["USER"], "USER");
    assert_eq!(config["Entrypoint"], dockerfile["ENTRYPOINT"], "ENTRYPOINT");
    assert_eq!(config["Cmd"], dockerfile["CMD"], "CMD");
    let port = format!("{}/tcp", dockerfile["EXPOSE"].as_str().unwrap());
    assert!(
        config["ExposedPorts"].get(&port).is_some(),
        "EXPOSE {port}: {config}"
    );
    let layer_listing = tar_listing_of_layer(&archive, manifest[0]["Layers"][0].as_str().unwrap());
    let binary = dockerfile["COPY"].as_str().unwrap().trim_start_matches('/');
    assert!(
        layer_listing.lines().any(|l| l == binary),
        "{binary} in the layer"
    );

    // The running containers, seen from the node: every dfns-operator process in a pod cgroup.
    let processes = operator_processes();
    assert!(
        processes.len() >= 2,
        "both replicas' processes found, got {}",
        processes.len()
    );
    for (pid, status, root_mount) in &processes {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            field("Uid:").split_whitespace().collect::<Vec<_>>(),
            ["65532"; 4],
            "pid {pid} uid"
        );
        assert_eq!(
            field("CapEff:"),
            "0000000000000000",
            "pid {pid} has no capabilities"
        );
        assert_eq!(
            field("NoNewPrivs:"),
            "1",
            "pid {pid} cannot gain privileges"
        );
        assert!(
            root_mount
                .split_whitespace()
                .nth(5)
                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            "pid {pid} root read-only: {root_mount}"
        );
    }
    release.assert_no_leaks(&setup).await;
}

/// USER, ENTRYPOINT, CMD, EXPOSE and the COPY --from destination of the Dockerfile's last stage.
fn final_stage(dockerfile: &str) -> Value {
    let stage = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a multi-stage Dockerfile")
        .1;
    let mut found = json!({});
    for line in stage.lines() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "USER" | "EXPOSE" => found[word] = json!(rest.trim()),
            "ENTRYPOINT" | "CMD" => {
                found[word] = serde_json::from_str(rest).expect("exec-form JSON")
            }
            "COPY" if rest.starts_with("--from=") => {
                found["COPY"] = json!(rest.split_whitespace().last())
            }
            _ => {}
        }
    }
    found
}

fn tar_entry(archive: &std::path::Path, name: &str) -> String {
    let out = Command::new("tar")
        .arg("xOf")
        .arg(archive)
        .arg(name)
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar xOf {name}");
    String::from_utf8(out.stdout).unwrap()
}

fn tar_listing_of_layer(archive: &std::path::Path, layer: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("tar xOf '{}' '{layer}' | tar t", archive.display()))
        .output()
        .expect("tar");
    String::from_utf8(out.stdout).unwrap()
}

/// (pid, /proc/<pid>/status, the mountinfo line of its root) of every dfns-operator process
/// running in a pod (cgroup under kubepods).
fn operator_processes() -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        if read("comm").trim() != "dfns-operator" || !read("cgroup").contains("kubepods") {
            continue;
        }
        let root = read("mountinfo")
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .unwrap_or_default()
            .to_owned();
        let status = read("status");
        found.push((pid.clone(), status, root));
    }
    found
}
