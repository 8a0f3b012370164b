//! results.json (merged: running one scenario keeps the others' latest figures) and the Markdown
//! table rendered from it.

use std::path::Path;

use serde_json::{Value, json};

pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "control_plane": "local etcd + kube-apiserver + kube-controller-manager (tests/controlplane, Kubernetes v1.36), same machine",
        "dfns": "in-process emulator (crates/dfns-emulator), same machine",
    })
}

/// Replaces the given scenario sections in `path` (creating it if needed) and returns the whole.
pub fn merge(path: &Path, sections: &[(&str, Value)], quick: bool) -> Value {
    let mut all = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let now = jiff::Timestamp::now().to_string();
    for (key, section) in sections {
        let mut section = section.clone();
        section["measured_at"] = json!(now);
        section["quick_mode"] = json!(quick);
        all[*key] = section;
    }
    all["machine"] = machine();
    all
}

struct Row {
    figure: &'static str,
    value: String,
    unit: &'static str,
    target: &'static str,
    met: Option<bool>,
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

pub fn markdown(all: &Value) -> String {
    let m = &all["machine"];
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} cores ({}), {} GiB RAM; {}; Dfns: {}.\n\n",
        num(&m["cores"]),
        m["cpu_model"].as_str().unwrap_or("?"),
        num(&m["memory_gib"]),
        m["control_plane"].as_str().unwrap_or(""),
        m["dfns"].as_str().unwrap_or(""),
    ));
    out.push_str(
        "| Scenario | Figure | Value | Unit | Target | Met |\n|---|---|---|---|---|---|\n",
    );
    let mut params = String::new();
    for (key, rows) in [
        ("throughput", throughput_rows(&all["throughput"], 1.1)),
        ("idle", idle_rows(&all["idle"])),
        (
            "throughput_under_load",
            throughput_rows(&all["throughput_under_load"], 1.5),
        ),
        ("memory", memory_rows(&all["memory"])),
        ("renewal", renewal_rows(&all["renewal"])),
        ("cache", cache_rows(&all["cache"])),
    ] {
        let section = &all[key];
        if section.is_null() {
            continue;
        }
        for row in rows {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            out.push_str(&format!(
                "| {key} | {} | {} | {} | {} | {met} |\n",
                row.figure, row.value, row.unit, row.target
            ));
        }
        let quick = if section["quick_mode"] == json!(true) {
            " (QUICK MODE, not the full benchmark)"
        } else {
            ""
        };
        params.push_str(&format!(
            "- **{key}**{quick}, measured {}: `{}`\n",
            section["measured_at"].as_str().unwrap_or("?"),
            section["parameters"]
        ));
    }
    out.push_str("\nParameters:\n\n");
    out.push_str(&params);
    out
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn throughput_rows(t: &Value, ratio_target: f64) -> Vec<Row> {
    let ratio_label: &'static str = if ratio_target <= 1.1 {
        "≤ 1.1"
    } else {
        "≤ 1.5"
    };
    vec![
        Row {
            figure: "wall time until all Ready",
            value: num(&t["wall_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "rate-limit floor (3 calls per create, less the client's burst)",
            value: num(&t["floor_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "wall time / floor",
            value: num(&t["ratio_to_floor"]),
            unit: "×",
            target: ratio_label,
            met: f(&t["ratio_to_floor"]).map(|r| r <= ratio_target),
        },
        Row {
            figure: "time to Ready, p50",
            value: num(&t["p50_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "time to Ready, p95",
            value: num(&t["p95_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "Dfns calls per resource (all, incl. auth)",
            value: num(&t["dfns_calls_per_resource"]),
            unit: "requests",
            target: "",
            met: None,
        },
        Row {
            figure: "Dfns writes per resource",
            value: num(&t["dfns_writes_per_resource"]),
            unit: "requests",
            target: "",
            met: None,
        },
        Row {
            figure: "Kubernetes writes per resource",
            value: num(&t["kube_writes_per_resource"]),
            unit: "writes",
            target: "",
            met: None,
        },
        Row {
            figure: "Kubernetes API requests per create (kube-apiserver's count, Event included)",
            value: num(&t["kube_requests_per_create"]),
            unit: "requests",
            target: "≤ 6",
            met: f(&t["kube_requests_per_create"]).map(|r| r <= 6.0),
        },
        Row {
            figure: "of which reads (GET + LIST)",
            value: num(&t["kube_reads_per_create"]),
            unit: "requests",
            target: "",
            met: None,
        },
        Row {
            figure: "operator CPU",
            value: num(&t["operator_cpu_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
    ]
}

fn idle_rows(i: &Value) -> Vec<Row> {
    let zero = i["met"]["zero_writes"].as_bool();
    let lists = i["met"]["only_interval_list_calls"].as_bool();
    vec![
        Row {
            figure: "Dfns writes",
            value: num(&i["dfns_writes"]),
            unit: "requests",
            target: "0",
            met: zero.map(|_| i["dfns_writes"] == json!(0)),
        },
        Row {
            figure: "Dfns reads",
            value: num(&i["dfns_reads"]),
            unit: "requests",
            target: "only list calls, ≤ interval count",
            met: lists,
        },
        Row {
            figure: "Kubernetes writes (CRs + Secrets)",
            value: num(&i["kube_writes"]),
            unit: "writes",
            target: "0",
            met: zero.map(|_| i["kube_writes"] == json!(0)),
        },
        Row {
            figure: "Kubernetes reads (GET + LIST)",
            value: num(&i["kube_reads"]),
            unit: "requests",
            target: "0",
            met: f(&i["kube_reads"]).map(|r| r == 0.0),
        },
        Row {
            figure: "Kubernetes Event objects written",
            value: num(&i["kube_writes_detail"]["event_objects_written"]),
            unit: "writes",
            target: "0",
            met: Some(i["kube_writes_detail"]["event_objects_written"] == json!(0)),
        },
        Row {
            figure: "operator CPU",
            value: num(&i["cpu_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "operator RSS",
            value: num(&i["rss_mib"]),
            unit: "MiB",
            target: "",
            met: None,
        },
    ]
}

fn renewal_rows(r: &Value) -> Vec<Row> {
    vec![
        Row {
            figure: "wall time, first renewal due → all switched and previous retired",
            value: num(&r["wall_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "floor (longer of the rate-limit floor and the spread of due times)",
            value: num(&r["floor_seconds"]),
            unit: "s",
            target: "",
            met: None,
        },
        Row {
            figure: "wall time / floor",
            value: num(&r["ratio_to_floor"]),
            unit: "×",
            target: "",
            met: None,
        },
        Row {
            figure: "Dfns calls per renewal (all, incl. auth)",
            value: num(&r["dfns_calls_per_renewal"]),
            unit: "requests",
            target: "",
            met: None,
        },
        Row {
            figure: "Dfns writes per renewal",
            value: num(&r["dfns_writes_per_renewal"]),
            unit: "requests",
            target: "",
            met: None,
        },
    ]
}

fn memory_rows(m: &Value) -> Vec<Row> {
    vec![
        Row {
            figure: "peak RSS, first step (1,000 resources; QUICK: 100), through a resync",
            value: num(&m["rss_mib_1k"]),
            unit: "MiB",
            target: "",
            met: None,
        },
        Row {
            figure: "peak RSS, all resources (10,000; QUICK: 300), through a resync",
            value: num(&m["rss_mib"]),
            unit: "MiB",
            target: "≤ 40",
            met: f(&m["rss_mib"]).map(|r| r <= 40.0),
        },
        Row {
            figure: "per resource (slope between the two)",
            value: num(&m["kib_per_resource"]),
            unit: "KiB",
            target: "≤ 2.5",
            met: f(&m["kib_per_resource"]).map(|r| r <= 2.5),
        },
        Row {
            figure: "peak RSS after the unrelated Secrets",
            value: num(&m["rss_mib_with_unrelated_secrets"]),
            unit: "MiB",
            target: "",
            met: None,
        },
        Row {
            figure: "added by the unrelated Secrets (peak)",
            value: num(&m["unrelated_secrets_added_mib"]),
            unit: "MiB",
            target: "< 5",
            met: f(&m["unrelated_secrets_added_mib"]).map(|r| r < 5.0),
        },
        Row {
            figure: "added by the unrelated Secrets (steady RSS)",
            value: num(&m["unrelated_secrets_added_steady_mib"]),
            unit: "MiB",
            target: "< 5",
            met: f(&m["unrelated_secrets_added_steady_mib"]).map(|r| r < 5.0),
        },
    ]
}

/// From the `cache_bytes` unit bench (no cluster).
fn cache_rows(c: &Value) -> Vec<Row> {
    vec![
        Row {
            figure: "heap per cached DfnsServiceAccount (stripped, in a reflector store)",
            value: num(&c["dfns_service_account_bytes"]),
            unit: "bytes",
            target: "",
            met: None,
        },
        Row {
            figure: "heap per metadata-only Secret (PartialObjectMeta in a store)",
            value: num(&c["metadata_only_secret_bytes"]),
            unit: "bytes",
            target: "",
            met: None,
        },
    ]
}
