//! The per-connection rate limiter and Retry-After handling, against the emulator's
//! per-organisation limit.

use std::time::{Duration, Instant};

use dfns_client::{DfnsClient, RetryPolicy};
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
