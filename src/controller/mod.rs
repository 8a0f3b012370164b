//! Reconcilers: one generic credential reconciler for both kinds, and the connection reconciler.

pub mod conditions;
pub mod credential;
pub mod guard;
// pub mod secret; (enabled once the Dfns client lands)
