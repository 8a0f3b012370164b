//! Cost rules (docs/architecture.md): idle resources cost one Dfns list per connection and kind,
//! and one connection check, per resync interval, no reconciles and no writes anywhere; a drift
//! in Dfns reconciles the drifted resource only; under a Dfns rate limit the operator paces
//! itself.

use std::collections::HashMap;
use std::time::Duration;

use dfns_client::IdentityKind;
use dfns_emulator::Faults;
use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::operator::{NamespacedResource, Setup, WAIT, kubernetes_writes};
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;

const LIST_SERVICE_ACCOUNTS: &str = "GET /auth/service-accounts";
const LIST_TOKENS: &str = "GET /auth/pats";
const KINDS: [&str; 2] = ["DfnsServiceAccount", "DfnsPersonalAccessToken"];

/// Applies `count` resources of kind `K` named `<prefix>-<i>` with `spec`, 20 at a time.
async fn apply_many<K: NamespacedResource>(
    setup: &Setup,
    prefix: &str,
    count: usize,
    spec: serde_json::Value,
) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(20) {
        let names: Vec<String> = chunk.iter().map(|i| format!("{prefix}-{i}")).collect();
        let applies = names
            .iter()
            .map(|name| setup.apply::<K>(name, spec.clone()));
        futures::future::join_all(applies).await;
    }
}

fn service_account_spec() -> serde_json::Value {
    json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } })
}

/// Waits until `count` resources of kind `K` are Ready for their current generation.
async fn wait_all_ready<K: NamespacedResource>(setup: &Setup, count: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = setup.api::<K>().list(&ListParams::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|obj| {
                let value = serde_json::to_value(obj).unwrap();
                value["status"]["conditions"]
                    .as_array()
                    .is_some_and(|conditions| {
                        conditions.iter().any(|c| {
                            c["type"] == "Ready"
                                && c["status"] == "True"
                                && c["observedGeneration"] == value["metadata"]["generation"]
                        })
                    })
            })
            .count();
        if ready == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {ready} of {count} {} Ready",
            K::kind(&())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// resourceVersion of every resource and Secret in the namespace.
async fn versions(setup: &Setup) -> HashMap<String, String> {
    let mut all = HashMap::new();
    let params = ListParams::default();
    for sa in setup
        .api::<DfnsServiceAccount>()
        .list(&params)
        .await
        .unwrap()
    {
        all.insert(
            format!("sa/{}", sa.name_any()),
            sa.resource_version().unwrap(),
        );
    }
    for pat in setup
        .api::<DfnsPersonalAccessToken>()
        .list(&params)
        .await
        .unwrap()
    {
        all.insert(
            format!("pat/{}", pat.name_any()),
            pat.resource_version().unwrap(),
        );
    }
    for conn in setup.api::<DfnsConnection>().list(&params).await.unwrap() {
        all.insert(
            format!("conn/{}", conn.name_any()),
            conn.resource_version().unwrap(),
        );
    }
    for secret in setup.secrets().list(&params).await.unwrap() {
        all.insert(
            format!("secret/{}", secret.name_any()),
            secret.resource_version().unwrap(),
        );
    }
    all
}

/// Reconciles of the credential kinds finished so far.
fn credential_reconciles(setup: &mut Setup) -> u64 {
    let metrics = &setup.operator().metrics;
    KINDS.iter().map(|kind| metrics.reconcile_count(kind)).sum()
}

/// Waits until no credential reconcile has finished for `quiet` (the creates' follow-ups are
/// over).
async fn wait_quiet(setup: &mut Setup, quiet: Duration, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = credential_reconciles(setup);
    let mut since = tokio::time::Instant::now();
    while since.elapsed() < quiet {
        setup.operator().assert_running();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = credential_reconciles(setup);
        if done != last {
            (last, since) = (done, tokio::time::Instant::now());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "credential reconciles never stopped for {quiet:?} within {timeout:?} ({done} so far)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_idle_resources_cost_no_reconciles_one_list_per_kind_and_one_connection_check_per_interval_and_no_writes()
 {
    const SERVICE_ACCOUNTS: usize = 180;
    const TOKENS: usize = 20;
    const COUNT: u64 = (SERVICE_ACCOUNTS + TOKENS) as u64;
    const INTERVAL: Duration = Duration::from_secs(10);
    let mut setup = Setup::new("e2e-idle").await;
    setup
        .admin_connection("main", json!({ "allowUnscopedTokens": true }))
        .await;
    let mut config = setup.config();
    config.resync_interval = INTERVAL;
    setup.start_operator_with(config);
    apply_many::<DfnsServiceAccount>(&setup, "sa", SERVICE_ACCOUNTS, service_account_spec()).await;
    let token_spec =
        json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" }, "daysValid": 7 });
    apply_many::<DfnsPersonalAccessToken>(&setup, "pat", TOKENS, token_spec).await;
    wait_all_ready::<DfnsServiceAccount>(&setup, SERVICE_ACCOUNTS, Duration::from_secs(240)).await;
    wait_all_ready::<DfnsPersonalAccessToken>(&setup, TOKENS, Duration::from_secs(60)).await;
    // Past the creates and their follow-ups.
    wait_quiet(&mut setup, Duration::from_secs(3), 2 * INTERVAL + WAIT).await;

    // The window: two and a half intervals, so at least two listings of each kind.
    let metrics = setup.operator().metrics.clone();
    let before = versions(&setup).await;
    let events_before = setup_events(&setup).await;
    let kube_writes_before = kubernetes_writes(&metrics);
    setup.emulator.reset_request_counts();
    let started = tokio::time::Instant::now();
    let at_start = credential_reconciles(&mut setup);
    tokio::time::sleep(INTERVAL * 5 / 2).await;
    let window = started.elapsed();
    let reconciles = credential_reconciles(&mut setup) - at_start;
    let counts = setup.emulator.request_counts();
    let kube_writes = kubernetes_writes(&metrics) - kube_writes_before;
    let after = versions(&setup).await;
    setup.stop_operator().await;

    // Nothing drifted: the listings found nothing to reconcile, and nothing else woke a resource.
    assert_eq!(
        reconciles, 0,
        "{reconciles} reconciles of {COUNT} settled resources in {window:?}"
    );
    // Each of these calls comes one interval after the last of its kind (the drift watch, the
    // connection's requeue): at most one per interval begun in the window, and at least one, or
    // the drift and connection checks did not run.
    let allowed = (window.as_secs_f64() / INTERVAL.as_secs_f64()).floor() as u64 + 1;
    let calls = |endpoint: &str| counts.by_endpoint.get(endpoint).map_or(0, |e| e.requests);
    let service_account_lists = calls(LIST_SERVICE_ACCOUNTS);
    assert!(
        (1..=allowed).contains(&service_account_lists),
        "{LIST_SERVICE_ACCOUNTS}: {service_account_lists} calls in {window:?}, allowed 1 to {allowed} ({counts:?})"
    );
    // The token list and the connection check are the same call (List PATs, the read every
    // identity kind may make): one of each per interval.
    let token_calls = calls(LIST_TOKENS);
    assert!(
        (2..=2 * allowed).contains(&token_calls),
        "{LIST_TOKENS} (token list and connection check): {token_calls} calls in {window:?}, allowed 2 to {} ({counts:?})",
        2 * allowed
    );
    assert_eq!(
        counts.total,
        service_account_lists + token_calls,
        "no Dfns calls but the lists and the connection check: {counts:?}"
    );
    assert_eq!(counts.writes, 0, "no Dfns writes while idle");
    assert_eq!(
        kube_writes,
        0,
        "no Kubernetes writes while idle:\n{}",
        metrics.encode()
    );
    assert_eq!(before, after, "no resource or Secret changed while idle");
    assert_eq!(
        setup_events(&setup).await,
        events_before,
        "no Events while idle"
    );
    setup.assert_no_leaks().await;
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
    // Bounded: the allowance is 120 requests, so the 121st at the latest is refused.
    let exhausted = {
        let mut refused = false;
        for _ in 0..1_000 {
            let status = http.get(&url).send().await.unwrap().status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                refused = true;
                break;
            }
        }
        refused
    };
    assert!(exhausted, "the emulator's rate limit never answered 429");
    setup.emulator.reset_request_counts();
    setup.start_operator();
    apply_many::<DfnsServiceAccount>(&setup, "sa", COUNT, service_account_spec()).await;
    wait_all_ready::<DfnsServiceAccount>(&setup, COUNT, Duration::from_secs(360)).await;
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
    setup.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_in_dfns_reconciles_only_that_resource_once() {
    const COUNT: usize = 5;
    const INTERVAL: Duration = Duration::from_secs(3);
    let mut setup = Setup::new("e2e-drift").await;
    setup.admin_connection("main", json!({})).await;
    let mut config = setup.config();
    config.resync_interval = INTERVAL;
    setup.start_operator_with(config);
    apply_many::<DfnsServiceAccount>(&setup, "sa", COUNT, service_account_spec()).await;
    wait_all_ready::<DfnsServiceAccount>(&setup, COUNT, Duration::from_secs(120)).await;
    // Settled: several listings pass without a reconcile.
    wait_quiet(&mut setup, 2 * INTERVAL, 4 * INTERVAL + WAIT).await;
    let at_start = credential_reconciles(&mut setup);

    // Someone deactivates one of them in the Dfns dashboard.
    let drifted = setup.api::<DfnsServiceAccount>().get("sa-2").await.unwrap();
    let id = drifted.status.unwrap().service_account_id.unwrap();
    setup
        .admin_client()
        .deactivate(IdentityKind::ServiceAccount, &id)
        .await
        .unwrap();
    setup
        .wait_condition::<DfnsServiceAccount>("sa-2", "Ready", "False", Some("DeactivatedInDfns"))
        .await;
    // Three more listings: the others are not looked at, nor is this one again.
    tokio::time::sleep(3 * INTERVAL).await;
    let reconciles = credential_reconciles(&mut setup) - at_start;
    setup.stop_operator().await;
    assert_eq!(
        reconciles, 1,
        "only the drifted resource is reconciled, once; {reconciles} reconciles"
    );
    for i in (0..COUNT).filter(|i| *i != 2) {
        let name = format!("sa-{i}");
        let other = setup.api::<DfnsServiceAccount>().get(&name).await.unwrap();
        assert_eq!(
            dfns_test_support::operator::ready_condition(other.status.as_ref()).status,
            "True",
            "{name}"
        );
    }
    setup.assert_no_leaks().await;
}
