//! dfns-operator: Dfns API credentials as Kubernetes objects.
pub mod api;
pub mod cli;
pub mod controller;
pub mod dfns;
pub mod emulator;
pub mod telemetry;
