//! `dfns-operator renew`, run as the built binary against the real control plane: it sets the
//! renewal (or key rotation) annotation to a new value on every call, and fails clearly on a
//! resource that does not exist.

use std::process::Output;

use dfns_operator::api::{
    CredentialSpec, DfnsPersonalAccessToken, DfnsPersonalAccessTokenSpec, DfnsServiceAccount,
    DfnsServiceAccountSpec, RENEW_ANNOTATION, ROTATE_KEY_ANNOTATION,
};
use dfns_test_support::{ControlPlane, TestNamespace};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Runs `dfns-operator renew` with the control plane's kubeconfig and `args`.
async fn renew(cp: &ControlPlane, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dfns-operator"))
        .arg("renew")
        .args(args)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .output()
        .await
        .expect("run dfns-operator renew")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

async fn annotation<K>(api: &Api<K>, name: &str, key: &str) -> Option<String>
where
    K: Resource + Clone + std::fmt::Debug + DeserializeOwned,
{
    api.get(name).await.unwrap().annotations().get(key).cloned()
}

async fn setup(prefix: &str) -> (&'static ControlPlane, TestNamespace) {
    dfns_client::install_crypto_provider();
    let cp = ControlPlane::shared();
    cp.apply_crds().await.expect("CRDs installed");
    let ns = TestNamespace::new(cp, prefix).await;
    (cp, ns)
}

#[tokio::test]
async fn renew_sets_a_new_renew_value_on_every_call_and_key_sets_rotate_key() {
    let (cp, ns) = setup("cli-renew").await;
    let api: Api<DfnsServiceAccount> = Api::namespaced(cp.client(), ns.name());
    let resource = DfnsServiceAccount::new("payments", DfnsServiceAccountSpec::default());
    api.create(&PostParams::default(), &resource).await.unwrap();
    let reference = format!("{}/payments", ns.name());

    let mut seen = Vec::new();
    for _ in 0..3 {
        let output = renew(cp, &[&reference]).await;
        assert!(output.status.success(), "{}", text(&output));
        let value = annotation(&api, "payments", RENEW_ANNOTATION)
            .await
            .expect("dfns.io/renew is set");
        assert!(
            text(&output).contains(&format!("{RENEW_ANNOTATION}={value}")),
            "prints what it set: {}",
            text(&output)
        );
        value
            .parse::<jiff::Timestamp>()
            .expect("the value is an RFC 3339 time");
        assert!(!seen.contains(&value), "{value} was set before: {seen:?}");
        seen.push(value);
    }
    assert_eq!(
        annotation(&api, "payments", ROTATE_KEY_ANNOTATION).await,
        None,
        "a renewal asks for no key rotation"
    );

    let output = renew(cp, &[&reference, "--key"]).await;
    assert!(output.status.success(), "{}", text(&output));
    let rotate = annotation(&api, "payments", ROTATE_KEY_ANNOTATION)
        .await
        .expect("dfns.io/rotate-key is set");
    assert!(text(&output).contains(&format!("{ROTATE_KEY_ANNOTATION}={rotate}")));
    assert_eq!(
        annotation(&api, "payments", RENEW_ANNOTATION)
            .await
            .as_ref(),
        seen.last(),
        "--key leaves dfns.io/renew as it was"
    );
}

#[tokio::test]
async fn renew_kind_picks_personal_access_tokens_by_short_name() {
    let (cp, ns) = setup("cli-renew-pat").await;
    let api: Api<DfnsPersonalAccessToken> = Api::namespaced(cp.client(), ns.name());
    let resource = DfnsPersonalAccessToken::new(
        "ci-token",
        DfnsPersonalAccessTokenSpec {
            credential: CredentialSpec::default(),
            seconds_valid: None,
        },
    );
    api.create(&PostParams::default(), &resource).await.unwrap();
    let reference = format!("{}/ci-token", ns.name());

    // As a service account (the default kind) it does not exist.
    let wrong_kind = renew(cp, &[&reference]).await;
    assert!(!wrong_kind.status.success(), "{}", text(&wrong_kind));

    let output = renew(cp, &[&reference, "--kind", "dfnspat"]).await;
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        annotation(&api, "ci-token", RENEW_ANNOTATION)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn renew_of_an_unknown_resource_fails_with_a_clear_error() {
    let (cp, ns) = setup("cli-renew-missing").await;
    let output = renew(cp, &[&format!("{}/nobody", ns.name())]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(
        message.contains("DfnsServiceAccount")
            && message.contains(&format!("{}/nobody", ns.name()))
            && message.contains("not found"),
        "{message}"
    );

    let output = renew(cp, &["no-namespace"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("NAMESPACE/NAME"),
        "{}",
        text(&output)
    );
}
