//! Dfns API client: keys, user-action signing, login, typed endpoints, and errors that callers
//! branch on.
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod exchange;
pub mod gate;
pub mod identity;
pub mod jwt;
pub mod keys;
mod rate_limit;
pub mod redact;
pub mod retry;
pub mod sensitive;
pub mod signer;
mod transport;
pub mod types;

pub use auth::AuthMode;
pub use client::{DfnsClient, NewKeyCredential, new_cred_id};
pub use config::{
    ClientConfig, DEFAULT_API_URL, DEFAULT_MAX_LIST_RESPONSE_BYTES, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use error::{DfnsError, ErrorCategory};
pub use exchange::{ExchangeOutcome, RequestObserver};
pub use gate::Gate;
pub use identity::{CreatedIdentity, Identity, IdentityKind, NewIdentity};
pub use jwt::{TokenClaims, decode_claims};
pub use keys::{GeneratedKeyPair, KeyError, PrivateKey, generate_p256};
pub use redact::scrub;
pub use retry::RetryPolicy;
pub use sensitive::SecretString;
pub use signer::KeySigner;
pub use transport::install_crypto_provider;
