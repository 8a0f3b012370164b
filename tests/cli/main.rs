//! The `dfns-operator` binary's commands other than `run`: `crds` and `verify`. One test binary.

mod crds_in_sync;
mod verify;
