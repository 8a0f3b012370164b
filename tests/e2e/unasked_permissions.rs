//! A service account that Dfns creates with roles nobody asked for (older Dfns pages: it inherits
//! its creator's) is deactivated at once, its token never stored, and the resource stalls with
//! `UnaskedPermissions` (docs/architecture.md, "Connection rules") — also when the operator dies
//! between the create and the check.

use dfns_emulator::{Profile, ServiceAccountSnapshot};
use dfns_operator::api::DfnsServiceAccount;
use dfns_operator::controller::crash_point::CrashPoint;
use dfns_test_support::events::wait_event;
use dfns_test_support::operator::{Setup, ready_condition, secret_text};
use dfns_test_support::operator_process::OperatorCommand;
use serde_json::json;

/// A namespace whose emulator gives new service accounts their creator's roles, with a
/// connection as the bootstrap admin (who holds roles to inherit) and the resource `heir` on it.
async fn inheriting(prefix: &str) -> Setup {
    let setup = Setup::new(prefix).await;
    setup
        .emulator
        .set_profile(Profile {
            service_accounts_inherit_creator_permissions: true,
            ..Profile::strict()
        })
        .unwrap();
    setup.admin_connection("main", json!({})).await;
    setup
}

async fn apply_heir(setup: &Setup) {
    setup
        .apply::<DfnsServiceAccount>(
            "heir",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } }),
        )
        .await;
}

/// The resource is stalled naming the identity, nothing usable is in its Secret; returns what
/// Dfns holds.
async fn assert_refused(setup: &Setup) -> Vec<ServiceAccountSnapshot> {
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("heir", "Stalled", "True", Some("UnaskedPermissions"))
        .await;
    let message = ready_condition(sa.status.as_ref()).message;
    let status = sa.status.unwrap();
    assert!(
        status.service_account_id.is_none(),
        "never recorded as this resource's credential"
    );
    let refused = status
        .unasked_permissions
        .expect("status.unaskedPermissions");
    assert!(message.contains(&refused.id), "{message}");
    let secret = setup.secrets().get("heir").await.unwrap();
    assert!(
        secret_text(&secret, "DFNS_AUTH_TOKEN").is_none_or(|t| t.is_empty()),
        "no token in the Secret"
    );
    let note = wait_event(setup, "heir", "UnaskedPermissions").await;
    assert!(note.contains(&refused.id), "{note}");
    let state = setup.emulator.state().service_accounts;
    let created = state
        .iter()
        .find(|s| s.service_account_id == refused.id)
        .expect("in Dfns");
    assert!(!created.is_active, "deactivated at once");
    assert!(!created.permission_ids.is_empty(), "it did inherit");
    state
}

#[tokio::test]
async fn a_service_account_dfns_creates_with_its_creators_roles_is_retired_at_once_and_never_usable()
 {
    let mut setup = inheriting("e2e-unasked").await;
    setup.start_operator();
    apply_heir(&setup).await;
    let state = assert_refused(&setup).await;
    assert_eq!(state.len(), 1, "created once, not again");
    let metrics = setup.operator().metrics.encode();
    let line = "dfns_operator_credentials_deactivated_by_rule_total{kind=\"DfnsServiceAccount\",reason=\"UnaskedPermissions\"} 1";
    assert!(metrics.contains(line), "{line} in\n{metrics}");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_crash_between_the_create_and_the_check_leaves_no_usable_identity() {
    let setup = inheriting("e2e-unasked-crash").await;
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), log.to_path_buf());
    apply_heir(&setup).await;
    command
        .spawn(&setup, Some(CrashPoint::CreateDfnsReturned))
        .assert_crashed_at_armed_point()
        .await;
    // Created, with its creator's roles, and never checked: its token died with the process.
    let left = setup.emulator.state().service_accounts;
    assert_eq!(left.len(), 1);
    assert!(left[0].is_active && !left[0].permission_ids.is_empty());

    let mut operator = command.spawn(&setup, None);
    let state = assert_refused(&setup).await;
    operator.assert_running();
    operator.kill().await;
    // The crashed attempt's identity is retired as an orphan; the next one refused at once.
    let orphan = state
        .iter()
        .find(|s| s.service_account_id == left[0].service_account_id)
        .unwrap();
    assert!(
        !orphan.is_active && orphan.archived,
        "the orphan is retired"
    );
    assert!(state.iter().all(|s| !s.is_active), "nothing usable in Dfns");
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
}
