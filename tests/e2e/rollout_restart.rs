//! Workload restarts, as a platform engineer meets them: a credential naming a Deployment in
//! `rolloutRestartTargets` gets that Deployment rolled (its pod template's `dfns.io/restartedAt`)
//! once each time the Secret switches to a new credential — here by deleting the Secret, which
//! makes the operator mint a replacement. Restarts are counted by the Deployment's generation,
//! which the API server raises once per pod-template change (this control plane runs no
//! deployment controller; the node suite's `rollout_restart` watches real pods being replaced).

use std::time::Duration;

use dfns_operator::api::DfnsServiceAccount;
use dfns_operator::controller::ControllerConfig;
use dfns_test_support::events::{events_of, wait_event};
use dfns_test_support::operator::{Setup, WAIT};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const RESTARTED_AT: &str = "dfns.io/restartedAt";

/// An operator whose restarts come `debounce` after a switch.
fn start_operator(setup: &mut Setup, debounce: Duration) {
    setup.start_operator_with(config(setup, debounce));
}

fn config(setup: &Setup, debounce: Duration) -> ControllerConfig {
    let mut config = setup.config();
    config.rollout_restarts.debounce = debounce;
    config
}

/// The pod template every test workload uses: the Secret `secret` as environment, as workloads
/// load it. No node runs it.
fn pod_template(app: &str, secret: &str) -> Value {
    json!({
        "metadata": { "labels": { "app": app } },
        "spec": { "containers": [{
            "name": "app",
            "image": "registry.invalid/app:1",
            "envFrom": [{ "secretRef": { "name": secret, "optional": true } }],
        }] },
    })
}

async fn create_deployment(setup: &Setup, name: &str, secret: &str) {
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": pod_template(name, secret),
        },
    });
    setup
        .api::<Deployment>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .expect("create Deployment");
}

async fn create_stateful_set(setup: &Setup, name: &str, secret: &str) {
    let body = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "template": pod_template(name, secret),
        },
    });
    setup
        .api::<StatefulSet>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .expect("create StatefulSet");
}

/// The service account `name` on the admin connection `main`, restarting `targets`, once Ready.
async fn ready_service_account(setup: &Setup, name: &str, targets: Value) -> DfnsServiceAccount {
    setup
        .apply::<DfnsServiceAccount>(
            name,
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "rolloutRestartTargets": targets,
            }),
        )
        .await;
    setup.wait_ready::<DfnsServiceAccount>(name).await
}

fn switched_at(sa: &DfnsServiceAccount) -> Option<Timestamp> {
    sa.status.as_ref()?.switched_at.as_ref().map(|t| t.0)
}

/// Deletes the resource's Secret and waits until the operator has written a replacement
/// credential into a new one (`status.switchedAt` moved) and is Ready again; the new switch time.
async fn switch_by_deleting_the_secret(setup: &Setup, name: &str) -> Timestamp {
    let api = setup.api::<DfnsServiceAccount>();
    let before = switched_at(&api.get(name).await.unwrap());
    setup
        .secrets()
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the Secret");
    let switched = wait_for(&format!("{name}'s switch"), || async {
        switched_at(&api.get(name).await.unwrap()).filter(|at| Some(*at) != before)
    })
    .await;
    setup.wait_ready::<DfnsServiceAccount>(name).await;
    switched
}

/// (pod-template `dfns.io/restartedAt`, metadata.generation) of the Deployment `name`: each
/// change of its pod template is one generation.
async fn deployment_restarts(setup: &Setup, name: &str) -> (Option<String>, i64) {
    let deployment = setup.api::<Deployment>().get(name).await.unwrap();
    let annotation = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(RESTARTED_AT).cloned());
    (annotation, deployment.metadata.generation.unwrap())
}

/// Waits until the Deployment `name` carries a `dfns.io/restartedAt` other than `previous`.
async fn wait_restarted(setup: &Setup, name: &str, previous: Option<&str>) -> String {
    wait_for(&format!("a restart of {name}"), || async {
        deployment_restarts(setup, name)
            .await
            .0
            .filter(|value| Some(value.as_str()) != previous)
    })
    .await
}

/// Polls `probe` until it answers, within the harness' deadline.
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An annotation change on the resource: the operator reconciles it, and nothing else changed.
async fn touch(setup: &Setup, name: &str, value: &str) {
    let patch = json!({ "metadata": { "annotations": { "e2e.dfns.io/touched": value } } });
    setup
        .api::<DfnsServiceAccount>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
}

/// Touches each resource and waits until the operator has reconciled at least that many more
/// times: proof that a "nothing was restarted" check follows real reconciles.
async fn reconcile_each(setup: &mut Setup, names: &[&str], round: &str) {
    let done = setup
        .operator()
        .metrics
        .reconcile_count("DfnsServiceAccount");
    for name in names {
        touch(setup, name, round).await;
    }
    setup
        .wait_reconciles("DfnsServiceAccount", done + names.len() as u64)
        .await;
}

/// Sleeps until the wall clock is past `at`.
async fn sleep_until(at: Timestamp) {
    let left = at.duration_since(Timestamp::now());
    if let Ok(left) = Duration::try_from(left) {
        tokio::time::sleep(left).await;
    }
}

/// Restarts the running operator made: `dfns_operator_rollout_restarts_total` over all kinds.
/// (Events do not count them: the recorder folds repeats of a reason into one Event.)
fn restarts_made(setup: &mut Setup) -> u64 {
    setup
        .operator()
        .metrics
        .encode()
        .lines()
        .filter_map(|line| line.strip_prefix("dfns_operator_rollout_restarts_total{"))
        .map(|sample| {
            let (_, value) = sample.rsplit_once("} ").expect("a metrics sample");
            value.parse::<f64>().expect("a count") as u64
        })
        .sum()
}

#[tokio::test]
async fn a_deployment_in_rollout_restart_targets_is_restarted_exactly_once_per_switch() {
    const DEBOUNCE: Duration = Duration::from_secs(2);
    let mut setup = Setup::new("e2e-restart-once").await;
    setup.admin_connection("main", json!({})).await;
    start_operator(&mut setup, DEBOUNCE);
    create_deployment(&setup, "web", "app").await;
    ready_service_account(
        &setup,
        "app",
        json!([{ "kind": "Deployment", "name": "web" }]),
    )
    .await;
    // The first credential is no switch: the Deployment started with it.
    reconcile_each(&mut setup, &["app"], "created").await;
    assert_eq!(deployment_restarts(&setup, "web").await, (None, 1));

    let first_switch = switch_by_deleting_the_secret(&setup, "app").await;
    let first = wait_restarted(&setup, "web", None).await;
    let restarted_at: Timestamp = first.parse().expect("an RFC 3339 time");
    assert!(
        restarted_at >= first_switch + DEBOUNCE,
        "restarted at {restarted_at}, after the window from the switch at {first_switch}"
    );

    // Reconciles after the window (the resource annotated by someone) restart nothing.
    sleep_until(first_switch + DEBOUNCE + Duration::from_secs(1)).await;
    reconcile_each(&mut setup, &["app"], "between-switches").await;
    assert_eq!(
        deployment_restarts(&setup, "web").await,
        (Some(first.clone()), 2),
        "no restart without a switch"
    );

    let second_switch = switch_by_deleting_the_secret(&setup, "app").await;
    let second = wait_restarted(&setup, "web", Some(&first)).await;
    assert!(
        second.parse::<Timestamp>().unwrap() > restarted_at,
        "a later value: {first} then {second}"
    );
    sleep_until(second_switch + DEBOUNCE + Duration::from_secs(1)).await;
    reconcile_each(&mut setup, &["app"], "after-second").await;
    assert_eq!(
        deployment_restarts(&setup, "web").await,
        (Some(second), 3),
        "two switches, two restarts"
    );
    assert_eq!(restarts_made(&mut setup), 2);
    wait_event(&setup, "app", "RolloutRestarted").await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn three_secrets_switching_within_the_debounce_window_restart_their_deployment_once() {
    const DEBOUNCE: Duration = Duration::from_secs(8);
    const NAMES: [&str; 3] = ["api", "worker", "cron"];
    let mut setup = Setup::new("e2e-restart-debounce").await;
    setup.admin_connection("main", json!({})).await;
    start_operator(&mut setup, DEBOUNCE);
    create_deployment(&setup, "web", "api").await;
    for name in NAMES {
        ready_service_account(
            &setup,
            name,
            json!([{ "kind": "Deployment", "name": "web" }]),
        )
        .await;
    }

    // All three Secrets are lost at once; the three replacements switch within a few seconds.
    for name in NAMES {
        setup
            .secrets()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    let api = setup.api::<DfnsServiceAccount>();
    let mut switches = Vec::new();
    for name in NAMES {
        let at = wait_for(&format!("{name}'s switch"), || async {
            switched_at(&api.get(name).await.unwrap())
        })
        .await;
        switches.push(at);
    }
    let (first, last) = (
        *switches.iter().min().unwrap(),
        *switches.iter().max().unwrap(),
    );
    assert!(
        last.duration_since(first) < jiff::SignedDuration::from_secs(6),
        "the switches must fall within one window for this test to say anything: {switches:?}"
    );
    wait_restarted(&setup, "web", None).await;

    // Every resource's own window has ended and each was reconciled after it.
    sleep_until(last + DEBOUNCE + Duration::from_secs(1)).await;
    reconcile_each(&mut setup, &NAMES, "after-windows").await;
    let (annotation, generation) = deployment_restarts(&setup, "web").await;
    assert_eq!(
        generation, 2,
        "one restart for three switches ({annotation:?})"
    );
    assert_eq!(restarts_made(&mut setup), 1);
    let mut told = 0;
    for name in NAMES {
        let events = events_of(&setup, name).await;
        told += events
            .iter()
            .filter(|(r, _)| r == "RolloutRestarted")
            .count();
    }
    assert_eq!(told, 1, "one of the three tells of the restart");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn an_operator_restart_restarts_no_workload() {
    const DEBOUNCE: Duration = Duration::from_secs(2);
    let mut setup = Setup::new("e2e-restart-operator").await;
    setup.admin_connection("main", json!({})).await;
    start_operator(&mut setup, DEBOUNCE);
    create_deployment(&setup, "web", "app").await;
    ready_service_account(
        &setup,
        "app",
        json!([{ "kind": "Deployment", "name": "web" }]),
    )
    .await;
    let switched = switch_by_deleting_the_secret(&setup, "app").await;
    let restarted = wait_restarted(&setup, "web", None).await;
    sleep_until(switched + DEBOUNCE + Duration::from_secs(1)).await;

    // A new operator process (an upgrade, a crash, a new leader) reconciles everything afresh.
    setup.stop_operator().await;
    start_operator(&mut setup, DEBOUNCE);
    setup.wait_reconciles("DfnsServiceAccount", 1).await;
    reconcile_each(&mut setup, &["app"], "after-operator-restart").await;
    assert_eq!(
        deployment_restarts(&setup, "web").await,
        (Some(restarted), 2),
        "the restart of the switch is not repeated"
    );
    assert_eq!(restarts_made(&mut setup), 0, "by the new operator");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_missing_target_is_reported_and_the_others_restarted_while_the_credential_stays_ready() {
    let mut setup = Setup::new("e2e-restart-missing").await;
    setup.admin_connection("main", json!({})).await;
    start_operator(&mut setup, Duration::from_secs(1));
    create_stateful_set(&setup, "db", "app").await;
    let targets = json!([
        { "kind": "Deployment", "name": "absent" },
        { "kind": "StatefulSet", "name": "db" },
    ]);
    ready_service_account(&setup, "app", targets).await;

    switch_by_deleting_the_secret(&setup, "app").await;
    let note = wait_event(&setup, "app", "RolloutRestartTargetMissing").await;
    assert!(
        note.contains("Deployment absent") && note.contains("rolloutRestartTargets"),
        "{note}"
    );
    let stateful_sets = setup.api::<StatefulSet>();
    wait_for("a restart of the StatefulSet that exists", || async {
        let db = stateful_sets.get("db").await.unwrap();
        db.spec?
            .template
            .metadata?
            .annotations?
            .get(RESTARTED_AT)
            .cloned()
    })
    .await;
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "True", Some("Ready"))
        .await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn with_restarts_disabled_a_resource_naming_targets_is_told_and_nothing_is_restarted() {
    let mut setup = Setup::new("e2e-restart-disabled").await;
    setup.admin_connection("main", json!({})).await;
    let mut disabled = config(&setup, Duration::from_secs(1));
    disabled.rollout_restarts.enabled = false;
    setup.start_operator_with(disabled);
    create_deployment(&setup, "web", "app").await;
    ready_service_account(
        &setup,
        "app",
        json!([{ "kind": "Deployment", "name": "web" }]),
    )
    .await;
    let note = wait_event(&setup, "app", "RolloutRestartDisabled").await;
    assert!(note.contains("Deployment web"), "{note}");

    let switched = switch_by_deleting_the_secret(&setup, "app").await;
    sleep_until(switched + Duration::from_secs(2)).await;
    reconcile_each(&mut setup, &["app"], "after-switch").await;
    assert_eq!(deployment_restarts(&setup, "web").await, (None, 1));
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
