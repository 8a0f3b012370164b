//! An `apiUrl` that misbehaves cannot hurt the client: bodies are capped while streaming, an
//! oversized Content-Length is refused unread, redirects are never followed, and a stalled answer
//! ends at the read timeout.
use std::time::{Duration, Instant};

use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, DfnsError, ErrorCategory, KeySigner, RetryPolicy,
    SecretString, generate_p256,
};
use dfns_test_support::hostile_endpoint::{Behaviour, HostileEndpoint};
use serde_json::json;

use crate::stub::{Scripted, Stub, jwt};

fn client_for(url: String, tune: impl FnOnce(&mut ClientConfig)) -> DfnsClient {
    let pair = generate_p256().unwrap();
    let signer = KeySigner::from_pem("Y2k", pair.private_key_pem.expose()).unwrap();
    let mut config = ClientConfig::new(
        url,
        AuthMode::Token(SecretString::new(jwt(serde_json::json!({})))),
        signer,
    );
    config.allow_insecure_http = true;
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    tune(&mut config);
    DfnsClient::new(config).unwrap()
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap_and_not_retried() {
    let endpoint = HostileEndpoint::start(Behaviour::EndlessBody {
        bytes: 1024 * 1024 * 1024,
    })
    .await;
    let client = client_for(endpoint.url(), |config| {
        config.max_response_bytes = 64 * 1024;
        config.max_list_response_bytes = 256 * 1024;
    });
    // A list call: cut at the list cap.
    let error = client.list_pats().await.unwrap_err();
    assert!(
        matches!(error, DfnsError::ResponseTooLarge { announced: None, limit, .. } if limit == 256 * 1024),
        "{error:?}"
    );
    assert_eq!(error.category(), ErrorCategory::EndpointMisbehaved);
    assert_eq!(
        error.to_string(),
        "Dfns GET /auth/pats answered with a body over 262144 bytes; refused"
    );
    assert_eq!(
        endpoint.accepted(),
        1,
        "a misbehaving endpoint is not asked again at once"
    );
    // The server may have pushed more into socket buffers, but nowhere near the gigabyte.
    assert!(
        endpoint.bytes_sent() < 64 * 1024 * 1024,
        "{}",
        endpoint.bytes_sent()
    );
}

#[tokio::test]
async fn an_announced_length_over_the_cap_is_refused_unread() {
    let endpoint = HostileEndpoint::start(Behaviour::AnnouncedLength {
        length: 10 * 1024 * 1024 * 1024,
    })
    .await;
    let client = client_for(endpoint.url(), |_| {});
    let started = Instant::now();
    let error = client.list_pats().await.unwrap_err();
    assert!(
        matches!(
            error,
            DfnsError::ResponseTooLarge {
                announced: Some(10737418240),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "Dfns GET /auth/pats answered with a body over 16 MiB (Content-Length 10737418240); refused"
    );
    // The body never completes; refusing at the headers means no wait for the read timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_redirect_is_an_error_and_its_target_receives_nothing() {
    let target = HostileEndpoint::start(Behaviour::CountOnly).await;
    let redirector = HostileEndpoint::start(Behaviour::Redirect {
        location: format!("{}/steal?token=secret-in-query", target.url()),
    })
    .await;
    let client = client_for(redirector.url(), |_| {});
    let error = client.list_pats().await.unwrap_err();
    assert!(
        matches!(error, DfnsError::Redirected { status: 307, .. }),
        "{error:?}"
    );
    assert_eq!(error.category(), ErrorCategory::EndpointMisbehaved);
    let text = error.to_string();
    assert!(
        text.contains("HTTP 307") && text.contains("never followed"),
        "{text}"
    );
    assert!(
        !text.contains("secret-in-query") && !text.contains("steal"),
        "{text}"
    );
    assert_eq!(target.accepted(), 0);
}

#[tokio::test]
async fn an_answer_that_stalls_after_its_headers_ends_at_the_read_timeout() {
    let endpoint = HostileEndpoint::start(Behaviour::StallAfterHeaders).await;
    let client = client_for(endpoint.url(), |config| {
        config.read_timeout = Duration::from_millis(300);
        config.request_timeout = Duration::from_secs(60);
        config.retry = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
    });
    let started = Instant::now();
    let error = client.list_pats().await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Timeout, "{error}");
    assert!(error.to_string().contains("0.3s of silence"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A listing of `count` PATs, each about 1 KiB of JSON.
fn pats(count: usize) -> serde_json::Value {
    let items: Vec<_> = (0..count)
        .map(|i| {
            json!({
                "tokenId": format!("to-{i}"), "credId": "Y2k", "isActive": true,
                "name": format!("pat-{i}-{}", "x".repeat(900)),
            })
        })
        .collect();
    json!({ "items": items })
}

#[tokio::test]
async fn a_list_over_the_normal_cap_but_under_the_list_cap_is_read() {
    // About 512 KiB: over the 64 KiB cap of other answers, under the 1 MiB list cap.
    let stub = Stub::start(vec![Scripted::new(200, pats(500))]).await;
    let client = client_for(stub.url.clone(), |config| {
        config.max_response_bytes = 64 * 1024;
        config.max_list_response_bytes = 1024 * 1024;
    });
    let listed = client.list_pats().await.unwrap();
    assert_eq!(listed.len(), 500);
}

#[tokio::test]
async fn a_list_over_the_list_cap_is_refused_and_other_answers_keep_the_normal_cap() {
    let stub = Stub::start(vec![
        Scripted::new(200, pats(1_500)),
        Scripted::new(200, pats(100)),
    ])
    .await;
    let client = client_for(stub.url.clone(), |config| {
        config.max_response_bytes = 64 * 1024;
        config.max_list_response_bytes = 1024 * 1024;
    });
    let error = client.list_pats().await.unwrap_err();
    assert!(
        matches!(error, DfnsError::ResponseTooLarge { limit, .. } if limit == 1024 * 1024),
        "{error:?}"
    );
    assert_eq!(error.category(), ErrorCategory::EndpointMisbehaved);
    // One PAT's answer is not a list: about 100 KiB is over its 64 KiB cap.
    let error = client.get_pat("to-1").await.unwrap_err();
    assert!(
        matches!(error, DfnsError::ResponseTooLarge { limit, .. } if limit == 64 * 1024),
        "{error:?}"
    );
}
