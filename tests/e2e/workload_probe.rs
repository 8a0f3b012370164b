//! The workload the renewal tests watch (`RenewalProbe`: the official SDK re-reading a mounted
//! Secret every 2 s, one authenticated read and one signed user action a round) tells a working
//! credential from a broken one: it records only successes while the operator's service account
//! works, and failures once that account is deactivated in Dfns.

use dfns_client::IdentityKind;
use dfns_operator::api::DfnsServiceAccount;
use dfns_test_support::operator::{Setup, secret_text};
use dfns_test_support::renewal_probe::RenewalProbe;
use serde_json::json;

#[tokio::test]
async fn the_probe_records_successes_with_a_working_credential_and_failures_once_it_is_deactivated()
{
    let mut setup = Setup::new("e2e-probe").await;
    // The probe reads its own record and writes its own name back: a role with just that.
    let role = setup
        .running_with_role(
            "probe-self",
            &["Auth:ServiceAccounts:Read", "Auth:ServiceAccounts:Update"],
        )
        .await;
    setup
        .apply::<DfnsServiceAccount>(
            "payments",
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "permissionId": role,
            }),
        )
        .await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("payments").await;
    let id = sa.status.unwrap().service_account_id.unwrap();
    let secret = setup.secrets().get("payments").await.unwrap();

    let mut probe = RenewalProbe::start(setup.kube.clone(), setup.namespace(), "payments").await;
    let working = probe
        .wait_for("two successful rounds", |r| {
            r.reads_ok >= 2 && r.signs_ok >= 2
        })
        .await;
    assert_eq!(
        working.failures,
        Vec::<String>::new(),
        "a working credential fails no call"
    );

    // Security staff deactivate the service account in the Dfns dashboard.
    setup
        .admin_client()
        .deactivate(IdentityKind::ServiceAccount, &id)
        .await
        .unwrap();
    probe
        .wait_for("a failed read and a failed signature", |r| {
            r.reads_failed >= 1 && r.signs_failed >= 1
        })
        .await;
    let report = probe.stop().await;
    assert!(
        report
            .failures
            .iter()
            .any(|line| line.contains(r#""status":401"#)),
        "the deactivated token is refused with 401: {:?}",
        report.failures
    );
    let token = secret_text(&secret, "DFNS_AUTH_TOKEN").unwrap();
    let key = secret_text(&secret, "DFNS_PRIVATE_KEY").unwrap();
    let key_body = key
        .lines()
        .find(|line| line.len() >= 16 && !line.starts_with("-----"))
        .unwrap();
    for line in &report.failures {
        assert!(
            !line.contains(&token) && !line.contains(key_body),
            "the probe printed a secret"
        );
    }

    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
