//! Cost rules (docs/architecture.md): idle resources cost one Dfns list per connection and kind per resync
//! interval and no writes anywhere; under a Dfns rate limit the operator paces itself.

use std::collections::HashMap;
use std::time::Duration;

use dfns_emulator::Faults;
use dfns_operator::api::DfnsServiceAccount;
use dfns_test_support::operator::Setup;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;

const LIST_SERVICE_ACCOUNTS: &str = "GET /auth/service-accounts";

async fn apply_many(setup: &Setup, count: usize) {
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    for chunk in (0..count).collect::<Vec<_>>().chunks(20) {
        let names: Vec<String> = chunk.iter().map(|i| format!("sa-{i}")).collect();
        let applies = names
            .iter()
            .map(|name| setup.apply::<DfnsServiceAccount>(name, json!({ "connectionRef": conn })));
        futures::future::join_all(applies).await;
    }
}

async fn wait_all_ready(setup: &Setup, count: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = setup
            .api::<DfnsServiceAccount>()
            .list(&ListParams::default())
            .await
            .unwrap();
        let ready = list
            .items
            .iter()
            .filter(|sa| {
                sa.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {ready} of {count} Ready"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// resourceVersion of every resource and Secret in the namespace.
async fn versions(setup: &Setup) -> HashMap<String, String> {
    let mut all = HashMap::new();
    for sa in setup
        .api::<DfnsServiceAccount>()
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        all.insert(
            format!("sa/{}", sa.name_any()),
            sa.resource_version().unwrap(),
        );
    }
    for secret in setup.secrets().list(&ListParams::default()).await.unwrap() {
        all.insert(
            format!("secret/{}", secret.name_any()),
            secret.resource_version().unwrap(),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_resources_cost_one_list_per_interval_and_no_writes() {
    const COUNT: usize = 200;
    const INTERVAL: u64 = 10;
    let mut setup = Setup::new("e2e-idle").await;
    setup.admin_connection("main", json!({})).await;
    let mut config = setup.config();
    config.resync_interval = Duration::from_secs(INTERVAL);
    setup.start_operator_with(config);
    apply_many(&setup, COUNT).await;
    wait_all_ready(&setup, COUNT, Duration::from_secs(240)).await;
    // Let the last creates' follow-up reconciles pass.
    tokio::time::sleep(Duration::from_secs(INTERVAL + 2)).await;

    let before = versions(&setup).await;
    let events_before = setup_events(&setup).await;
    setup.emulator.reset_request_counts();
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL)).await;
    let counts = setup.emulator.request_counts();
    let after = versions(&setup).await;
    setup.stop_operator().await;

    let lists = counts
        .by_endpoint
        .get(LIST_SERVICE_ACCOUNTS)
        .map_or(0, |e| e.requests);
    assert!(
        (1..=4).contains(&lists),
        "service-account list calls in two intervals: {lists} ({counts:?})"
    );
    let per_resource_gets = counts
        .by_endpoint
        .get("GET /auth/service-accounts/{id}")
        .map_or(0, |e| e.requests);
    assert_eq!(per_resource_gets, 0, "no GET per resource");
    assert_eq!(counts.writes, 0, "no Dfns writes while idle");
    assert_eq!(before, after, "no Kubernetes writes while idle");
    assert_eq!(
        setup_events(&setup).await,
        events_before,
        "no Events while idle"
    );
}

async fn setup_events(setup: &Setup) -> usize {
    kube::Api::<k8s_openapi::api::core::v1::Event>::namespaced(
        setup.kube.clone(),
        setup.namespace(),
    )
    .list(&ListParams::default())
    .await
    .unwrap()
    .items
    .iter()
    .map(|e| e.count.unwrap_or(1) as usize)
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_dfns_rate_limit_the_operator_paces_itself_instead_of_retrying_into_it() {
    const COUNT: usize = 40;
    let mut setup = Setup::new("e2e-ratelimit").await;
    // The connection says nothing about the limit: the operator must learn it from Dfns' 429s.
    setup.admin_connection("main", json!({})).await;
    setup.emulator.set_faults(Faults {
        rate_limit_per_minute: Some(120),
        ..Faults::default()
    });
    // Someone else in the organization used up this minute's allowance: from now on Dfns admits
    // two requests per second.
    let http = reqwest::Client::new();
    let url = format!("{}/auth/service-accounts", setup.emulator.api_url());
    while http.get(&url).send().await.unwrap().status() != reqwest::StatusCode::TOO_MANY_REQUESTS {}
    setup.emulator.reset_request_counts();
    setup.start_operator();
    apply_many(&setup, COUNT).await;
    wait_all_ready(&setup, COUNT, Duration::from_secs(360)).await;
    setup.stop_operator().await;
    let counts = setup.emulator.request_counts();
    eprintln!(
        "requests: total {}, 429s {}",
        counts.total, counts.rate_limited
    );
    assert!(
        counts.rate_limited <= 12,
        "{} requests answered 429 of {}",
        counts.rate_limited,
        counts.total
    );
}
