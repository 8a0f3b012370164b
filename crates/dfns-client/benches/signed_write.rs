//! Client-side cost of one signed write, excluding the network.
//!
//! Per iteration, everything the client does for `POST /auth/service-accounts` except waiting
//! for Dfns: serialize the body, build and serialize the user-action init request, parse the
//! challenge answer, build clientData and sign it (ECDSA P-256, DER), base64url-encode and
//! serialize the assertion, and parse the user-action token answer. Target: under 1 ms.
//!
//! Run: `cargo bench --bench client_signed_write` (optionally `-- <iterations>`); add
//! `--profile dev` to reuse the debug build (dependencies at opt-level 1: a pessimistic figure).
use std::hint::black_box;
use std::time::{Duration, Instant};

use dfns_client::types::service_account::CreateServiceAccountRequest;
use dfns_client::types::user_action::{Challenge, UserActionInitRequest, UserActionResponse};
use dfns_client::{KeySigner, generate_p256};

const CHALLENGE_RESPONSE: &str = r#"{"challenge":"NjZhYmE3ZTQ4ZDY0NDdkNGJlYTZkYTU4ZWE4OWQ3NjI","challengeIdentifier":"eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJpc3MiOiJlbXVsYXRvciJ9.c2ln","allowCredentials":{"key":[{"type":"public-key","id":"Y2ktb3BlcmF0b3I"}],"passwordProtectedKey":[],"webauthn":[]},"supportedCredentialKinds":[{"kind":"Key","factor":"first","requiresSecondFactor":false}],"userVerification":"required","attestation":"none","externalAuthenticationUrl":""}"#;
const USER_ACTION_RESPONSE: &str =
    r#"{"userAction":"eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJhY3Rpb24iOiJ4In0.c2ln"}"#;

fn signed_write(signer: &KeySigner, public_key_pem: &str) -> usize {
    let body = serde_json::to_string(&CreateServiceAccountRequest {
        name: "payments-robot".into(),
        public_key: public_key_pem.to_owned(),
        permission_id: Some("pm-abcde-fghij-0123456789abcd".into()),
        external_id: Some("6f1c2c1e-3b1a-4b8e-9f0e-2f3c4d5e6f70".into()),
        days_valid: Some(365),
    })
    .unwrap();
    let init = serde_json::to_string(&UserActionInitRequest {
        user_action_payload: body.clone(),
        user_action_http_method: "POST".into(),
        user_action_http_path: "/auth/service-accounts".into(),
        user_action_server_kind: "Api",
    })
    .unwrap();
    let challenge: Challenge = serde_json::from_str(CHALLENGE_RESPONSE).unwrap();
    let signed = serde_json::to_string(&signer.sign(&challenge).unwrap()).unwrap();
    let user_action: UserActionResponse = serde_json::from_str(USER_ACTION_RESPONSE).unwrap();
    body.len() + init.len() + signed.len() + user_action.user_action.expose().len()
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(5_000);
    let pair = generate_p256().unwrap();
    let signer = KeySigner::from_pem("Y2ktb3BlcmF0b3I", pair.private_key_pem.expose()).unwrap();

    for _ in 0..200 {
        black_box(signed_write(&signer, &pair.public_key_pem));
    }
    let whole = measure(iterations, || {
        signed_write(black_box(&signer), black_box(&pair.public_key_pem))
    });
    let challenge = "NjZhYmE3ZTQ4ZDY0NDdkNGJlYTZkYTU4ZWE4OWQ3NjI";
    let signing = measure(iterations, || {
        signer.assert(black_box(challenge)).signature.len()
    });
    // The median is the verdict: on a shared machine the mean mostly measures preemption.
    println!(
        "client_signed_write: {iterations} iterations, median {} µs (mean {} µs, p99 {} µs) per signed write, \
         of which clientData + ECDSA P-256 signature + encoding median {} µs; target < 1000 µs: {}",
        micros(whole.median),
        micros(whole.mean),
        micros(whole.p99),
        micros(signing.median),
        if whole.median < Duration::from_millis(1) {
            "PASS"
        } else {
            "FAIL"
        }
    );
}

struct Stats {
    median: Duration,
    mean: Duration,
    p99: Duration,
}

fn measure(iterations: usize, mut work: impl FnMut() -> usize) -> Stats {
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        black_box(work());
        samples.push(start.elapsed());
    }
    let mean = samples.iter().sum::<Duration>() / iterations as u32;
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    Stats {
        median: at(0.5),
        mean,
        p99: at(0.99),
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}
