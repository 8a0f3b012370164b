//! No token or private key ever appears in Debug, Display, error messages or logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::stub::{Scripted, Stub, jwt, stub_client};
use dfns_client::keys::PrivateKey;
use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, DfnsError, IdentityKind, KeySigner, NewIdentity,
    SecretString, generate_p256,
};
use dfns_test_support::dfns::*;
use serde_json::json;

/// Pieces of a secret that must never show: the whole value and every long line of it (a PEM
/// body line, a JWT segment), so partial leaks are caught too.
fn fragments(secret: &str) -> Vec<String> {
    let mut pieces = vec![secret.trim().to_owned()];
    for line in secret.lines() {
        if line.len() >= 16 && !line.starts_with("-----") {
            pieces.push(line.to_owned());
        }
    }
    for segment in secret.split('.').skip(1) {
        if segment.len() >= 16 {
            pieces.push(segment.to_owned());
        }
    }
    pieces
}

fn assert_clean(label: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        for fragment in fragments(secret) {
            assert!(
                !text.contains(&fragment),
                "{label} leaks a secret fragment: {text}"
            );
        }
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_debug_display_error_or_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        // Every target at its most verbose: the client, the HTTP and TLS stack under it, and
        // anything else a program embedding the client would print alongside.
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emulator = start_emulator().await;
    let admin_key = emulator.bootstrap().admin.private_key.clone();
    let admin_config_value = admin_config(&emulator);
    let mut outputs: Vec<(String, String)> =
        vec![("admin ClientConfig", format!("{admin_config_value:?}"))]
            .into_iter()
            .map(|(label, text)| (label.to_owned(), text))
            .collect();
    let admin = DfnsClient::new(admin_config_value).unwrap();
    outputs.push(("admin DfnsClient".into(), format!("{admin:?}")));

    // Mint both kinds: their tokens and keys are the secrets to look for.
    let mut secrets: Vec<String> = vec![admin_key.clone()];
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        let pair = generate_p256().unwrap();
        outputs.push((format!("{kind} GeneratedKeyPair"), format!("{pair:?}")));
        secrets.push(pair.private_key_pem.expose().to_owned());
        let created = admin
            .create(
                kind,
                &NewIdentity {
                    name: format!("redaction-{kind:?}"),
                    public_key_pem: pair.public_key_pem.clone(),
                    ..NewIdentity::default()
                },
            )
            .await
            .unwrap();
        secrets.push(created.access_token.expose().to_owned());
        outputs.push((format!("{kind} CreatedIdentity"), format!("{created:?}")));
        outputs.push((
            format!("{kind} token Display"),
            format!("{}", created.access_token),
        ));

        let signer = KeySigner::from_pem(
            created.identity.cred_id.clone().unwrap(),
            pair.private_key_pem.expose(),
        )
        .unwrap();
        outputs.push((format!("{kind} KeySigner"), format!("{signer:?}")));
        outputs.push((
            format!("{kind} PrivateKey"),
            format!(
                "{:?}",
                PrivateKey::from_pem(pair.private_key_pem.expose()).unwrap()
            ),
        ));
        let config = config_for(
            &emulator,
            AuthMode::Token(created.access_token.clone()),
            signer,
        );
        outputs.push((format!("{kind} token ClientConfig"), format!("{config:?}")));
        let client = DfnsClient::new(config).unwrap();
        outputs.push((format!("{kind} token DfnsClient"), format!("{client:?}")));
        outputs.push((
            format!("{kind} AuthMode"),
            format!("{:?}", AuthMode::Token(created.access_token.clone())),
        ));
        client.verify_signing().await.unwrap();
        outputs.push((
            format!("{kind} identity"),
            format!("{:?}", client.identity().await.unwrap()),
        ));
    }

    // Errors of every kind, Display and Debug.
    let mut errors: Vec<DfnsError> = Vec::new();
    let leaked_token = secrets[1].clone();
    let forged = jwt(json!({"sub": "forged-token-padding-long"}));
    secrets.push(forged.clone());
    let wrong_key = KeySigner::from_pem("Y2k", &admin_key).unwrap();
    let bad = DfnsClient::new(config_for(
        &emulator,
        AuthMode::Token(SecretString::new(forged)),
        wrong_key,
    ))
    .unwrap();
    errors.push(bad.list_pats().await.unwrap_err()); // 401
    errors.push(bad.verify_signing().await.unwrap_err());
    let mut wrong_cred = admin_config(&emulator);
    wrong_cred.signer = KeySigner::from_pem("Y2ktbm9wZQ", &admin_key).unwrap();
    errors.push(
        DfnsClient::new(wrong_cred)
            .unwrap()
            .identity()
            .await
            .unwrap_err(),
    ); // CredentialNotAllowed
    errors.push(
        admin
            .get(IdentityKind::ServiceAccount, "us-missing")
            .await
            .unwrap_err(),
    ); // 404
    errors.push(
        admin
            .create(
                IdentityKind::PersonalAccessToken,
                &NewIdentity {
                    name: "x".into(),
                    public_key_pem: admin_key.clone(),
                    ..NewIdentity::default()
                },
            )
            .await
            .unwrap_err(),
    ); // 400 with a private key sent as a "public key"
    // A server that echoes the bearer token and a key back in its error message.
    let echo = Stub::start(vec![Scripted::new(
        401,
        json!({"error": {"message": format!("token {leaked_token} rejected; key {admin_key}")}}),
    )])
    .await;
    errors.push(
        stub_client(
            &echo,
            AuthMode::Token(SecretString::new(leaked_token.clone())),
            fast_retries(1),
        )
        .list_pats()
        .await
        .unwrap_err(),
    );
    errors.push(
        DfnsClient::new(ClientConfig::new(
            "http://127.0.0.1:9",
            AuthMode::Token(SecretString::new(leaked_token.clone())),
            KeySigner::from_pem("c", &admin_key).unwrap(),
        ))
        .unwrap_err(),
    );
    errors.push(
        PrivateKey::from_pem(&admin_key.replace("MIG", "XXX"))
            .map_err(DfnsError::from)
            .unwrap_err(),
    );
    for error in &errors {
        outputs.push((
            format!("error {:?}", error.category()),
            format!("{error} | {error:?}"),
        ));
    }
    emulator.shutdown().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Dfns request"),
        "the client did log (TRACE capture works)"
    );
    outputs.push(("tracing logs".into(), logs));
    for (label, text) in &outputs {
        assert_clean(label, text, &secrets);
    }
    assert!(outputs.len() > 25, "covered {} outputs", outputs.len());
}
