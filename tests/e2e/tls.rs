//! A connection to Dfns over HTTPS signed by a private CA: with the CA in `caBundle` it is Ready;
//! without it, or with another CA, its condition says the server's certificate is not trusted.

use dfns_emulator::EmulatorConfig;
use dfns_operator::api::DfnsConnection;
use dfns_operator::controller::ControllerConfig;
use dfns_operator::controller::allowed_hosts::AllowedHosts;
use dfns_test_support::dfns::start_emulator_with;
use dfns_test_support::operator::{Setup, condition};
use serde_json::{Value, json};

#[tokio::test]
async fn a_tls_connection_is_ready_with_its_ca_bundle_and_reports_an_untrusted_certificate_otherwise()
 {
    let mut setup = Setup::new("e2e-tls").await;
    let tls = EmulatorConfig {
        tls: true,
        ..EmulatorConfig::default()
    };
    let https = start_emulator_with(tls.clone()).await;
    // Another emulator's CA: a valid CA, but not the one that signed this server's certificate.
    let stranger = start_emulator_with(tls).await;
    assert!(
        https.api_url().starts_with("https://"),
        "{}",
        https.api_url()
    );
    let ca = https
        .ca_cert_pem()
        .expect("TLS emulator has a CA")
        .to_owned();
    let wrong_ca = stranger.ca_cert_pem().expect("a CA").to_owned();

    let admin = &https.bootstrap().admin;
    setup
        .create_secret(
            "https-login",
            &[
                ("DFNS_CRED_ID", &admin.cred_id),
                ("DFNS_PRIVATE_KEY", &admin.private_key),
            ],
        )
        .await;
    let spec = |ca_bundle: Option<&str>| {
        let mut spec = json!({
            "apiUrl": https.api_url(),
            "orgId": https.bootstrap().org_id,
            "auth": { "userLogin": { "username": admin.username, "secretRef": { "name": "https-login" } } },
        });
        if let Some(ca) = ca_bundle {
            spec["caBundle"] = Value::from(ca);
        }
        spec
    };
    setup
        .apply::<DfnsConnection>("trusted", spec(Some(&ca)))
        .await;
    setup.apply::<DfnsConnection>("no-ca", spec(None)).await;
    setup
        .apply::<DfnsConnection>("wrong-ca", spec(Some(&wrong_ca)))
        .await;
    // The HTTPS emulator is another server: the operator must be told it may talk to it.
    let https_host = https
        .api_url()
        .trim_start_matches("https://")
        .trim_end_matches('/');
    setup.start_operator_with(ControllerConfig {
        allowed_api_hosts: AllowedHosts::parse(&format!(
            "{},{https_host}",
            setup.allowed_api_hosts()
        ))
        .expect("valid host patterns"),
        ..setup.config()
    });

    let trusted = setup.wait_ready::<DfnsConnection>("trusted").await;
    assert_eq!(
        trusted.status.unwrap().identity.unwrap().user_id,
        admin.user_id
    );
    for name in ["no-ca", "wrong-ca"] {
        let connection = setup
            .wait_condition::<DfnsConnection>(name, "Ready", "False", None)
            .await;
        let status = connection.status.unwrap();
        let ready = condition(&status.conditions, "Ready");
        assert!(
            ready.message.to_lowercase().contains("certificate"),
            "{name}: the condition names the certificate problem: {} ({})",
            ready.message,
            ready.reason
        );
        assert!(status.identity.is_none(), "{name}: no identity was proven");
    }
    setup.stop_operator().await;
    setup
        .leak_check()
        .with_emulator(&https)
        .with_secret("the HTTPS emulator admin's key", &admin.private_key)
        .assert_clean()
        .await;
}
