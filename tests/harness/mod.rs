//! Test harness for integration and e2e tests against a real control plane (etcd +
//! kube-apiserver + kube-controller-manager built by `tests/controlplane/build.sh`).
//!
//! ```ignore
//! mod harness;
//! let cp = harness::ControlPlane::shared();
//! let ns = harness::TestNamespace::new(cp, "my-test").await;
//! let client = cp.client();
//! ```
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unused_imports)]

mod control_plane;
mod crds;
mod error;
mod namespace;

pub use control_plane::ControlPlane;
pub use crds::{apply_crd_files, crd_files};
pub use error::HarnessError;
pub use namespace::TestNamespace;
