//! Every in-process operator's logs, at trace level for the operator's own targets, captured as
//! JSON lines into one file per test process, so the leak check can search what an operator
//! would print at its most verbose.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Operator targets at trace, the Kubernetes runtime at debug, everything else at info.
pub const FILTER: &str =
    "info,dfns_operator=trace,dfns_client=trace,kube_runtime=debug,kube_client=debug";

static CAPTURE: OnceLock<PathBuf> = OnceLock::new();

/// Installs the capturing subscriber (once per process) and returns the file it writes to.
pub fn capture() -> &'static Path {
    CAPTURE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("dfns-operator-test-{}.log", std::process::id()));
        let file = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("log capture {}: {e}", path.display()));
        let installed = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(FILTER))
            .json()
            .flatten_event(true)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
        assert!(
            installed.is_ok(),
            "another tracing subscriber was installed first: the operator's logs would not be captured"
        );
        path
    })
}

/// The lines captured so far whose target is the operator's (`dfns_operator…`, `dfns_client…`,
/// `kube…`): the emulator's own logs are left out.
pub fn operator_lines(text: &str) -> String {
    text.lines()
        .filter(|line| {
            [
                "\"target\":\"dfns_operator",
                "\"target\":\"dfns_client",
                "\"target\":\"kube",
            ]
            .iter()
            .any(|t| line.contains(t))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The captured logs of this process's in-process operators.
pub fn captured() -> String {
    let text = std::fs::read_to_string(capture()).expect("read captured logs");
    operator_lines(&text)
}
