//! The emulator as Dfns' reference pages describe Dfns, driven by a raw HTTP client of its own
//! (`support`) that can also send what a correct client never would. One test binary; a module
//! per area of the API.

mod approvals;
mod cli;
mod credentials;
mod faults;
mod login;
mod pats;
mod permissions;
mod service_accounts;
mod strict;
mod support;
mod token_lifetime;
mod user_actions;
