//! Reconcilers: one generic credential reconciler for both kinds, and the connection reconciler.

pub mod allowed_hosts;
pub mod cache;
pub mod conditions;
pub mod connection;
pub mod connection_feed;
pub mod connection_secrets;
pub mod connection_slots;
pub mod context;
pub mod crash_point;
pub mod credential;
pub mod dfns_clients;
pub mod drift_watch;
pub mod error;
pub mod event_series;
pub mod fence;
pub mod guard;
pub mod inventory;
pub mod leader;
pub mod own_writes;
pub mod owned_secrets;
pub mod restart;
pub mod restart_targets;
pub mod run;
pub mod seal;
pub mod secret_layout;
pub mod status;

pub use context::{Context, ControllerConfig};
pub use error::Error;
pub use run::{RunOptions, run, run_with};
