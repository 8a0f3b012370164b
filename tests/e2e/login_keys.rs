//! Connection login keys other than P-256: organization users whose Key credentials are Ed25519
//! and RSA-2048 keys made by OpenSSL (not by the operator's code), a `userLogin` connection for
//! each, and a service account created through each. The emulator checks every login and user
//! action signature with its own verifier (`dfns-emulator/src/crypto.rs`).

use dfns_client::types::permission::CreatePermissionRequest;
use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_test_support::dfns::requests_to;
use dfns_test_support::operator::{Setup, create_org_user_with_key};
use serde_json::json;
use tokio::process::Command;

/// A private key from `openssl genpkey` with `args`, and its public key (PEM both).
async fn openssl_key(args: &[&str]) -> (String, String) {
    let private = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .output()
        .await
        .expect("run openssl genpkey");
    assert!(private.status.success(), "openssl genpkey {args:?} failed");
    let mut pubout = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl pkey");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = pubout.stdin.take().unwrap();
        stdin.write_all(&private.stdout).await.unwrap();
    }
    let public = pubout
        .wait_with_output()
        .await
        .expect("openssl pkey output");
    assert!(public.status.success(), "openssl pkey -pubout failed");
    (
        String::from_utf8(private.stdout).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

#[tokio::test]
async fn ed25519_and_rsa_login_keys_made_by_openssl_sign_logins_and_creations() {
    let mut setup = Setup::new("e2e-login-keys").await;
    let creator = setup
        .admin_client()
        .create_permission(&CreatePermissionRequest {
            name: "creator".into(),
            operations: vec![
                "Auth:ServiceAccounts:Create".into(),
                "Auth:ServiceAccounts:Read".into(),
            ],
        })
        .await
        .expect("create role")
        .id;
    let keys = [
        ("ed25519", openssl_key(&["-algorithm", "ed25519"]).await),
        (
            "rsa",
            openssl_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]).await,
        ),
    ];
    for (name, (private, public)) in &keys {
        assert!(
            private.contains("BEGIN PRIVATE KEY"),
            "{name}: OpenSSL wrote PKCS#8"
        );
        let username = format!("{name}@example.com");
        let user =
            create_org_user_with_key(&setup, &username, public, std::slice::from_ref(&creator))
                .await;
        let secret = format!("{name}-login");
        setup
            .create_secret(
                &secret,
                &[
                    ("DFNS_CRED_ID", user["credId"].as_str().unwrap()),
                    ("DFNS_PRIVATE_KEY", private),
                ],
            )
            .await;
        setup
            .apply::<DfnsConnection>(
                name,
                json!({
                    "apiUrl": setup.emulator.api_url(),
                    "allowInsecureHttp": true,
                    "orgId": setup.emulator.bootstrap().org_id,
                    "auth": { "userLogin": { "username": username, "secretRef": { "name": secret } } },
                }),
            )
            .await;
    }
    setup.start_operator();
    for (name, _) in &keys {
        let connection = setup.wait_ready::<DfnsConnection>(name).await;
        let identity = connection.status.unwrap().identity.unwrap();
        assert_eq!(identity.kind, "User", "{name} logs in as its user");
        let user = setup
            .emulator
            .state()
            .users
            .into_iter()
            .find(|u| u.user_id == identity.user_id)
            .expect("the connection's user exists");
        assert_eq!(user.username, format!("{name}@example.com"));
        setup
            .apply::<DfnsServiceAccount>(
                &format!("made-by-{name}"),
                json!({ "connectionRef": { "kind": "DfnsConnection", "name": name } }),
            )
            .await;
    }
    for (name, _) in &keys {
        let sa = setup
            .wait_ready::<DfnsServiceAccount>(&format!("made-by-{name}"))
            .await;
        let id = sa.status.unwrap().service_account_id.unwrap();
        assert!(
            setup
                .emulator
                .state()
                .service_accounts
                .iter()
                .any(|s| s.service_account_id == id && s.is_active),
            "{name}: the service account exists in Dfns"
        );
    }
    // Each creation's signed user action was accepted the first time.
    assert_eq!(
        requests_to(&setup.emulator, "POST /auth/service-accounts"),
        2
    );
    setup.stop_operator().await;
    // The login Secrets' keys are among the needles, as every DFNS_PRIVATE_KEY in the namespace.
    setup.assert_no_leaks().await;
}
