//! dfns-operator: Dfns API credentials as Kubernetes objects. The Dfns client is the
//! `dfns-client` crate; this crate holds the resources, the reconcilers and the process around them.
pub mod api;
pub mod cli;
pub mod controller;
pub mod telemetry;
