//! A local Dfns API emulator: the paths the operator uses, with Dfns' signature and permission
//! rules, plus test controls under `/_emulator/` (latency, rate limit, injected errors, lost
//! responses, fidelity profile, approval decisions, state inspection, reset).
//!
//! Start it in-process with [`Emulator::start`], or run the `dfns-emulator` binary.

mod app;
mod auth;
mod bootstrap;
mod clock;
mod config;
mod counters;
mod crypto;
mod error;
mod faults;
mod fingerprint;
mod ids;
mod json;
mod operations;
mod profile;
mod routes;
mod server;
mod state;
mod tls;
mod tokens;
mod user_actions;

pub use bootstrap::{Bootstrap, BootstrapAdmin};
pub use config::{EmulatorConfig, Faults, SECONDS_PER_DAY};
pub use counters::{EndpointCounts, RequestCounts};
pub use error::EmulatorError;
pub use profile::{ApprovalOperation, IdentityKeyRotation, Profile, PublicKeyForm};
pub use server::{Emulator, RunningEmulator};
pub use state::snapshot::{
    ChangeRequestSnapshot, CredentialSnapshot, PatSnapshot, PermissionSnapshot,
    ServiceAccountSnapshot, StateSnapshot, UserSnapshot,
};
