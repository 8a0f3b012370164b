//! The per-connection rate limiter and Retry-After handling, against the emulator's
//! per-organisation limit.

use std::time::{Duration, Instant};

use dfns_client::{DfnsClient, DfnsError, Gate, RetryPolicy};
use dfns_emulator::{EmulatorConfig, Faults};
use dfns_test_support::dfns::*;

#[tokio::test]
async fn the_client_paces_itself_to_its_configured_rate() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 120; // 2 per second, bursts of 2
    let admin = DfnsClient::new(config).unwrap();
    let started = Instant::now();
    admin.identity().await.unwrap(); // 2 requests: the burst
    for _ in 0..6 {
        admin.list_pats().await.unwrap(); // 6 more at 2 per second
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "8 requests at 2/s after a burst of 2 take 3 s, took {:?}",
        started.elapsed()
    );
    assert_eq!(emulator.request_counts().rate_limited, 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_honoured_instead_of_hammering() {
    // 60 per minute: a full bucket of 60, then one request per second.
    let emulator = start_emulator_with(EmulatorConfig {
        faults: Faults {
            rate_limit_per_minute: Some(60),
            // Dfns documents no Retry-After; this test is about a server that sends one anyway.
            retry_after: true,
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 1_000_000; // only the server limits here
    // Without Retry-After these retries would come 1-5 ms apart and exhaust in a few ms.
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let admin = DfnsClient::new(config).unwrap();
    admin.identity().await.unwrap();
    let reads = 62;
    for _ in 0..reads {
        admin
            .list_pats()
            .await
            .expect("every read succeeds by waiting out the 429s");
    }
    let counts = emulator.request_counts();
    assert!(
        counts.rate_limited >= 1,
        "the limit was reached: {counts:?}"
    );
    assert!(
        counts.rate_limited <= 6,
        "one 429 per over-limit request at most, got {}",
        counts.rate_limited
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_429_without_retry_after_pauses_instead_of_hammering() {
    // As Dfns documents it: 429s with no Retry-After.
    let emulator = start_emulator_with(EmulatorConfig {
        faults: Faults {
            rate_limit_per_minute: Some(60),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 1_000_000;
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let admin = DfnsClient::new(config).unwrap();
    admin.identity().await.unwrap();
    for _ in 0..62 {
        admin
            .list_pats()
            .await
            .expect("every read succeeds by pausing after a 429");
    }
    let counts = emulator.request_counts();
    assert!(
        counts.rate_limited >= 1,
        "the limit was reached: {counts:?}"
    );
    assert!(
        counts.rate_limited <= 6,
        "a pause after each 429, not retries 1-5 ms apart: {} 429s",
        counts.rate_limited
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn clones_share_one_limiter() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 120;
    let admin = DfnsClient::new(config).unwrap();
    let other = admin.clone();
    let started = Instant::now();
    admin.identity().await.unwrap(); // burst of 2
    let (a, b) = tokio::join!(
        async {
            for _ in 0..3 {
                admin.list_pats().await.unwrap();
            }
        },
        async {
            for _ in 0..3 {
                other.list_pats().await.unwrap();
            }
        },
    );
    let _ = (a, b);
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "6 shared requests at 2/s, took {:?}",
        started.elapsed()
    );
    emulator.shutdown().await;
}

fn halted(result: Result<impl std::fmt::Debug, DfnsError>) -> bool {
    matches!(result, Err(DfnsError::Halted))
}

#[tokio::test]
async fn a_call_that_would_wait_past_the_bound_fails_at_once_and_sends_nothing() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 20; // one per 3 s
    config.rate_limit_wait_bound = Some(Duration::from_secs(2));
    let admin = DfnsClient::new(config).unwrap();
    // The login's second request waits 3 s, past the bound: an operation once started finishes.
    admin.identity().await.unwrap();
    let sent = emulator.request_counts().total;
    let started = Instant::now();
    let retry_in = match admin.list_pats().await {
        Err(DfnsError::Throttled { retry_in }) => retry_in,
        other => panic!("expected Throttled, got {other:?}"),
    };
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once, took {:?}",
        started.elapsed()
    );
    assert!(
        retry_in > Duration::from_secs(2) && retry_in <= Duration::from_secs(3),
        "{retry_in:?}"
    );
    assert_eq!(emulator.request_counts().total, sent, "nothing was sent");
    // Coming back when told, the call goes through.
    tokio::time::sleep(retry_in).await;
    admin.list_pats().await.unwrap();
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_token_taken_ahead_turns_away_before_the_work_and_admits_the_first_request() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 20; // one per 3 s
    config.rate_limit_wait_bound = Some(Duration::from_secs(2));
    let admin = DfnsClient::new(config).unwrap();
    admin.identity().await.unwrap(); // empties the bucket
    let sent = emulator.request_counts().total;
    // Turned away ahead: what had to come before the Dfns write (the operator's `pendingCreate`
    // save) never runs, and nothing is sent.
    let mut ran = false;
    let turned_away = admin
        .admitted_before(async {
            ran = true;
            Ok::<_, DfnsError>(())
        })
        .await;
    let retry_in = match turned_away {
        Err(DfnsError::Throttled { retry_in }) => retry_in,
        other => panic!("expected Throttled, got {other:?}"),
    };
    assert!(!ran, "the work ran although its request was turned away");
    assert_eq!(emulator.request_counts().total, sent, "nothing was sent");
    // Coming back when told: the token taken ahead is the first request's, not one more.
    tokio::time::sleep(retry_in).await;
    let started = Instant::now();
    admin.admitted_before(admin.list_pats()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the list waited {:?}: it took a second token instead of the one taken ahead",
        started.elapsed()
    );
    assert_eq!(emulator.request_counts().total, sent + 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn closing_the_gate_ends_a_rate_limit_wait_at_once_and_sends_nothing_more() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.requests_per_minute = 1;
    let gate = Gate::new();
    config.gate = gate.clone();
    let admin = DfnsClient::new(config).unwrap();
    // The login's first request goes out; its second waits a minute for the next token.
    let waiting = tokio::spawn({
        let admin = admin.clone();
        async move { admin.identity().await.map(drop) }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while emulator.request_counts().total == 0 {
        assert!(
            Instant::now() < deadline,
            "the first request was never sent"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closed_at = Instant::now();
    gate.close();
    let result = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the wait ends at once")
        .unwrap();
    assert!(halted(result), "closed after {:?}", closed_at.elapsed());
    assert!(halted(admin.list_pats().await));
    assert_eq!(
        emulator.request_counts().total,
        1,
        "nothing sent after closing"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn past_its_lease_deadline_the_gate_sends_nothing() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    let gate = Gate::new();
    gate.open_until(tokio::time::Instant::now());
    config.gate = gate;
    let admin = DfnsClient::new(config).unwrap();
    assert!(halted(admin.list_pats().await));
    assert!(halted(admin.identity().await));
    assert_eq!(emulator.request_counts().total, 0);
    emulator.shutdown().await;
}
