//! dfns
