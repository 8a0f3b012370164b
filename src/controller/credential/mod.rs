//! The one generic reconciler for `DfnsServiceAccount` and `DfnsPersonalAccessToken`.

pub mod cleanup_plan;
pub mod observed;
pub mod plan;
