//! The Argo CD health check (charts/dfns-operator/argocd/health.lua) run as Argo CD runs it: the
//! object as a Lua table in the global `obj`, the script's returned table read as
//! `{status, message}`; every case of its health_test.yaml must match.

use std::path::PathBuf;

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Table};
use serde::Deserialize;

#[derive(Deserialize)]
struct TestFile {
    tests: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestCase {
    health_status: Expected,
    input_path: String,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Expected {
    status: String,
    message: String,
}

fn argocd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/dfns-operator/argocd")
}

fn health_of(script: &str, object: &serde_json::Value) -> Expected {
    let lua = Lua::new();
    // Argo CD turns JSON null into nil (absent), not a sentinel value.
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let value = lua
        .to_value_with(object, options)
        .expect("object as a Lua table");
    lua.globals().set("obj", value).unwrap();
    let result: Table = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .expect("health.lua runs");
    Expected {
        status: result.get("status").unwrap(),
        message: result.get("message").unwrap(),
    }
}

#[test]
fn argocd_health_check_matches_every_test_case() {
    let dir = argocd_dir();
    let script = std::fs::read_to_string(dir.join("health.lua")).unwrap();
    let file: TestFile =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap())
            .unwrap();
    assert!(file.tests.len() >= 8, "every state has a case");
    for case in &file.tests {
        let input: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join(&case.input_path)).unwrap())
                .unwrap();
        assert_eq!(
            health_of(&script, &input),
            case.health_status,
            "{}",
            case.input_path
        );
    }
}

#[test]
fn every_testdata_file_is_used_by_a_case() {
    let dir = argocd_dir();
    let file: TestFile =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap())
            .unwrap();
    for entry in std::fs::read_dir(dir.join("testdata")).unwrap() {
        let name = format!("testdata/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(
            file.tests.iter().any(|t| t.input_path == name),
            "{name} has no test case"
        );
    }
}
