//! Key rotation in place, as a platform engineer relies on it: `dfns.io/rotate-key` (or
//! `spec.rotation.keyRotationInterval`) gives a service account or PAT a new signing key while
//! it keeps its token; the Secret switches key and credential id in one write, the old key
//! credential works for the grace period and is then deactivated, and the resource never looks
//! lost. Where Dfns refuses identities their own key credentials (the reference pages' reading),
//! the refusal is reported once and nothing breaks, or, if the spec says so, one renewal runs
//! instead. A crash at each new step recovers to one working key.

use std::collections::BTreeSet;
use std::time::Duration;

use dfns_emulator::{EmulatorConfig, IdentityKeyRotation, Profile};
use dfns_operator::api::{
    CredentialStatus, DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount,
    ROTATE_KEY_ANNOTATION,
};
use dfns_operator::controller::crash_point::CrashPoint;
use dfns_operator::controller::credential::CredentialResource;
use dfns_test_support::events::events_of;
use dfns_test_support::operator::{NamespacedResource, Setup, WAIT, secret_map, secret_text};
use dfns_test_support::operator_process::OperatorCommand;
use dfns_test_support::renewal_probe::RenewalProbe;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::credentials::verify_with;

/// Dfns as its credential rotation guide describes it: identities register their own keys, and
/// service accounts may list their credentials (to name the original one for deactivation).
fn rotation_allowed() -> EmulatorConfig {
    EmulatorConfig {
        profile: Profile {
            identity_key_rotation: IdentityKeyRotation::Allowed,
            service_accounts_list_credentials: true,
            ..Profile::strict()
        },
        ..EmulatorConfig::default()
    }
}

async fn prepare(setup: &Setup) -> String {
    let role = setup
        .create_role("reader", &["Auth:ServiceAccounts:Read"])
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    role
}

async fn apply<K: NamespacedResource>(
    setup: &Setup,
    name: &str,
    role: &str,
    rotation: serde_json::Value,
) {
    setup
        .apply::<K>(
            name,
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "permissionId": role,
                "rotation": rotation,
            }),
        )
        .await;
}

async fn annotate<K: NamespacedResource>(setup: &Setup, name: &str, key: &str, value: &str) {
    setup
        .api::<K>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
        )
        .await
        .expect("annotate");
}

fn status_of<K: CredentialResource>(obj: &K) -> CredentialStatus {
    obj.credential_status().cloned().unwrap_or_default()
}

fn ready_reason(status: &CredentialStatus) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Key credentials of `owner` that Dfns holds active.
fn active_keys(setup: &Setup, owner: &str) -> BTreeSet<String> {
    setup
        .emulator
        .state()
        .credentials
        .into_iter()
        .filter(|c| c.owner_id == owner && c.is_active)
        .map(|c| c.credential_id)
        .collect()
}

/// Waits until the Secret signs with a credential id other than `old` and the rotation is
/// recorded; checks on the way that the resource stays `Ready` and at most two keys are active.
async fn wait_rotated<K: NamespacedResource + CredentialResource>(
    setup: &Setup,
    name: &str,
    owner: &str,
    old: &str,
    within: Duration,
) -> CredentialStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        assert!(
            active_keys(setup, owner).len() <= 2,
            "{name}: more than two keys active"
        );
        let obj = setup.api::<K>().get(name).await.expect("get");
        let status = status_of(&obj);
        if let Some((ready, reason)) = ready_reason(&status) {
            assert_eq!(
                ready, "True",
                "{name} left Ready ({reason}) during a rotation"
            );
        }
        let secret = setup.secrets().get(name).await.expect("Secret");
        if secret_text(&secret, "DFNS_CRED_ID").as_deref() != Some(old)
            && status.pending_key_rotation.is_none()
            && status.key_credential.is_some()
        {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: the key was not rotated; status: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_inactive(setup: &Setup, owner: &str, cred_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while active_keys(setup, owner).contains(cred_id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "key credential {cred_id} was never deactivated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One `dfns.io/rotate-key` value: one rotation, the token kept, the old key retired after grace.
async fn rotate_on_request<K: NamespacedResource + CredentialResource>(
    setup: &Setup,
    name: &str,
    role: &str,
) {
    apply::<K>(setup, name, role, json!({ "gracePeriod": "3s" })).await;
    let obj = setup.wait_ready::<K>(name).await;
    let before = status_of(&obj);
    let owner = before.recorded_id().expect("recorded id").to_owned();
    let secret = setup.secrets().get(name).await.unwrap();
    let old = secret_map(&secret);
    let old_cred = old["DFNS_CRED_ID"].clone();
    assert_eq!(
        active_keys(setup, &owner),
        BTreeSet::from([old_cred.clone()])
    );

    annotate::<K>(setup, name, ROTATE_KEY_ANNOTATION, "first").await;
    let status = wait_rotated::<K>(setup, name, &owner, &old_cred, WAIT).await;
    let secret = setup.secrets().get(name).await.unwrap();
    let new = secret_map(&secret);
    assert_eq!(
        new["DFNS_AUTH_TOKEN"], old["DFNS_AUTH_TOKEN"],
        "{name}: the token is kept"
    );
    assert_ne!(
        new["DFNS_PRIVATE_KEY"], old["DFNS_PRIVATE_KEY"],
        "{name}: a new key"
    );
    assert_ne!(new["DFNS_PUBLIC_KEY"], old["DFNS_PUBLIC_KEY"]);
    assert_eq!(
        status.recorded_id(),
        Some(owner.as_str()),
        "{name}: the same identity"
    );
    assert_eq!(
        status.credential_id.as_deref(),
        Some(new["DFNS_CRED_ID"].as_str())
    );
    assert_eq!(status.key_rotation_requested.as_deref(), Some("first"));
    assert!(status.switched_at.is_some(), "{name}: switchedAt is set");
    assert_eq!(
        status
            .retiring_key
            .as_ref()
            .map(|r| r.credential.cred_id.as_str()),
        Some(old_cred.as_str())
    );
    let (works, output) = verify_with(&secret).await;
    assert!(works, "{name}: the rotated Secret works: {output}");
    // The old key works during its grace period, then is deactivated.
    assert!(
        active_keys(setup, &owner).contains(&old_cred),
        "{name}: retired before its grace"
    );
    wait_inactive(setup, &owner, &old_cred).await;
    assert_eq!(
        active_keys(setup, &owner),
        BTreeSet::from([new["DFNS_CRED_ID"].clone()])
    );

    // The same value again and an unrelated change (a reconcile that judges the held
    // credential afresh): no second rotation, never a loss.
    annotate::<K>(setup, name, ROTATE_KEY_ANNOTATION, "first").await;
    annotate::<K>(setup, name, "example.com/touched", "yes").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let obj = setup.wait_ready::<K>(name).await;
    let after = status_of(&obj);
    assert_eq!(after.recorded_id(), Some(owner.as_str()));
    assert_eq!(
        after.credential_id, status.credential_id,
        "{name}: rotated more than once"
    );
    assert_eq!(ready_reason(&after).map(|r| r.1).as_deref(), Some("Ready"));
    let events = events_of(setup, name).await;
    assert!(
        !events.iter().any(|(reason, _)| reason == "CredentialLost"),
        "{name}: a rotated key was taken for a loss: {events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|(reason, _)| reason == "KeyRotated")
            .count(),
        1,
        "{events:?}"
    );
    assert!(
        events.iter().any(|(reason, _)| reason == "KeyRetired"),
        "{events:?}"
    );
}

#[tokio::test]
async fn rotate_key_gives_a_service_account_and_a_pat_a_new_key_once_keeping_their_tokens() {
    let mut setup = Setup::with_emulator("e2e-keyrot-asked", rotation_allowed()).await;
    let role = prepare(&setup).await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    rotate_on_request::<DfnsServiceAccount>(&setup, "svc", &role).await;
    rotate_on_request::<DfnsPersonalAccessToken>(&setup, "ci", &role).await;
    let state = setup.emulator.state();
    assert_eq!(
        state.service_accounts.len(),
        1,
        "no renewal: one service account"
    );
    assert_eq!(state.pats.len(), 1, "no renewal: one PAT");
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn key_rotation_interval_rotates_the_key_on_schedule() {
    let mut setup = Setup::with_emulator("e2e-keyrot-interval", rotation_allowed()).await;
    let role = prepare(&setup).await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    apply::<DfnsServiceAccount>(
        &setup,
        "svc",
        &role,
        json!({ "keyRotationInterval": "1m", "gracePeriod": "2s" }),
    )
    .await;
    let obj = setup.wait_ready::<DfnsServiceAccount>("svc").await;
    let owner = status_of(&obj).recorded_id().unwrap().to_owned();
    let secret = setup.secrets().get("svc").await.unwrap();
    let old_cred = secret_text(&secret, "DFNS_CRED_ID").unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let scheduled = loop {
        let status = status_of(&setup.api::<DfnsServiceAccount>().get("svc").await.unwrap());
        if let Some(at) = status.key_rotation_time {
            break at.0;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no keyRotationTime: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = wait_rotated::<DfnsServiceAccount>(
        &setup,
        "svc",
        &owner,
        &old_cred,
        Duration::from_secs(100),
    )
    .await;
    assert!(
        jiff::Timestamp::now() >= scheduled,
        "rotated before its scheduled time {scheduled}"
    );
    let next = status
        .key_rotation_time
        .expect("the next rotation is scheduled")
        .0;
    assert!(next > scheduled, "the next rotation is an interval later");
    let secret = setup.secrets().get("svc").await.unwrap();
    let (works, output) = verify_with(&secret).await;
    assert!(works, "{output}");
    wait_inactive(&setup, &owner, &old_cred).await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_rotation_dfns_refuses_is_reported_once_and_leaves_the_secret_working() {
    // The default profile: the reference pages' caller tables refuse identities their keys.
    let mut setup = Setup::new("e2e-keyrot-refused").await;
    let role = prepare(&setup).await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    apply::<DfnsServiceAccount>(&setup, "svc", &role, json!({})).await;
    setup.wait_ready::<DfnsServiceAccount>("svc").await;
    let before = secret_map(&setup.secrets().get("svc").await.unwrap());

    annotate::<DfnsServiceAccount>(&setup, "svc", ROTATE_KEY_ANNOTATION, "first").await;
    let obj = setup
        .wait_condition::<DfnsServiceAccount>("svc", "Ready", "True", Some("KeyRotationRefused"))
        .await;
    let status = status_of(&obj);
    assert_eq!(
        status.key_rotation_requested.as_deref(),
        Some("first"),
        "answered"
    );
    assert!(status.pending_key_rotation.is_none());
    // Answered once: more reconciles bring no second attempt and no second Event.
    annotate::<DfnsServiceAccount>(&setup, "svc", "example.com/touched", "yes").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = events_of(&setup, "svc").await;
    let refused: Vec<_> = events
        .iter()
        .filter(|(r, _)| r == "KeyRotationRefused")
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert!(
        refused[0].1.contains("onKeyRotationRefused"),
        "says what to do: {}",
        refused[0].1
    );
    let secret = setup.secrets().get("svc").await.unwrap();
    assert_eq!(secret_map(&secret), before, "the Secret is untouched");
    let (works, output) = verify_with(&secret).await;
    assert!(works, "{output}");
    let uid = obj.metadata.uid.clone().unwrap();
    assert!(
        setup
            .secrets()
            .get_opt(&format!("dfns-renewal-{uid}"))
            .await
            .unwrap()
            .is_none(),
        "no staging Secret is left"
    );
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_refused_rotation_with_on_refused_renew_renews_exactly_once() {
    let mut setup = Setup::new("e2e-keyrot-renew").await;
    let role = prepare(&setup).await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    apply::<DfnsPersonalAccessToken>(
        &setup,
        "ci",
        &role,
        json!({ "onKeyRotationRefused": "Renew", "gracePeriod": "2s" }),
    )
    .await;
    let obj = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let old = status_of(&obj).token_id.unwrap();
    annotate::<DfnsPersonalAccessToken>(&setup, "ci", ROTATE_KEY_ANNOTATION, "first").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let new = loop {
        let status = status_of(
            &setup
                .api::<DfnsPersonalAccessToken>()
                .get("ci")
                .await
                .unwrap(),
        );
        if let Some(id) = status.token_id.clone().filter(|id| *id != old)
            && status.pending_renewal.is_none()
        {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no renewal: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let obj = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    assert_eq!(
        status_of(&obj).token_id.as_deref(),
        Some(new.as_str()),
        "renewed once"
    );
    assert_eq!(setup.emulator.state().pats.len(), 2, "exactly one renewal");
    let secret = setup.secrets().get("ci").await.unwrap();
    let (works, output) = verify_with(&secret).await;
    assert!(works, "{output}");
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_crash_at_each_key_rotation_step_recovers_to_one_working_key() {
    for point in [
        CrashPoint::KeyRotationRegistered,
        CrashPoint::KeyRotationSecretSwitched,
    ] {
        let setup =
            Setup::with_emulator(&format!("e2e-keyrot-{}", point.name()), rotation_allowed()).await;
        let role = prepare(&setup).await;
        let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), log.to_path_buf());
        let mut operator = command.spawn(&setup, None);
        setup.wait_ready::<DfnsConnection>("main").await;
        apply::<DfnsServiceAccount>(&setup, "svc", &role, json!({ "gracePeriod": "2s" })).await;
        let obj = setup.wait_ready::<DfnsServiceAccount>("svc").await;
        let owner = status_of(&obj).recorded_id().unwrap().to_owned();
        let old = secret_map(&setup.secrets().get("svc").await.unwrap());
        let old_cred = old["DFNS_CRED_ID"].clone();
        operator.kill().await;

        let mut crashing = command.spawn(&setup, Some(point));
        annotate::<DfnsServiceAccount>(&setup, "svc", ROTATE_KEY_ANNOTATION, "now").await;
        crashing.assert_crashed_at_armed_point().await;
        assert_eq!(
            active_keys(&setup, &owner).len(),
            2,
            "{}: the new key is registered",
            point.name()
        );

        let mut operator = command.spawn(&setup, None);
        let status =
            wait_rotated::<DfnsServiceAccount>(&setup, "svc", &owner, &old_cred, WAIT).await;
        let secret = setup.secrets().get("svc").await.unwrap();
        let new = secret_map(&secret);
        assert_eq!(new["DFNS_AUTH_TOKEN"], old["DFNS_AUTH_TOKEN"]);
        assert_eq!(
            status.credential_id.as_deref(),
            Some(new["DFNS_CRED_ID"].as_str())
        );
        let (works, output) = verify_with(&secret).await;
        assert!(works, "{}: {output}", point.name());
        wait_inactive(&setup, &owner, &old_cred).await;
        // One key left active, and it is the one the Secret holds.
        assert_eq!(
            active_keys(&setup, &owner),
            BTreeSet::from([new["DFNS_CRED_ID"].clone()])
        );
        let events = events_of(&setup, "svc").await;
        assert!(
            !events
                .iter()
                .any(|(r, _)| r == "CredentialLost" || r == "KeyRotationAbandoned"),
            "{}: {events:?}",
            point.name()
        );
        operator.kill().await;
        setup
            .leak_check()
            .with_log_file(log.to_path_buf())
            .assert_clean()
            .await;
    }
}

#[tokio::test]
async fn workloads_using_a_service_account_and_a_pat_see_zero_failed_calls_across_a_key_rotation() {
    let mut setup = Setup::with_emulator("e2e-keyrot-workload", rotation_allowed()).await;
    // The probe reads its own record and writes its own name back unchanged (signed).
    let role = setup
        .running_with_role(
            "probe-self",
            &["Auth:ServiceAccounts:Read", "Auth:ServiceAccounts:Update"],
        )
        .await;
    // 10 s of grace covers the workload's lag (the Secret reaches its volume up to 4 s late).
    apply::<DfnsServiceAccount>(&setup, "payments", &role, json!({ "gracePeriod": "10s" })).await;
    apply::<DfnsPersonalAccessToken>(&setup, "ci", &role, json!({ "gracePeriod": "10s" })).await;
    let mut before = Vec::new();
    for name in ["payments", "ci"] {
        let status = if name == "ci" {
            status_of(&setup.wait_ready::<DfnsPersonalAccessToken>(name).await)
        } else {
            status_of(&setup.wait_ready::<DfnsServiceAccount>(name).await)
        };
        let secret = setup.secrets().get(name).await.unwrap();
        let cred = secret_text(&secret, "DFNS_CRED_ID").unwrap();
        before.push((name, status.recorded_id().unwrap().to_owned(), cred));
    }
    let lag = Duration::from_secs(4);
    let sa_probe =
        RenewalProbe::start_mirroring_every(setup.kube.clone(), setup.namespace(), "payments", lag)
            .await;
    let pat_probe =
        RenewalProbe::start_mirroring_every(setup.kube.clone(), setup.namespace(), "ci", lag).await;
    // Let the workloads run on the original key first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    annotate::<DfnsServiceAccount>(&setup, "payments", ROTATE_KEY_ANNOTATION, "now").await;
    annotate::<DfnsPersonalAccessToken>(&setup, "ci", ROTATE_KEY_ANNOTATION, "now").await;
    let (_, sa_owner, sa_old) = &before[0];
    let (_, pat_owner, pat_old) = &before[1];
    wait_rotated::<DfnsServiceAccount>(&setup, "payments", sa_owner, sa_old, WAIT).await;
    wait_rotated::<DfnsPersonalAccessToken>(&setup, "ci", pat_owner, pat_old, WAIT).await;
    // The workloads keep going across the switch, the grace period and the old key's
    // deactivation.
    tokio::time::sleep(Duration::from_secs(14)).await;
    sa_probe.stop_with_no_failures("service account", 6).await;
    pat_probe.stop_with_no_failures("PAT", 6).await;
    wait_inactive(&setup, sa_owner, sa_old).await;
    wait_inactive(&setup, pat_owner, pat_old).await;
    setup.assert_no_leaks().await;
}
