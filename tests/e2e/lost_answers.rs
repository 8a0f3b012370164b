//! A Dfns write whose answer is lost (the change is applied, the reply never arrives) must not
//! leave the operator working from the shared listing's stale copy: the next reconcile reads the
//! identity from Dfns, sees the change took effect and records it, instead of sending the write
//! again and reporting Dfns' 409 as an invalid spec until the next listing refresh.

use std::time::Duration;

use dfns_emulator::Faults;
use dfns_operator::api::DfnsServiceAccount;
use dfns_test_support::operator::{Setup, WAIT};
use serde_json::json;

#[tokio::test]
async fn an_assignment_whose_answer_was_lost_is_recorded_not_resent() {
    let mut setup = Setup::new("e2e-lost-answer").await;
    let first = setup
        .create_role("first", &["Auth:ServiceAccounts:Read"])
        .await;
    let second = setup
        .create_role("second", &["Auth:ServiceAccounts:Read"])
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [first, second] }))
        .await;
    // A listing that stays fresh for ten minutes: only a dropped entry makes it read again.
    setup.start_operator();
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": conn, "permissionId": first }),
        )
        .await;
    setup.wait_ready::<DfnsServiceAccount>("app").await;

    // Every change's answer is lost until the assignment of `second` has been applied.
    setup.emulator.set_faults(Faults {
        lost_response_ratio: 1.0,
        ..Faults::default()
    });
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": conn, "permissionId": second }),
        )
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while setup.emulator.request_counts().lost_responses == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no answer was lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    setup.emulator.set_faults(Faults::default());

    // Ready with `second` recorded, and never an InvalidSpec on the way.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sa = setup.api::<DfnsServiceAccount>().get("app").await.unwrap();
        let status = sa.status.clone().unwrap_or_default();
        if let Some(stalled) = status.conditions.iter().find(|c| c.type_ == "Stalled") {
            assert_ne!(
                stalled.reason, "InvalidSpec",
                "the lost write was sent again: {}",
                stalled.message
            );
        }
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .is_some_and(|c| c.status == "True" && c.observed_generation == sa.metadata.generation);
        if ready && status.assigned_permission_id.as_deref() == Some(second.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not Ready with {second}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let assignments_of_second = setup
        .emulator
        .state()
        .permissions
        .iter()
        .find(|p| p.id == second)
        .map(|p| p.assigned_to.len());
    assert_eq!(assignments_of_second, Some(1), "assigned exactly once");

    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
