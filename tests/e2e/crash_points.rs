//! Recovery from a crash at each crash point (docs/architecture.md, "Crash points"), for both
//! kinds: the operator process is armed with one point, driven there, and must abort there (by
//! SIGABRT, with the point's marker in its log), so the crash happened exactly where claimed.
//! A restarted, unarmed operator must then converge: Ready (or gone, after deletion), exactly one
//! active credential for the resource in Dfns and it is the recorded one, a Secret whose token and
//! key work, no active orphan, and no secret in logs, statuses, Events or metrics.

use std::time::Duration;

use dfns_emulator::{Faults, PublicKeyForm};
use dfns_operator::api::{DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_operator::controller::crash_point::CrashPoint;
use dfns_operator::controller::credential::CredentialResource;
use dfns_test_support::credential_checks::{
    Recorded, active_in_dfns, assert_one_working_credential_each,
};
use dfns_test_support::operator::{Setup, WAIT, secret_text};
use dfns_test_support::operator_process::OperatorCommand;
use kube::api::DeleteParams;
use serde_json::json;
use tempfile::TempPath;

const NAME: &str = "crashing";

/// A namespace with a usable connection, and the command that runs the operator there.
async fn prepare(prefix: &str) -> (Setup, OperatorCommand, TempPath) {
    let setup = Setup::new(prefix).await;
    setup
        .admin_connection("main", json!({ "allowUnscopedTokens": true }))
        .await;
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), log.to_path_buf());
    (setup, command, log)
}

async fn apply<K: CredentialResource>(setup: &Setup) {
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<K>(NAME, json!({ "connectionRef": conn }))
        .await;
}

async fn get<K: CredentialResource>(setup: &Setup) -> K {
    setup.api::<K>().get(NAME).await.expect("get the resource")
}

/// What the crashed run left: the resource's status (never Ready yet), the Secret's token if
/// any, and Dfns' credentials of the kind as (active, archived).
struct AtCrash {
    pending: bool,
    recorded: Option<String>,
    token_in_secret: bool,
    dfns: Vec<(bool, bool)>,
}

async fn at_crash<K: CredentialResource>(setup: &Setup) -> AtCrash {
    let obj = get::<K>(setup).await;
    let status = obj.credential_status().cloned().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(!ready, "a crashed create must not look Ready");
    let secret = setup.secrets().get_opt(NAME).await.expect("get the Secret");
    let state = setup.emulator.state();
    let dfns = match K::DFNS_KIND {
        dfns_client::IdentityKind::ServiceAccount => state
            .service_accounts
            .iter()
            .map(|s| (s.is_active, s.archived))
            .collect(),
        dfns_client::IdentityKind::PersonalAccessToken => state
            .pats
            .iter()
            .map(|p| (p.is_active, p.archived))
            .collect(),
    };
    AtCrash {
        pending: status.pending_create.is_some(),
        recorded: status.recorded_id().map(str::to_string),
        token_in_secret: secret
            .as_ref()
            .and_then(|s| secret_text(s, "DFNS_AUTH_TOKEN"))
            .is_some_and(|t| !t.is_empty()),
        dfns,
    }
}

/// Restarts unarmed, waits for Ready, checks the outcome; returns the markers in the log.
async fn recover<K: CredentialResource>(
    setup: &Setup,
    command: &OperatorCommand,
    log: &TempPath,
    point: CrashPoint,
) -> (K, usize) {
    let mut operator = command.spawn(setup, None);
    let obj = setup.wait_ready::<K>(NAME).await;
    operator.assert_running();
    operator.kill().await;
    assert_one_working_credential_each(setup, &[Recorded::of(&obj)]).await;
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
    (obj, command.marker_count(point))
}

/// A crash at one of the three create points, then recovery.
async fn crash_during_create<K: CredentialResource>(prefix: &str, point: CrashPoint) -> usize {
    let (setup, command, log) = prepare(prefix).await;
    apply::<K>(&setup).await;
    command
        .spawn(&setup, Some(point))
        .assert_crashed_at_armed_point()
        .await;
    let left = at_crash::<K>(&setup).await;
    assert!(
        left.pending,
        "pendingCreate is recorded at {}",
        point.name()
    );
    assert_eq!(left.recorded, None, "no ids recorded at {}", point.name());
    let (expect_dfns, expect_token) = match point {
        CrashPoint::CreatePendingSaved => (vec![], false),
        CrashPoint::CreateDfnsReturned => (vec![(true, false)], false),
        CrashPoint::CreateTokenWritten => (vec![(true, false)], true),
        _ => unreachable!("not a create point"),
    };
    assert_eq!(
        left.dfns,
        expect_dfns,
        "Dfns (active, archived) at {}",
        point.name()
    );
    assert_eq!(
        left.token_in_secret,
        expect_token,
        "token in the Secret at {}",
        point.name()
    );

    let (_, hits) = recover::<K>(&setup, &command, &log, point).await;
    let archived = at_crash_archived::<K>(&setup);
    // Only the create whose token was lost leaves an orphan to archive; a written token is adopted.
    let expect_archived = usize::from(point == CrashPoint::CreateDfnsReturned);
    assert_eq!(
        archived,
        expect_archived,
        "archived orphans after {}",
        point.name()
    );
    hits
}

fn at_crash_archived<K: CredentialResource>(setup: &Setup) -> usize {
    let state = setup.emulator.state();
    match K::DFNS_KIND {
        dfns_client::IdentityKind::ServiceAccount => {
            state.service_accounts.iter().filter(|s| s.archived).count()
        }
        dfns_client::IdentityKind::PersonalAccessToken => {
            state.pats.iter().filter(|p| p.archived).count()
        }
    }
}

/// A create whose answer Dfns lost leaves an orphan; the crash comes while retiring it.
async fn crash_retiring_an_orphan<K: CredentialResource>(prefix: &str) -> usize {
    let point = CrashPoint::RetireOrphanDeactivated;
    let (setup, command, log) = prepare(prefix).await;
    setup.emulator.set_faults(Faults {
        lost_response_ratio: 1.0,
        ..Faults::default()
    });
    apply::<K>(&setup).await;
    let mut operator = command.spawn(&setup, Some(point));
    // Lose the first change's answer (the create) only; the retry backs off for seconds.
    let deadline = tokio::time::Instant::now() + WAIT;
    while setup.emulator.request_counts().lost_responses == 0 {
        operator.assert_running();
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Dfns answer was lost"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    setup.emulator.set_faults(Faults::default());
    operator.assert_crashed_at_armed_point().await;
    let left = at_crash::<K>(&setup).await;
    assert_eq!(left.recorded, None, "the lost create was never recorded");
    assert_eq!(
        left.dfns,
        vec![(false, false)],
        "the orphan is deactivated, not archived"
    );

    recover::<K>(&setup, &command, &log, point).await;
    assert_eq!(at_crash_archived::<K>(&setup), 1, "the orphan is archived");
    command.marker_count(point)
}

/// A lost credential (its Secret deleted) is replaced; the crash comes while retiring the old one.
async fn crash_retiring_a_lost_credential<K: CredentialResource>(prefix: &str) -> usize {
    let point = CrashPoint::RetirePreviousDeactivated;
    let (setup, command, log) = prepare(prefix).await;
    apply::<K>(&setup).await;
    let mut operator = command.spawn(&setup, Some(point));
    let first = setup.wait_ready::<K>(NAME).await;
    let old = Recorded::of(&first)
        .status
        .recorded_id()
        .unwrap()
        .to_string();
    setup
        .secrets()
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete the Secret");
    operator.assert_crashed_at_armed_point().await;
    let status = get::<K>(&setup).await.credential_status().cloned().unwrap();
    assert_eq!(
        status.retiring.map(|r| r.id),
        Some(old.clone()),
        "status still names the lost credential for retirement"
    );
    assert!(
        !active_in_dfns(&setup).await.contains_key(&old),
        "the lost credential is deactivated"
    );

    let (obj, hits) = recover::<K>(&setup, &command, &log, point).await;
    let status = obj.credential_status().unwrap();
    assert_eq!(status.retiring, None, "retirement is recorded as done");
    assert_ne!(status.recorded_id(), Some(old.as_str()), "a new credential");
    hits
}

/// Deletion (deletionPolicy Deactivate): the crash comes after Dfns is done, before the finalizer.
async fn crash_during_cleanup<K: CredentialResource>(prefix: &str) -> usize {
    let point = CrashPoint::CleanupDfnsDone;
    let (setup, command, log) = prepare(prefix).await;
    apply::<K>(&setup).await;
    let mut operator = command.spawn(&setup, Some(point));
    let obj = setup.wait_ready::<K>(NAME).await;
    let id = Recorded::of(&obj).status.recorded_id().unwrap().to_string();
    setup
        .api::<K>()
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete the resource");
    operator.assert_crashed_at_armed_point().await;
    assert!(
        setup.api::<K>().get_opt(NAME).await.unwrap().is_some(),
        "the finalizer still holds the resource"
    );
    assert!(
        active_in_dfns(&setup).await.is_empty(),
        "Dfns is done: {id} is deactivated"
    );

    let mut operator = command.spawn(&setup, None);
    setup.wait_gone::<K>(NAME).await;
    operator.assert_running();
    operator.kill().await;
    assert!(
        setup.secrets().get_opt(NAME).await.unwrap().is_none(),
        "the Secret is deleted with the resource"
    );
    assert!(
        active_in_dfns(&setup).await.is_empty(),
        "no active credential is left"
    );
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
    command.marker_count(point)
}

/// Prints and asserts how often the point was hit: once per kind.
fn report(point: CrashPoint, hits: [usize; 2]) {
    let total: usize = hits.iter().sum();
    eprintln!(
        "crash point {}: hit {total} times (service account {}, PAT {})",
        point.name(),
        hits[0],
        hits[1]
    );
    assert_eq!(
        hits,
        [1, 1],
        "crash point {} hit once per kind",
        point.name()
    );
}

async fn both_kinds_crash_during_create(point: CrashPoint) {
    let (sa, pat) = tokio::join!(
        crash_during_create::<DfnsServiceAccount>("e2e-crashpt-sa", point),
        crash_during_create::<DfnsPersonalAccessToken>("e2e-crashpt-pat", point),
    );
    report(point, [sa, pat]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_pending_create_is_saved_resumes_the_create_with_the_same_key() {
    both_kinds_crash_during_create(CrashPoint::CreatePendingSaved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_token_is_written_retires_the_orphan_and_creates_again() {
    both_kinds_crash_during_create(CrashPoint::CreateDfnsReturned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_token_is_written_adopts_the_created_credential() {
    both_kinds_crash_during_create(CrashPoint::CreateTokenWritten).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_retiring_an_orphan_finishes_the_retirement_and_creates_again() {
    let (sa, pat) = tokio::join!(
        crash_retiring_an_orphan::<DfnsServiceAccount>("e2e-crashpt-sa"),
        crash_retiring_an_orphan::<DfnsPersonalAccessToken>("e2e-crashpt-pat"),
    );
    report(CrashPoint::RetireOrphanDeactivated, [sa, pat]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_retiring_a_lost_credential_finishes_the_retirement() {
    let (sa, pat) = tokio::join!(
        crash_retiring_a_lost_credential::<DfnsServiceAccount>("e2e-crashpt-sa"),
        crash_retiring_a_lost_credential::<DfnsPersonalAccessToken>("e2e-crashpt-pat"),
    );
    report(CrashPoint::RetirePreviousDeactivated, [sa, pat]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_dfns_cleanup_still_deletes_the_secret_and_releases_the_resource() {
    let (sa, pat) = tokio::join!(
        crash_during_cleanup::<DfnsServiceAccount>("e2e-crashpt-sa"),
        crash_during_cleanup::<DfnsPersonalAccessToken>("e2e-crashpt-pat"),
    );
    report(CrashPoint::CleanupDfnsDone, [sa, pat]);
}

/// Dfns shows a service account's or PAT's key as PEM, as a `SHA256:` fingerprint or as `""`
/// depending on the page and revision. A crash after Dfns created the credential but before its
/// token was written leaves an orphan that only its key can prove to be ours.
async fn crash_before_the_token_under<K: CredentialResource>(
    prefix: &str,
    form: PublicKeyForm,
) -> usize {
    let (setup, command, log) = prepare(prefix).await;
    let mut profile = setup.emulator.profile();
    assert!(
        !profile.external_id_in_responses,
        "no externalId to lean on"
    );
    profile.public_key_form = form;
    setup.emulator.set_profile(profile).unwrap();
    apply::<K>(&setup).await;
    let point = CrashPoint::CreateDfnsReturned;
    command
        .spawn(&setup, Some(point))
        .assert_crashed_at_armed_point()
        .await;
    assert_eq!(
        at_crash::<K>(&setup).await.dfns,
        vec![(true, false)],
        "one orphan, active"
    );
    let orphan = active_in_dfns(&setup)
        .await
        .into_keys()
        .next()
        .expect("the orphan is listed");

    if form != PublicKeyForm::Empty {
        // The key proves the orphan ours: retired, and the create repeated with a fresh key.
        let (_, hits) = recover::<K>(&setup, &command, &log, point).await;
        assert_eq!(
            at_crash_archived::<K>(&setup),
            1,
            "{form:?}: the orphan is archived"
        );
        return hits;
    }

    // Nothing proves whose it is: reported by id, neither retired nor used, nothing else created.
    let mut operator = command.spawn(&setup, None);
    let stalled = setup
        .wait_condition::<K>(NAME, "Stalled", "True", Some("OrphanNotProven"))
        .await;
    let message = serde_json::to_string(&stalled.credential_status()).unwrap();
    assert!(
        message.contains(&orphan),
        "the report names {orphan}: {message}"
    );
    let left = at_crash::<K>(&setup).await;
    assert_eq!(
        left.dfns,
        vec![(true, false)],
        "the orphan is left as it was, and alone"
    );
    assert_eq!(left.recorded, None);
    operator.assert_running();

    // A person deactivates it in Dfns and touches the resource: the create continues with a new
    // key, and the deactivated identity stays as the person left it.
    let admin = setup.admin_client();
    admin
        .deactivate(K::DFNS_KIND, &orphan)
        .await
        .expect("deactivate the orphan");
    setup
        .api::<K>()
        .patch(
            NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({ "metadata": { "annotations": { "example.com/checked": "orphan" } } }),
            ),
        )
        .await
        .expect("annotate the resource");
    let obj = setup.wait_ready::<K>(NAME).await;
    operator.assert_running();
    operator.kill().await;
    assert_ne!(
        obj.credential_status().and_then(|s| s.recorded_id()),
        Some(orphan.as_str())
    );
    // Show keys again so the one-working-credential check can compare them.
    setup
        .emulator
        .set_profile(dfns_emulator::Profile::default())
        .unwrap();
    assert_one_working_credential_each(&setup, &[Recorded::of(&obj)]).await;
    assert_eq!(
        at_crash_archived::<K>(&setup),
        0,
        "the unproven identity was never archived"
    );
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
    command.marker_count(point)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_is_retired_when_dfns_shows_its_key_and_reported_when_dfns_hides_it() {
    for (form, prefix) in [
        (PublicKeyForm::Pem, "e2e-keyform-pem"),
        (PublicKeyForm::Fingerprint, "e2e-keyform-fp"),
        (PublicKeyForm::Empty, "e2e-keyform-empty"),
    ] {
        let (sa_prefix, pat_prefix) = (format!("{prefix}-sa"), format!("{prefix}-pat"));
        let (sa, pat) = tokio::join!(
            crash_before_the_token_under::<DfnsServiceAccount>(&sa_prefix, form),
            crash_before_the_token_under::<DfnsPersonalAccessToken>(&pat_prefix, form),
        );
        eprintln!(
            "publicKey form {form:?}: crash point hit {} times",
            sa + pat
        );
        assert_eq!([sa, pat], [1, 1], "{form:?}: hit once per kind");
    }
}
