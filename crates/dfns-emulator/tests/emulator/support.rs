//! Test-side Dfns client for the emulator tests. Unlike the real client it can also send bad
//! requests on purpose: tampered signatures, replays, user actions aimed at another path.

pub mod keys;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dfns_emulator::{Emulator, EmulatorConfig, Profile, RunningEmulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub use keys::TestKey;

pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder().build().expect("reqwest client")
}

pub async fn start() -> RunningEmulator {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// An emulator with the given fidelity profile, otherwise defaults.
pub async fn start_profile(profile: Profile) -> RunningEmulator {
    start_with(EmulatorConfig {
        profile,
        ..EmulatorConfig::default()
    })
    .await
}

/// A `/_emulator/` control request (unauthenticated).
pub async fn control(
    emu: &dfns_emulator::RunningEmulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let client = Client {
        http: http(),
        base: emu.api_url().into(),
        token: String::new(),
        cred_id: String::new(),
        key: TestKey::p256(),
    };
    let body = body.map(Body::Json).unwrap_or(Body::None);
    client.send_anonymously(method, path, &body).await
}

/// A reply: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn error_message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "unexpected reply: {}", self.body);
        self.body
    }
    #[track_caller]
    pub fn ok(self) -> Value {
        self.expect(StatusCode::OK)
    }
    /// Asserts the Dfns error shape and returns the message.
    #[track_caller]
    pub fn error(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "unexpected reply: {}", self.body);
        let e = &self.body["error"];
        assert!(e["id"].is_string(), "error.id missing in {}", self.body);
        assert_eq!(
            e["status"],
            status.as_u16(),
            "error.status in {}",
            self.body
        );
        assert!(
            e["details"].is_object(),
            "error.details missing in {}",
            self.body
        );
        e["message"].as_str().expect("error.message").to_owned()
    }
}

/// How a body is sent: as JSON, as raw bytes, or not at all.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Value),
    Raw(String),
}

impl Body {
    /// The `userActionPayload` an SDK would sign for this body.
    pub fn payload(&self) -> String {
        match self {
            Body::None => String::new(),
            Body::Json(v) => v.to_string(),
            Body::Raw(s) => s.clone(),
        }
    }
}

/// What to sign in a key assertion, and how to encode it.
#[derive(Clone, Debug)]
pub struct AssertionOptions {
    pub client_data_type: &'static str,
    /// Replaces the challenge (to test a wrong one).
    pub challenge_override: Option<String>,
    /// Flip one bit of the signature after signing.
    pub tamper_signature: bool,
    /// Encode with `=` padding, as old scripts did.
    pub padded: bool,
    /// clientData as the Go SDK shapes it (alphabetical keys plus crossOrigin).
    pub go_style_client_data: bool,
    /// Use this credential id instead of the signer's.
    pub cred_id_override: Option<String>,
}

impl Default for AssertionOptions {
    fn default() -> Self {
        Self {
            client_data_type: "key.get",
            challenge_override: None,
            tamper_signature: false,
            padded: false,
            go_style_client_data: false,
            cred_id_override: None,
        }
    }
}

fn b64(bytes: &[u8], padded: bool) -> String {
    if padded {
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    } else {
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// Builds a `firstFactor` Key assertion over a challenge.
pub fn assertion(key: &TestKey, cred_id: &str, challenge: &str, opts: &AssertionOptions) -> Value {
    let challenge = opts.challenge_override.as_deref().unwrap_or(challenge);
    let client_data = if opts.go_style_client_data {
        format!(
            r#"{{"challenge":"{challenge}","crossOrigin":false,"type":"{}"}}"#,
            opts.client_data_type
        )
    } else {
        json!({ "type": opts.client_data_type, "challenge": challenge }).to_string()
    };
    let mut signature = key.sign(client_data.as_bytes());
    if opts.tamper_signature {
        let last = signature.len() - 1;
        signature[last] ^= 0x01;
    }
    json!({
        "kind": "Key",
        "credentialAssertion": {
            "credId": opts.cred_id_override.as_deref().unwrap_or(cred_id),
            "clientData": b64(client_data.as_bytes(), opts.padded),
            "signature": b64(&signature, opts.padded),
        }
    })
}

/// A caller: bearer token plus the credential that signs its user actions.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub cred_id: String,
    pub key: TestKey,
}

impl Client {
    pub fn with(&self, token: &str, cred_id: &str, key: &TestKey) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.into(),
            cred_id: cred_id.into(),
            key: key.clone(),
        }
    }

    /// A client that has not logged in: it has a key to sign with but no bearer token.
    pub fn anonymous(http: reqwest::Client, base: &str, cred_id: &str, key: &TestKey) -> Client {
        Client {
            http,
            base: base.into(),
            token: String::new(),
            cred_id: cred_id.into(),
            key: key.clone(),
        }
    }

    /// A request with the bearer token and, if given, a user action; the body is sent as is.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: &Body,
        user_action: Option<&str>,
    ) -> Reply {
        self.request(method, path, body, user_action, true).await
    }

    /// A request without bearer token or user action.
    pub async fn send_anonymously(&self, method: Method, path: &str, body: &Body) -> Reply {
        self.request(method, path, body, None, false).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: &Body,
        user_action: Option<&str>,
        bearer: bool,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if bearer {
            req = req.bearer_auth(&self.token);
        }
        if let Some(ua) = user_action {
            req = req.header("X-DFNS-USERACTION", ua);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("content-type", "application/json")
                .body(v.to_string()),
            Body::Raw(s) => req
                .header("content-type", "application/json")
                .body(s.clone()),
        };
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &Body::None, None).await
    }

    /// `POST /auth/action/init` for a request.
    pub async fn action_init(&self, method: &Method, path: &str, payload: &str) -> Reply {
        let body = json!({
            "userActionPayload": payload,
            "userActionHttpMethod": method.as_str(),
            "userActionHttpPath": path,
            "userActionServerKind": "Api",
        });
        self.send(Method::POST, "/auth/action/init", &Body::Json(body), None)
            .await
    }

    /// init + sign + complete; returns the `/auth/action` reply.
    pub async fn sign_action(
        &self,
        method: &Method,
        path: &str,
        payload: &str,
        opts: &AssertionOptions,
    ) -> Reply {
        let init = self.action_init(method, path, payload).await.ok();
        let challenge = init["challenge"].as_str().expect("challenge");
        let body = json!({
            "challengeIdentifier": init["challengeIdentifier"],
            "firstFactor": assertion(&self.key, &self.cred_id, challenge, opts),
        });
        self.send(Method::POST, "/auth/action", &Body::Json(body), None)
            .await
    }

    /// A user action token for a request, asserting success.
    pub async fn user_action(&self, method: &Method, path: &str, body: &Body) -> String {
        let reply = self
            .sign_action(method, path, &body.payload(), &AssertionOptions::default())
            .await
            .ok();
        reply["userAction"].as_str().expect("userAction").to_owned()
    }

    /// `POST /auth/login/init` for a user of an organization.
    pub async fn login_init(&self, org_id: &str, username: &str) -> Reply {
        let body = json!({ "orgId": org_id, "username": username });
        self.send_anonymously(Method::POST, "/auth/login/init", &Body::Json(body))
            .await
    }

    /// A correctly signed state-changing request, as the SDKs send it.
    pub async fn signed(&self, method: Method, path: &str, body: Body) -> Reply {
        let ua = self.user_action(&method, path, &body).await;
        self.send(method, path, &body, Some(&ua)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.signed(Method::POST, path, Body::Json(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.signed(Method::PUT, path, Body::Json(body)).await
    }
}

/// Logs a user in with a Key credential; returns the session token reply.
pub async fn login_reply(
    http: &reqwest::Client,
    base: &str,
    org_id: &str,
    username: &str,
    cred_id: &str,
    key: &TestKey,
    opts: &AssertionOptions,
) -> Reply {
    let anon = Client::anonymous(http.clone(), base, cred_id, key);
    let init = anon.login_init(org_id, username).await.ok();
    let challenge = init["challenge"].as_str().expect("challenge");
    let body = json!({
        "challengeIdentifier": init["challengeIdentifier"],
        "firstFactor": assertion(key, cred_id, challenge, opts),
    });
    anon.send_anonymously(Method::POST, "/auth/login", &Body::Json(body))
        .await
}

/// The bootstrap admin's key.
pub fn admin_key(emu: &RunningEmulator) -> TestKey {
    TestKey::from_p256_pkcs8_pem(&emu.bootstrap().admin.private_key)
}

/// Logs the bootstrap admin in, signing with `key` (the admin's own unless a test says
/// otherwise); returns the session token reply.
pub async fn admin_login(
    http: &reqwest::Client,
    emu: &RunningEmulator,
    key: &TestKey,
    opts: &AssertionOptions,
) -> Reply {
    let b = emu.bootstrap();
    login_reply(
        http,
        emu.api_url(),
        &b.org_id,
        &b.admin.username,
        &b.admin.cred_id,
        key,
        opts,
    )
    .await
}

/// A client acting with the session token of a successful login `reply`.
fn logged_in(
    reply: Reply,
    http: reqwest::Client,
    base: &str,
    cred_id: &str,
    key: TestKey,
) -> Client {
    let token = reply.ok()["token"].as_str().expect("token").to_owned();
    Client {
        http,
        base: base.to_owned(),
        token,
        cred_id: cred_id.to_owned(),
        key,
    }
}

/// The bootstrap admin, logged in.
pub async fn admin(emu: &RunningEmulator) -> Client {
    let key = admin_key(emu);
    let http = http();
    let reply = admin_login(&http, emu, &key, &AssertionOptions::default()).await;
    logged_in(
        reply,
        http,
        emu.api_url(),
        &emu.bootstrap().admin.cred_id,
        key,
    )
}

/// Decodes a JWT's claims (no verification).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
        .expect("JSON claims")
}

/// The body creating a service account or PAT: its name, its key and the `extra` fields.
fn token_body(name: &str, key: &TestKey, extra: Value) -> Value {
    let mut body = json!({ "name": name, "publicKey": key.public_pem() });
    if let Value::Object(extra) = extra {
        body.as_object_mut().unwrap().extend(extra);
    }
    body
}

/// Creates a service account; returns (create reply body, client acting as it).
pub async fn create_service_account(
    admin: &Client,
    name: &str,
    key: &TestKey,
    extra: Value,
) -> (Value, Client) {
    let sa = admin
        .post("/auth/service-accounts", token_body(name, key, extra))
        .await
        .ok();
    let token = sa["accessTokens"][0]["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_owned();
    let cred_id = sa["accessTokens"][0]["credId"]
        .as_str()
        .expect("credId")
        .to_owned();
    let client = admin.with(&token, &cred_id, key);
    (sa, client)
}

/// Creates a service account with a permission of its own for `operations`; returns (create
/// reply body, client acting as it).
pub async fn service_account_with_operations(
    admin: &Client,
    name: &str,
    operations: &[&str],
) -> (Value, Client) {
    let permission = create_permission(admin, &format!("{name} operations"), operations).await;
    let extra = json!({ "permissionId": permission });
    create_service_account(admin, name, &TestKey::p256(), extra).await
}

/// Creates a PAT for the admin's user; returns (create reply body, client acting as it).
pub async fn create_pat(
    owner: &Client,
    name: &str,
    key: &TestKey,
    extra: Value,
) -> (Value, Client) {
    let pat = owner
        .post("/auth/pats", token_body(name, key, extra))
        .await
        .ok();
    let token = pat["accessToken"].as_str().expect("accessToken").to_owned();
    let cred_id = pat["credId"].as_str().expect("credId").to_owned();
    let client = owner.with(&token, &cred_id, key);
    (pat, client)
}

/// A permission with the given operations, created by `admin`; returns its id.
pub async fn create_permission(admin: &Client, name: &str, operations: &[&str]) -> String {
    let p = admin
        .post(
            "/permissions",
            json!({ "name": name, "operations": operations }),
        )
        .await
        .ok();
    p["id"].as_str().expect("permission id").to_owned()
}

/// Adds an organization user through `/_emulator/users` and logs it in.
pub async fn org_user(emu: &RunningEmulator, username: &str, permission_ids: &[&str]) -> Client {
    let http = http();
    let key = TestKey::p256();
    let created: Value = http
        .post(format!("{}/_emulator/users", emu.api_url()))
        .json(&json!({ "username": username, "publicKey": key.public_pem(), "permissionIds": permission_ids }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cred_id = created["credId"].as_str().expect("credId").to_owned();
    let reply = login_reply(
        &http,
        emu.api_url(),
        &emu.bootstrap().org_id,
        username,
        &cred_id,
        &key,
        &AssertionOptions::default(),
    )
    .await;
    logged_in(reply, http, emu.api_url(), &cred_id, key)
}
