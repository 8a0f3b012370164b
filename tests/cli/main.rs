//! The `dfns-operator` binary's commands other than `run`: `crds`, `verify` and `renew`. One test binary.

mod crds_in_sync;
mod renew;
mod verify;
