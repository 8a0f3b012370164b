//! Dfns-side setup shared by the suites: an in-process emulator, clients for it, minted credentials.

use std::time::Duration;

use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, IdentityKind, KeySigner, NewIdentity, RetryPolicy,
    SecretString, generate_p256,
};
use dfns_emulator::{Emulator, EmulatorConfig, RunningEmulator};

/// An in-process emulator with the default configuration (the strict profile: no kinder than
/// Dfns' reference pages).
pub async fn start_emulator() -> RunningEmulator {
    start_emulator_with(EmulatorConfig::default()).await
}

pub async fn start_emulator_with(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// Quick retries so tests that exercise them stay fast.
pub fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    }
}

/// A client configuration for the emulator: plain HTTP allowed, its CA trusted in TLS mode, a
/// 10 s timeout and [`fast_retries`].
pub fn config_for(emulator: &RunningEmulator, auth: AuthMode, signer: KeySigner) -> ClientConfig {
    let mut config = ClientConfig::new(emulator.api_url(), auth, signer);
    config.allow_insecure_http = true;
    config.ca_bundle_pem = emulator.bootstrap().ca_cert.clone();
    config.request_timeout = Duration::from_secs(10);
    config.retry = fast_retries(3);
    config
}

/// How the bootstrap admin authenticates: a user login signed with its Key credential.
pub fn admin_login(emulator: &RunningEmulator) -> (AuthMode, KeySigner) {
    let bootstrap = emulator.bootstrap();
    let signer = KeySigner::from_pem(
        bootstrap.admin.cred_id.clone(),
        &bootstrap.admin.private_key,
    )
    .expect("admin key");
    let auth = AuthMode::UserLogin {
        org_id: bootstrap.org_id.clone(),
        username: bootstrap.admin.username.clone(),
    };
    (auth, signer)
}

/// The bootstrap admin, logging in with its Key credential (see [`config_for`]).
pub fn admin_config(emulator: &RunningEmulator) -> ClientConfig {
    let (auth, signer) = admin_login(emulator);
    config_for(emulator, auth, signer)
}

/// A client acting as the bootstrap admin.
pub fn admin_client(emulator: &RunningEmulator) -> DfnsClient {
    DfnsClient::new(admin_config(emulator)).expect("admin client")
}

/// A freshly minted token credential (service account or PAT), as the operator would write it.
pub struct Minted {
    pub id: String,
    pub cred_id: String,
    pub token: SecretString,
    pub private_key_pem: SecretString,
    pub public_key_pem: String,
}

/// Creates a service account or PAT named `name` as `admin` would for the operator.
pub async fn mint(admin: &DfnsClient, kind: IdentityKind, name: &str) -> Minted {
    let pair = generate_p256().unwrap();
    let created = admin
        .create(
            kind,
            &NewIdentity {
                name: name.to_owned(),
                public_key_pem: pair.public_key_pem.clone(),
                external_id: Some(format!("uid-{name}")),
                ..NewIdentity::default()
            },
        )
        .await
        .expect("create credential");
    Minted {
        id: created.identity.id.clone(),
        cred_id: created
            .identity
            .cred_id
            .clone()
            .expect("credId in create response"),
        token: created.access_token,
        private_key_pem: pair.private_key_pem,
        public_key_pem: pair.public_key_pem,
    }
}

/// A client using a minted token, as a workload mounting the Secret would.
pub fn token_client(emulator: &RunningEmulator, minted: &Minted) -> DfnsClient {
    let signer =
        KeySigner::from_pem(minted.cred_id.clone(), minted.private_key_pem.expose()).unwrap();
    DfnsClient::new(config_for(
        emulator,
        AuthMode::Token(minted.token.clone()),
        signer,
    ))
    .unwrap()
}

/// Requests the emulator saw for `endpoint` (e.g. `"POST /auth/service-accounts"`).
pub fn requests_to(emulator: &RunningEmulator, endpoint: &str) -> u64 {
    emulator
        .request_counts()
        .by_endpoint
        .get(endpoint)
        .map_or(0, |counts| counts.requests)
}
