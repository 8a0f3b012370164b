//! What the test suites and benchmarks share: a real control plane (etcd, kube-apiserver and
//! kube-controller-manager built by `tests/controlplane/build.sh`), a namespace per test, the
//! operator run in-process against the Dfns emulator, Dfns client helpers, and chart helpers.
//!
//! ```ignore
//! use dfns_test_support::{ControlPlane, TestNamespace};
//! let cp = ControlPlane::shared();
//! let ns = TestNamespace::new(cp, "my-test").await;
//! ```

pub mod apiserver_requests;
pub mod chart;
mod control_plane;
mod crds;
pub mod credential_checks;
pub mod dfns;
mod error;
pub mod events;
pub mod hostile_endpoint;
pub mod leak_check;
pub mod leaks;
pub mod logs;
mod namespace;
pub mod node;
pub mod operator;
pub mod operator_process;
pub mod renewal_probe;

pub use control_plane::ControlPlane;
pub use crds::{apply_crd_files, crd_files};
pub use error::HarnessError;
pub use namespace::{TEST_OWNER_LABEL, TestNamespace};
pub use node::NodeCluster;

/// The repository's top folder (this crate lives in `crates/test-support`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
