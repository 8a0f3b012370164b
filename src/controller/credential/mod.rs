//! The one generic reconciler for `DfnsServiceAccount` and `DfnsPersonalAccessToken`.
//!
//! `observe` reads the facts (`facts`), `plan`/`cleanup_plan` decide the next step from the view
//! derived from them (`observed`), `steps`/`create`/`cleanup` perform it and return what changed,
//! and `reconcile` runs that loop and writes status.

mod cleanup;
pub mod cleanup_plan;
mod create;
pub mod drift;
mod facts;
mod freshness;
pub mod key_rotation;
mod observe;
pub mod observed;
pub mod plan;
mod reconcile;
mod renew;
pub mod renewal;
pub mod resource;
mod rotate_key;
pub mod rules;
mod steps;

pub use observe::connection_key;
pub use reconcile::{FINALIZER, SKIP_CLEANUP_ANNOTATION, error_policy, reconcile};
pub use resource::CredentialResource;
