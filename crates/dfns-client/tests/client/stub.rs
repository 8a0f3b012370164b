//! A tiny scripted Dfns stand-in, for the cases the emulator cannot provoke on purpose: a 202
//! policy approval, a 401 for a session the client believes fresh, and a failure of exactly the
//! final write (the emulator's faults hit the signing handshake as well).
//!
//! Login and user-action signing always succeed (tokens are unsigned JWTs); every other request
//! is logged and answered from a script, then `200 {}`.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dfns_client::{AuthMode, ClientConfig, DfnsClient, KeySigner, RetryPolicy, generate_p256};
use serde_json::{Value, json};

pub const STUB_CRED_ID: &str = "Y2ktc3R1Yg";

#[derive(Clone)]
pub struct Scripted {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl Scripted {
    pub fn new(status: u16, body: Value) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            body,
            retry_after: None,
        }
    }
}

/// What the stub saw: `"METHOD /path bearer=<token>"` for scripted requests, plus counters.
#[derive(Default)]
pub struct Seen {
    pub requests: Vec<String>,
    pub logins: usize,
    pub user_actions: usize,
}

#[derive(Clone, Default)]
struct StubState {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Seen>>,
}

pub struct Stub {
    pub url: String,
    state: StubState,
    server: tokio::task::JoinHandle<()>,
}

impl Stub {
    pub async fn start(script: Vec<Scripted>) -> Self {
        let state = StubState {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        };
        let router = Router::new()
            .route("/auth/login/init", post(challenge))
            .route("/auth/action/init", post(challenge))
            .route("/auth/login", post(login))
            .route("/auth/action", post(user_action))
            .fallback(scripted)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { url, state, server }
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().requests.clone()
    }

    pub fn logins(&self) -> usize {
        self.state.seen.lock().unwrap().logins
    }

    pub fn user_actions(&self) -> usize {
        self.state.seen.lock().unwrap().user_actions
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An unsigned JWT with the given claims.
pub fn jwt(claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"EdDSA"}"#);
    format!(
        "{header}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn challenge() -> impl IntoResponse {
    axum::Json(json!({
        "challenge": "c3R1Yi1jaGFsbGVuZ2U",
        "challengeIdentifier": jwt(json!({"kind": "challenge"})),
        "allowCredentials": {"key": [{"type": "public-key", "id": STUB_CRED_ID}], "webauthn": []}
    }))
}

async fn login(State(state): State<StubState>) -> impl IntoResponse {
    let number = {
        let mut seen = state.seen.lock().unwrap();
        seen.logins += 1;
        seen.logins
    };
    let now = jiff::Timestamp::now().as_second();
    let token = jwt(json!({
        "iat": now, "exp": now + 3600, "session": number,
        "https://custom/app_metadata": {"userId": "us-stub", "orgId": "or-stub", "tokenKind": "Login"}
    }));
    axum::Json(json!({ "token": token }))
}

async fn user_action(State(state): State<StubState>) -> impl IntoResponse {
    state.seen.lock().unwrap().user_actions += 1;
    axum::Json(json!({ "userAction": jwt(json!({"kind": "userAction"})) }))
}

async fn scripted(
    State(state): State<StubState>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim_start_matches("Bearer ").to_owned())
        .unwrap_or_default();
    let line = format!(
        "{} {} bearer={bearer}",
        request.method(),
        request.uri().path()
    );
    state.seen.lock().unwrap().requests.push(line);
    let next = state.script.lock().unwrap().pop_front();
    let Some(step) = next else {
        return (StatusCode::OK, axum::Json(json!({}))).into_response();
    };
    let mut response = (step.status, axum::Json(step.body)).into_response();
    if let Some(seconds) = step.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// A client for a [`Stub`], signing with a throwaway key under the stub's credential id.
pub fn stub_client(stub: &Stub, auth: AuthMode, retry: RetryPolicy) -> DfnsClient {
    let pair = generate_p256().unwrap();
    let signer = KeySigner::from_pem(STUB_CRED_ID, pair.private_key_pem.expose()).unwrap();
    let mut config = ClientConfig::new(stub.url.clone(), auth, signer);
    config.allow_insecure_http = true;
    config.retry = retry;
    DfnsClient::new(config).unwrap()
}

pub fn stub_login() -> AuthMode {
    AuthMode::UserLogin {
        org_id: "or-stub".into(),
        username: "admin@stub".into(),
    }
}
