//! The chart on a real node (tests/controlplane/node-up.sh): `helm install` of the image built by
//! `make image`, pods that run, elect a leader, serve metrics and fail over. A separate test binary
//! because the node is one per machine and its control plane runs in node mode.
//!
//! Needs root on Linux: on a machine that cannot run the node every test prints a loud SKIPPED
//! banner and returns (`NodeCluster::shared`). Run with `--nocapture` (`make test-node`) to see
//! the timings (node start, image build, install-to-Ready, failover).

mod failover;
mod image;
mod install;
mod release;
mod rollout_restart;
mod upgrade_uninstall;
mod workload;
