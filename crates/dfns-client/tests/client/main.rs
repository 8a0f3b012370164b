//! The Dfns client against the in-process emulator (and, for what the emulator cannot provoke on
//! purpose, a scripted stub): every typed call, every error category, login, rate limiting and
//! redaction. One test binary; a module per concern.

mod approvals;
mod calls;
mod errors;
mod exchange;
mod hostile;
mod key_rotation;
mod login;
mod rate_limit;
mod redaction;
mod stub;
