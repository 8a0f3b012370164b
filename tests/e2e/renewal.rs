//! Renewal before expiry, as a platform engineer relies on it: a short-lived PAT is renewed before
//! its token expires, again and again, its Secret switching to each replacement in one write; the
//! previous credential stays active for the grace period, then is retired; never more than two
//! are active. A token that expired while the operator was stopped is renewed at once, and the
//! resource is `Ready` only once its Secret holds a live token. `dfns.io/renew` renews once per
//! value. A crash right after the Secret switched is finished, not taken for a loss.

use std::collections::BTreeSet;
use std::time::Duration;

use dfns_operator::api::{
    DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount, RENEW_ANNOTATION,
};
use dfns_operator::controller::crash_point::CrashPoint;
use dfns_test_support::dfns::short_days;
use dfns_test_support::events::wait_event;
use dfns_test_support::operator::{Setup, WAIT, secret_text};
use dfns_test_support::operator_process::OperatorCommand;
use dfns_test_support::renewal_probe::RenewalProbe;
use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

use super::credentials::verify_with;

/// A namespace with a connection whose PATs carry a read-only role.
async fn prepare(prefix: &str) -> (Setup, String) {
    let setup = Setup::new(prefix).await;
    let role = setup
        .create_role("reader", &["Auth:ServiceAccounts:Read"])
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    (setup, role)
}

async fn apply_pat(
    setup: &Setup,
    name: &str,
    role: &str,
    seconds_valid: u64,
    rotation: serde_json::Value,
) {
    setup
        .apply::<DfnsPersonalAccessToken>(
            name,
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "permissionId": role,
                "secondsValid": seconds_valid,
                "rotation": rotation,
            }),
        )
        .await;
}

fn token_id(pat: &DfnsPersonalAccessToken) -> Option<String> {
    pat.status.as_ref()?.token_id.clone()
}

/// PATs of the setup's Dfns that are active, by token id.
fn active_pats(setup: &Setup) -> BTreeSet<String> {
    setup
        .emulator
        .state()
        .pats
        .into_iter()
        .filter(|p| p.is_active && !p.archived)
        .map(|p| p.token_id)
        .collect()
}

fn is_active(setup: &Setup, id: &str) -> bool {
    active_pats(setup).contains(id)
}

/// Waits, sampling Dfns meanwhile, until the PAT's recorded token id is none of `seen`; returns
/// the new id and the most PATs seen active at once.
async fn wait_renewed(setup: &Setup, name: &str, seen: &BTreeSet<String>) -> (String, usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut most_active = 0;
    loop {
        most_active = most_active.max(active_pats(setup).len());
        let pat = setup
            .api::<DfnsPersonalAccessToken>()
            .get(name)
            .await
            .expect("get");
        if let Some(id) = token_id(&pat).filter(|id| !seen.contains(id))
            && pat
                .status
                .as_ref()
                .is_some_and(|s| s.pending_renewal.is_none())
        {
            return (id, most_active);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was not renewed; status: {:?}",
            pat.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_short_lived_pat_is_renewed_before_expiry_twice_and_each_previous_retires_after_its_grace()
 {
    let (mut setup, role) = prepare("e2e-renewal-twice").await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    // A 40 s token renewed 28 s before expiry: a renewal every ~12 s; 4 s of grace.
    apply_pat(
        &setup,
        "ci",
        &role,
        40,
        json!({ "renewBefore": "28s", "gracePeriod": "4s" }),
    )
    .await;
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let first = token_id(&pat).expect("token id");
    let status = pat.status.as_ref().unwrap();
    let renewal_time = status.renewal_time.as_ref().expect("status.renewalTime").0;
    let mut expires_at = status.expires_at.as_ref().expect("status.expiresAt").0;
    assert_eq!(
        expires_at.duration_since(renewal_time),
        jiff::SignedDuration::from_secs(28),
        "renewalTime is renewBefore before the expiry"
    );

    let mut seen = BTreeSet::from([first.clone()]);
    let mut previous = first;
    for round in 1..=2 {
        let (current, most_active) = wait_renewed(&setup, "ci", &seen).await;
        assert!(
            most_active <= 2,
            "round {round}: {most_active} PATs active at once"
        );
        assert!(
            Timestamp::now() < expires_at,
            "round {round}: renewed only after the expiry"
        );
        let pat = setup
            .api::<DfnsPersonalAccessToken>()
            .get("ci")
            .await
            .unwrap();
        let status = pat.status.clone().unwrap();
        let previous_expiry = expires_at;
        expires_at = status.expires_at.as_ref().expect("new expiresAt").0;
        assert!(
            expires_at > previous_expiry,
            "round {round}: a new lifetime"
        );
        let retiring = status
            .retiring
            .clone()
            .expect("the previous credential in status");
        assert_eq!(
            retiring.id, previous,
            "round {round}: previous id in status"
        );
        assert!(
            retiring.retire_at.is_some(),
            "round {round}: its retirement time"
        );
        assert!(status.switched_at.is_some(), "round {round}: switchedAt");
        // The Secret switched in one write: its token, key and credential id work together.
        let secret = setup.secrets().get("ci").await.expect("Secret");
        assert_eq!(
            secret_text(&secret, "DFNS_CRED_ID").as_deref(),
            status.credential_id.as_deref()
        );
        let (works, output) = verify_with(&secret).await;
        assert!(works, "round {round}: the renewed Secret works: {output}");
        // Still active during its grace period, retired after it.
        assert!(
            is_active(&setup, &previous),
            "round {round}: previous retired before its grace ended"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while is_active(&setup, &previous) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: {previous} never retired"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        seen.insert(current.clone());
        previous = current;
    }
    let note = wait_event(&setup, "ci", "Renewed").await;
    assert!(note.contains("grace period"), "{note}");
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_token_that_expired_while_the_operator_was_stopped_is_renewed_at_once_and_ready_only_with_a_live_token()
 {
    let (mut setup, role) = prepare("e2e-renewal-expired").await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    apply_pat(&setup, "ci", &role, 20, json!({})).await;
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let old = token_id(&pat).unwrap();
    let expires_at = pat.status.unwrap().expires_at.unwrap().0;
    setup.stop_operator().await;
    while Timestamp::now() <= expires_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every status the operator writes from now on, in order.
    let api = setup.api::<DfnsPersonalAccessToken>();
    let mut statuses = Box::pin(watcher::watch_object(api.clone(), "ci"));
    setup.start_operator();
    let mut reasons = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let ready = loop {
        let next = tokio::time::timeout_at(deadline, statuses.next())
            .await
            .expect("renewed within the deadline")
            .expect("watch")
            .expect("watch event");
        let Some(pat) = next else { continue };
        let Some(ready) = pat
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone()))
        else {
            continue;
        };
        reasons.push(ready.clone());
        if ready.0 == "True" && token_id(&pat).as_deref() != Some(old.as_str()) {
            break pat;
        }
        assert!(
            !(ready.0 == "True"
                && token_id(&pat).as_deref() == Some(old.as_str())
                && reasons.len() > 1),
            "Ready again with the expired token: {reasons:?}"
        );
    };
    assert!(
        reasons.iter().any(|(s, r)| s == "False" && r == "Expired"),
        "Expired reported before the renewal: {reasons:?}"
    );
    let secret = setup.secrets().get("ci").await.unwrap();
    let (works, output) = verify_with(&secret).await;
    assert!(works, "Ready only with a live token: {output}");
    assert!(
        ready.status.unwrap().expires_at.unwrap().0 > Timestamp::now(),
        "the new token is live"
    );
    let note = wait_event(&setup, "ci", "Renewing").await;
    assert!(note.contains("expired"), "{note}");
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn each_new_value_of_the_renew_annotation_renews_exactly_once() {
    let (mut setup, role) = prepare("e2e-renewal-asked").await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    // Lives a day: only the annotation renews it in this test.
    apply_pat(&setup, "ci", &role, 86_400, json!({ "gracePeriod": "2s" })).await;
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let mut ids = vec![token_id(&pat).unwrap()];
    let api = setup.api::<DfnsPersonalAccessToken>();
    let annotate = |key: &'static str, value: &'static str| {
        let api = api.clone();
        async move {
            api.patch(
                "ci",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
            )
            .await
            .expect("annotate");
        }
    };
    for value in ["first", "second"] {
        annotate(RENEW_ANNOTATION, value).await;
        let seen: BTreeSet<String> = ids.iter().cloned().collect();
        let (id, most_active) = wait_renewed(&setup, "ci", &seen).await;
        assert!(most_active <= 2);
        ids.push(id);
        // The same value again, and an unrelated change: no further renewal.
        annotate("example.com/touched", value).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pat = api.get("ci").await.unwrap();
        assert_eq!(
            token_id(&pat).as_ref(),
            ids.last(),
            "renewed more than once for {value}"
        );
        assert_eq!(
            pat.status.unwrap().renew_requested.as_deref(),
            Some(value),
            "the value acted on is recorded"
        );
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3, "{ids:?}");
    let pats = setup.emulator.state().pats;
    let created = pats.iter().filter(|p| ids.contains(&p.token_id)).count();
    assert_eq!(created, 3, "one PAT per renewal, no more: {ids:?}");
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_crash_right_after_the_secret_switched_is_finished_on_restart_not_taken_for_a_loss() {
    let (setup, role) = prepare("e2e-renewal-crash").await;
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), log.to_path_buf());
    let mut operator = command.spawn(&setup, None);
    setup.wait_ready::<DfnsConnection>("main").await;
    apply_pat(&setup, "ci", &role, 86_400, json!({ "gracePeriod": "2s" })).await;
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let old = token_id(&pat).unwrap();
    operator.kill().await;

    let mut crashing = command.spawn(&setup, Some(CrashPoint::RenewalSecretSwitched));
    setup
        .api::<DfnsPersonalAccessToken>()
        .patch(
            "ci",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { RENEW_ANNOTATION: "now" } } })),
        )
        .await
        .unwrap();
    crashing.assert_crashed_at_armed_point().await;
    let at_crash = setup
        .api::<DfnsPersonalAccessToken>()
        .get("ci")
        .await
        .unwrap();
    let status = at_crash.status.clone().unwrap();
    assert_eq!(
        token_id(&at_crash),
        Some(old.clone()),
        "status still records the old PAT"
    );
    assert!(
        status.pending_renewal.is_some(),
        "the renewal is recorded as under way"
    );
    let secret = setup.secrets().get("ci").await.unwrap();
    let switched_to = secret_text(&secret, "DFNS_CRED_ID");
    assert_ne!(
        switched_to, status.credential_id,
        "the Secret already holds the replacement"
    );
    let staging = format!("dfns-renewal-{}", at_crash.metadata.uid.clone().unwrap());
    assert!(
        setup.secrets().get_opt(&staging).await.unwrap().is_none(),
        "the staging Secret is gone"
    );

    let mut operator = command.spawn(&setup, None);
    let (new, most_active) = wait_renewed(&setup, "ci", &BTreeSet::from([old.clone()])).await;
    assert!(most_active <= 2, "{most_active} active at once");
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    assert_eq!(token_id(&pat), Some(new.clone()));
    assert_eq!(
        pat.status.as_ref().unwrap().credential_id,
        switched_to,
        "the replacement the Secret was switched to is recorded, not replaced again"
    );
    let secret = setup.secrets().get("ci").await.unwrap();
    let (works, output) = verify_with(&secret).await;
    assert!(works, "{output}");
    let events = dfns_test_support::events::events_of(&setup, "ci").await;
    assert!(
        !events
            .iter()
            .any(|(reason, _)| reason == "CredentialLost" || reason == "OrphanRetired"),
        "the switch was taken for a loss: {events:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while is_active(&setup, &old) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{old} never retired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(active_pats(&setup), BTreeSet::from([new]));
    operator.kill().await;
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
}

/// A small deterministic generator, seeded from the clock and printed, so a failing run's kill
/// moments can be replayed.
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test]
async fn ten_kills_at_random_moments_while_twenty_pats_renew_leave_one_current_and_at_most_one_previous_each()
 {
    const COUNT: usize = 20;
    let (setup, role) = prepare("e2e-renewal-kills").await;
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), log.to_path_buf());
    let mut operator = command.spawn(&setup, None);
    setup.wait_ready::<DfnsConnection>("main").await;
    // 60 s tokens renewed 50 s before expiry: each renews every ~10 s while the kills go on.
    let names: Vec<String> = (0..COUNT).map(|i| format!("ci-{i}")).collect();
    for name in &names {
        apply_pat(
            &setup,
            name,
            &role,
            60,
            json!({ "renewBefore": "50s", "gracePeriod": "3s" }),
        )
        .await;
    }
    for name in &names {
        setup.wait_ready::<DfnsPersonalAccessToken>(name).await;
    }
    let seed = Timestamp::now().as_nanosecond() as u64;
    eprintln!("kill moments seed: {seed}");
    let mut moments = Moments(seed);
    // Ten kills at least, and on until renewals have happened while they go on: a loaded machine
    // renews more slowly, and kills that fall between renewals would prove nothing.
    let kills_deadline = tokio::time::Instant::now() + WAIT;
    let mut kills = 0;
    while kills < 10 || setup.emulator.state().pats.len() <= 2 * COUNT {
        assert!(
            tokio::time::Instant::now() < kills_deadline,
            "no renewals after {kills} kills ({} PATs for {COUNT} resources)",
            setup.emulator.state().pats.len()
        );
        tokio::time::sleep(Duration::from_millis(500 + moments.next_millis(3_500))).await;
        operator.kill().await;
        operator = command.spawn(&setup, None);
        kills += 1;
    }
    // Every resource renewed at least once since the start, and settles: Ready, nothing pending.
    let api = setup.api::<DfnsPersonalAccessToken>();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pats = api.list(&Default::default()).await.unwrap().items;
        let settled = pats.iter().all(|p| {
            p.status.as_ref().is_some_and(|s| {
                s.pending_renewal.is_none()
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        });
        if settled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "did not settle: {:?}",
            pats.iter()
                .map(|p| (&p.metadata.name, &p.status))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Freeze the world: no operator, then judge statuses, Secrets and Dfns together.
    operator.kill().await;
    let settled = api.list(&Default::default()).await.unwrap().items;
    let active = active_pats(&setup);
    let mut allowed = BTreeSet::new();
    for pat in &settled {
        let name = pat.metadata.name.clone().unwrap();
        let status = pat.status.clone().unwrap();
        let current = status.token_id.clone().expect("a current credential");
        assert!(
            active.contains(&current),
            "{name}: current {current} is active"
        );
        allowed.insert(current);
        if let Some(previous) = &status.retiring {
            allowed.insert(previous.id.clone());
        }
        let secret = setup.secrets().get(&name).await.unwrap();
        assert_eq!(
            secret_text(&secret, "DFNS_CRED_ID"),
            status.credential_id,
            "{name}: the Secret holds the current credential"
        );
        let (works, output) = verify_with(&secret).await;
        assert!(works, "{name}: its Secret works: {output}");
        assert!(
            status.expires_at.unwrap().0 > Timestamp::now(),
            "{name}: not expired"
        );
    }
    let stray: Vec<&String> = active.difference(&allowed).collect();
    assert!(
        stray.is_empty(),
        "active PATs that are neither current nor previous: {stray:?}"
    );
    let renewals = setup.emulator.state().pats.len();
    assert!(
        renewals > 2 * COUNT,
        "renewals happened during the kills ({renewals} PATs for {COUNT} resources)"
    );
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
}

/// Ids that were the recorded credential of the resource at some point, as seen by polling.
async fn current_id(setup: &Setup, kind_is_sa: bool, name: &str) -> Option<String> {
    if kind_is_sa {
        let sa = setup
            .api::<DfnsServiceAccount>()
            .get(name)
            .await
            .expect("get");
        sa.status.and_then(|s| s.service_account_id)
    } else {
        let pat = setup
            .api::<DfnsPersonalAccessToken>()
            .get(name)
            .await
            .expect("get");
        token_id(&pat)
    }
}

/// Active service accounts and PATs in the setup's Dfns.
fn active_identities(setup: &Setup) -> (usize, usize) {
    let state = setup.emulator.state();
    let sas = state
        .service_accounts
        .iter()
        .filter(|s| s.is_active && !s.archived)
        .count();
    let pats = state
        .pats
        .iter()
        .filter(|p| p.is_active && !p.archived)
        .count();
    (sas, pats)
}

#[tokio::test]
async fn workloads_using_a_renewing_service_account_and_pat_see_zero_failed_calls() {
    // A day of `daysValid` lasts 40 s here, so a service account's token can be short-lived.
    let mut setup = Setup::with_emulator("e2e-renewal-workload", short_days(40)).await;
    // The probe reads its own record and writes its own name back unchanged.
    let role = setup
        .running_with_role(
            "probe-self",
            &["Auth:ServiceAccounts:Read", "Auth:ServiceAccounts:Update"],
        )
        .await;
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    // 40 s tokens renewed 28 s before expiry (every ~12 s); 10 s of grace covers the workload's
    // lag (the Secret reaches its volume up to 4 s late, as a kubelet's sync does, and a round
    // takes 2 s).
    let rotation = json!({ "renewBefore": "28s", "gracePeriod": "10s" });
    setup
        .apply::<DfnsServiceAccount>(
            "payments",
            json!({ "connectionRef": conn, "permissionId": role, "daysValid": 1, "rotation": rotation }),
        )
        .await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            "ci",
            json!({ "connectionRef": conn, "permissionId": role, "secondsValid": 40, "rotation": rotation }),
        )
        .await;
    setup.wait_ready::<DfnsServiceAccount>("payments").await;
    setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let lag = Duration::from_secs(4);
    let sa_probe =
        RenewalProbe::start_mirroring_every(setup.kube.clone(), setup.namespace(), "payments", lag)
            .await;
    let pat_probe =
        RenewalProbe::start_mirroring_every(setup.kube.clone(), setup.namespace(), "ci", lag).await;

    // Two renewals of each, watched: never more than two active of a kind.
    let mut seen = [BTreeSet::new(), BTreeSet::new()];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for (i, (is_sa, name)) in [(true, "payments"), (false, "ci")].into_iter().enumerate() {
            if let Some(id) = current_id(&setup, is_sa, name).await {
                seen[i].insert(id);
            }
        }
        let (sas, pats) = active_identities(&setup);
        assert!(
            sas <= 2 && pats <= 2,
            "{sas} service accounts, {pats} PATs active at once"
        );
        if seen.iter().all(|ids| ids.len() >= 3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "two renewals each did not happen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The workloads keep going across the last switch and its grace period.
    tokio::time::sleep(Duration::from_secs(12)).await;
    sa_probe.stop_with_no_failures("service account", 10).await;
    pat_probe.stop_with_no_failures("PAT", 10).await;
    // Each previous credential was retired after its grace: only the current ones stay active.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while active_identities(&setup) != (1, 1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "previous credentials not retired: {:?}",
            active_identities(&setup)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    setup.assert_no_leaks().await;
}
