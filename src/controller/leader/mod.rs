//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! reconciles (never double-create in Dfns: docs/architecture.md, "Cost rules").
//!
//! The algorithm is client-go's: a candidate takes the Lease when its holder has not renewed it
//! for `lease_duration`, measured on the candidate's own clock from when it last saw the record
//! change (so clock skew between nodes does not matter). Every write carries the resourceVersion
//! it read, so two candidates can never both win. The leader renews every `retry_period` and
//! gives up when it could not renew for `renew_deadline`, which is shorter than `lease_duration`:
//! it stops acting before anyone else may start. On shutdown it hands the Lease back at once.

mod elector;
mod leadership;
mod lease;

pub use elector::{LeaderElector, LeaderError};
pub use leadership::Leadership;
pub use lease::{LeaseConfig, LeaseConfigError, default_identity};
