//! The one generic reconciler for `DfnsServiceAccount` and `DfnsPersonalAccessToken`.

pub mod cleanup_plan;
mod observe;
pub mod observed;
pub mod plan;
mod reconcile;
pub mod resource;

pub use reconcile::{FINALIZER, SKIP_CLEANUP_ANNOTATION, error_policy, reconcile};
pub use resource::CredentialResource;
