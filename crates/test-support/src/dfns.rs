//! Dfns-side setup shared by the suites: an in-process emulator, clients for it, minted credentials.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dfns_client::PrivateKey;
use dfns_client::types::user_action::Challenge;
use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, IdentityKind, KeySigner, NewIdentity, RetryPolicy,
    SecretString, generate_p256,
};
use dfns_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};
use sha2::Digest as _;

/// An in-process emulator with the default configuration (the strict profile: no kinder than
/// Dfns' reference pages).
pub async fn start_emulator() -> RunningEmulator {
    start_emulator_with(EmulatorConfig::default()).await
}

pub async fn start_emulator_with(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// An emulator configuration in which one day of `daysValid` lasts `seconds_per_day` seconds
/// (the emulator's test knob), so a service account created with `daysValid: 1` expires within
/// a test: pass it to `Setup::with_emulator` or [`start_emulator_with`].
pub fn short_days(seconds_per_day: u32) -> EmulatorConfig {
    EmulatorConfig {
        seconds_per_valid_day: seconds_per_day,
        ..EmulatorConfig::default()
    }
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

/// A user logged in to the emulator through its HTTP API, sending signed requests as the Dfns
/// SDKs do: for what the client does not offer, such as managing the user's own credentials.
pub struct UserSession {
    http: reqwest::Client,
    api_url: String,
    token: String,
    signer: KeySigner,
}

async fn answer<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    let response = request.send().await.expect("emulator reachable");
    let status = response.status();
    let text = response.text().await.expect("answer body");
    assert!(status.is_success(), "emulator answered {status}: {text}");
    serde_json::from_str(&text).expect("JSON answer")
}

impl UserSession {
    /// Logs `username` in with its Key credential `cred_id`.
    pub async fn login(
        emulator: &RunningEmulator,
        username: &str,
        cred_id: &str,
        private_key_pem: &str,
    ) -> Self {
        let http = reqwest::Client::new();
        let api_url = emulator.api_url().to_owned();
        let signer = KeySigner::from_pem(cred_id, private_key_pem).expect("login key");
        let init: Challenge = answer(
            http.post(format!("{api_url}/auth/login/init"))
                .json(&json!({ "orgId": emulator.bootstrap().org_id, "username": username })),
        )
        .await;
        let login: Value = answer(
            http.post(format!("{api_url}/auth/login"))
                .json(&signer.sign(&init).expect("sign login")),
        )
        .await;
        let token = login["token"].as_str().expect("session token").to_owned();
        Self {
            http,
            api_url,
            token,
            signer,
        }
    }

    /// An authenticated request without a user action (reads, `.../init` calls).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let request = self
            .http
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(&self.token)
            .json(body);
        answer(request).await
    }

    /// A state-changing request signed with a user action, its body sent exactly as signed.
    pub async fn signed(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let payload = body.to_string();
        let action = json!({
            "userActionPayload": payload,
            "userActionHttpMethod": method.as_str(),
            "userActionHttpPath": path,
            "userActionServerKind": "Api",
        });
        let init: Challenge = serde_json::from_value(
            self.call(reqwest::Method::POST, "/auth/action/init", &action)
                .await,
        )
        .expect("a challenge");
        let signed = serde_json::to_value(self.signer.sign(&init).expect("sign user action"))
            .expect("signed challenge as JSON");
        let action = self
            .call(reqwest::Method::POST, "/auth/action", &signed)
            .await;
        let user_action = action["userAction"].as_str().expect("userAction");
        let request = self
            .http
            .request(method, format!("{}{path}", self.api_url))
            .bearer_auth(&self.token)
            .header("X-DFNS-USERACTION", user_action)
            .header("content-type", "application/json")
            .body(payload);
        answer(request).await
    }

    /// A second Key credential for this user (key attestation as the SDKs build it): what a key
    /// rotation needs, the user and its permissions staying the same. Returns the new
    /// credential id and key.
    pub async fn add_key_credential(&self) -> (String, dfns_client::GeneratedKeyPair) {
        let new_key = generate_p256().expect("generate key");
        let cred_id = URL_SAFE_NO_PAD.encode(format!("rotated-{}", new_key.public_key_sha256));
        self.register_key_credential(
            &cred_id,
            &new_key.public_key_pem,
            new_key.private_key_pem.expose(),
        )
        .await;
        (cred_id, new_key)
    }

    /// Registers a Key credential for this user with the credential id and key given, e.g. the
    /// ones another emulator's admin logs in with, so that one login Secret works at both.
    pub async fn register_key_credential(
        &self,
        cred_id: &str,
        public_key_pem: &str,
        private_key_pem: &str,
    ) {
        let init = self
            .call(
                reqwest::Method::POST,
                "/auth/credentials/init",
                &json!({ "kind": "Key" }),
            )
            .await;
        let client_data =
            json!({ "type": "key.create", "challenge": init["challenge"] }).to_string();
        let fingerprint = json!({
            "clientDataHash": hex::encode(sha2::Sha256::digest(client_data.as_bytes())),
            "publicKey": public_key_pem,
        })
        .to_string();
        let signature = PrivateKey::from_pem(private_key_pem)
            .expect("new key")
            .sign(fingerprint.as_bytes());
        let attestation = json!({
            "publicKey": public_key_pem,
            "signature": hex::encode(signature),
            "algorithm": "SHA256",
        })
        .to_string();
        let body = json!({
            "credentialKind": "Key",
            "credentialInfo": {
                "credId": cred_id,
                "clientData": URL_SAFE_NO_PAD.encode(client_data),
                "attestationData": URL_SAFE_NO_PAD.encode(attestation),
            },
            "credentialName": "rotated",
            "challengeIdentifier": init["challengeIdentifier"],
        });
        let created = self
            .signed(reqwest::Method::POST, "/auth/credentials", &body)
            .await;
        assert_eq!(created["credentialId"], cred_id);
    }

    /// Deactivates one of this user's credentials: it can no longer log in or sign.
    pub async fn deactivate_credential(&self, credential_uuid: &str) {
        self.signed(
            reqwest::Method::PUT,
            "/auth/credentials/deactivate",
            &json!({ "credentialUuid": credential_uuid }),
        )
        .await;
    }
}

/// Holds the named writes for approval (`PUT /_emulator/approvals`), e.g. `["assignment"]`.
pub async fn require_approval(emulator: &RunningEmulator, operations: &[&str]) {
    let _: serde_json::Value = answer(
        reqwest::Client::new()
            .put(format!("{}/_emulator/approvals", emulator.api_url()))
            .json(&serde_json::json!({ "operations": operations })),
    )
    .await;
}

/// The approver's decision on change request `id`: `"approve"` or `"deny"` (with `reason`).
pub async fn decide_change_request(
    emulator: &RunningEmulator,
    id: &str,
    verb: &str,
    reason: Option<&str>,
) {
    let body = reason.map_or(
        serde_json::json!({}),
        |r| serde_json::json!({ "reason": r }),
    );
    let _: serde_json::Value = answer(
        reqwest::Client::new()
            .post(format!(
                "{}/_emulator/change-requests/{id}/{verb}",
                emulator.api_url()
            ))
            .json(&body),
    )
    .await;
}
