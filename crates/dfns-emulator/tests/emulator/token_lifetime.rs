//! Token expiry with the `seconds_per_valid_day` test knob: a "day" of `daysValid` shrunk to
//! seconds, so a test can watch a service-account token go from accepted to refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use dfns_emulator::EmulatorConfig;
use reqwest::StatusCode;
use serde_json::json;

/// Sleeps until the wall clock reaches Unix second `at`.
async fn sleep_until_unix(at: i64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = Duration::from_secs(u64::try_from(at).unwrap());
    if let Some(left) = at.checked_sub(now) {
        tokio::time::sleep(left).await;
    }
}

#[tokio::test]
async fn a_service_account_token_is_accepted_before_exp_and_refused_with_401_after() {
    let emu = start_with(EmulatorConfig {
        seconds_per_valid_day: 3,
        ..EmulatorConfig::default()
    })
    .await;
    let admin = admin(&emu).await;
    let (sa, sa_client) =
        create_service_account(&admin, "short", &TestKey::p256(), json!({ "daysValid": 1 })).await;
    let claims = jwt_claims(sa["accessTokens"][0]["accessToken"].as_str().unwrap());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3, "one day of daysValid lasts the knob's 3 s");
    let state_expiry = &emu.state().service_accounts[0].expires_at;
    assert!(state_expiry.is_some(), "the state shows the expiry");

    // Listing PATs needs no permission (an SA may), so only the token decides the answer.
    sa_client.get("/auth/pats").await.ok();

    sleep_until_unix(exp).await;
    let msg = sa_client
        .get("/auth/pats")
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(msg.contains("expired"), "{msg}");
}

#[tokio::test]
async fn a_pat_days_valid_follows_the_knob_and_seconds_valid_stays_seconds() {
    let emu = start_with(EmulatorConfig {
        seconds_per_valid_day: 5,
        ..EmulatorConfig::default()
    })
    .await;
    let admin = admin(&emu).await;
    let lifetime = |pat: &serde_json::Value| {
        let claims = jwt_claims(pat["accessToken"].as_str().unwrap());
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    };
    let (days, _) = create_pat(&admin, "days", &TestKey::p256(), json!({ "daysValid": 2 })).await;
    assert_eq!(lifetime(&days), 10);
    let (secs, _) = create_pat(
        &admin,
        "secs",
        &TestKey::p256(),
        json!({ "secondsValid": 60 }),
    )
    .await;
    assert_eq!(lifetime(&secs), 60);
}

#[tokio::test]
async fn a_zero_second_day_is_refused_at_start() {
    let refused = dfns_emulator::Emulator::start(EmulatorConfig {
        seconds_per_valid_day: 0,
        ..EmulatorConfig::default()
    })
    .await;
    let Err(error) = refused else {
        panic!("an emulator whose tokens are born expired must not start");
    };
    assert!(error.to_string().contains("secondsPerValidDay"), "{error}");
}
