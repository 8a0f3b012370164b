//! `dfns-operator renew NAMESPACE/NAME`: ask the operator to renew a credential's token now (or,
//! with `--key`, to rotate its key), like `cmctl renew`. It only sets an annotation to a value
//! never used before; the operator acts on each new value once (status `renewRequested` /
//! `keyRotationRequested` record the last one it acted on).
use std::path::PathBuf;

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::{
    DfnsPersonalAccessToken, DfnsServiceAccount, RENEW_ANNOTATION, ROTATE_KEY_ANNOTATION,
};

/// Exit code when the annotation could not be set (no such resource, no access, no cluster).
const EXIT_FAILED: i32 = 1;
/// Exit code when the arguments are unusable.
const EXIT_USAGE: i32 = 2;

#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// The credential resource to renew.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub resource: String,
    /// Rotate the signing key (annotation dfns.io/rotate-key) instead of renewing the token
    /// (dfns.io/renew).
    #[arg(long)]
    pub key: bool,
    /// Kind of the resource.
    #[arg(long, value_enum, default_value = "DfnsServiceAccount")]
    pub kind: CredentialKind,
    /// Kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CredentialKind {
    #[value(
        name = "DfnsServiceAccount",
        alias = "dfnssa",
        alias = "dfnsserviceaccount"
    )]
    ServiceAccount,
    #[value(
        name = "DfnsPersonalAccessToken",
        alias = "dfnspat",
        alias = "dfnspersonalaccesstoken"
    )]
    PersonalAccessToken,
}

pub async fn run(args: RenewArgs) -> i32 {
    match renew(&args).await {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err((code, message)) => {
            eprintln!("renew failed: {message}");
            code
        }
    }
}

/// The annotation `--key` chooses.
fn annotation(key: bool) -> &'static str {
    if key {
        ROTATE_KEY_ANNOTATION
    } else {
        RENEW_ANNOTATION
    }
}

/// `NAMESPACE/NAME`, both parts non-empty.
fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    reference.split_once('/').filter(|(namespace, name)| {
        !namespace.is_empty() && !name.is_empty() && !name.contains('/')
    })
}

/// The current time in RFC 3339 with nanoseconds: a value no earlier call set, and one a
/// person reading the annotation understands.
fn request_value(now: Timestamp) -> String {
    DateTimePrinter::new()
        .precision(Some(9))
        .timestamp_to_string(&now)
}

async fn renew(args: &RenewArgs) -> Result<String, (i32, String)> {
    let (namespace, name) = parse_reference(&args.resource).ok_or_else(|| {
        (
            EXIT_USAGE,
            format!("`{}` is not NAMESPACE/NAME", args.resource),
        )
    })?;
    dfns_client::install_crypto_provider();
    let config = super::kubeconfig::load(args.kubeconfig.as_deref())
        .await
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    let client = kube::Client::try_from(config)
        .map_err(|e| (EXIT_USAGE, super::Error::KubeClient(e).to_string()))?;
    let annotation = annotation(args.key);
    let value = match args.kind {
        CredentialKind::ServiceAccount => {
            set::<DfnsServiceAccount>(client, namespace, name, annotation).await?
        }
        CredentialKind::PersonalAccessToken => {
            set::<DfnsPersonalAccessToken>(client, namespace, name, annotation).await?
        }
    };
    let what = if args.key {
        "the operator rotates the key once"
    } else {
        "the operator renews the token once"
    };
    Ok(format!(
        "{} {namespace}/{name}: set {annotation}={value} ({what})",
        kind_name(args.kind)
    ))
}

fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ServiceAccount => "DfnsServiceAccount",
        CredentialKind::PersonalAccessToken => "DfnsPersonalAccessToken",
    }
}

/// Sets `annotation` on the resource to a fresh value and returns it. A merge patch, so other
/// annotations stay; the resource is read first so that a missing one is reported as such
/// (a patch of a missing object fails too, but a read names the cause more plainly) and so
/// that the new value differs from the one there even if the clock stood still.
async fn set<K>(
    client: kube::Client,
    namespace: &str,
    name: &str,
    annotation: &str,
) -> Result<String, (i32, String)>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize,
{
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(client, namespace);
    let failed = |error: kube::Error| {
        let reason = match &error {
            kube::Error::Api(status) if status.code == 404 => format!(
                "{kind} {namespace}/{name} not found (is it a {kind}? pick the kind with --kind)"
            ),
            kube::Error::Api(status) => format!(
                "{kind} {namespace}/{name}: HTTP {}: {}",
                status.code, status.message
            ),
            other => format!("{kind} {namespace}/{name}: {other}"),
        };
        (EXIT_FAILED, reason)
    };
    let current = api.get(name).await.map_err(failed)?;
    let previous = current.annotations().get(annotation).cloned();
    let mut value = request_value(Timestamp::now());
    while previous.as_deref() == Some(value.as_str()) {
        value = request_value(Timestamp::now());
    }
    let patch = json!({ "metadata": { "annotations": { annotation: value } } });
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge::<serde_json::Value>(patch),
    )
    .await
    .map_err(failed)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn references_need_a_namespace_and_a_name() {
        assert_eq!(parse_reference("payments/bot"), Some(("payments", "bot")));
        for bad in ["bot", "/bot", "payments/", "a/b/c", ""] {
            assert_eq!(parse_reference(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_values_are_rfc3339_with_nanoseconds() {
        let at: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        assert_eq!(request_value(at), "2026-03-01T10:00:00.000000000Z");
        let later = at + jiff::SignedDuration::from_nanos(1);
        assert_eq!(request_value(later), "2026-03-01T10:00:00.000000001Z");
        assert_eq!(request_value(later).parse::<Timestamp>().unwrap(), later);
    }

    #[test]
    fn key_picks_the_rotate_key_annotation() {
        assert_eq!(annotation(false), "dfns.io/renew");
        assert_eq!(annotation(true), "dfns.io/rotate-key");
    }

    fn parse(args: &[&str]) -> RenewArgs {
        let cli = crate::cli::Cli::try_parse_from(
            ["dfns-operator", "renew"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .expect("parses");
        match cli.command {
            crate::cli::Command::Renew(args) => args,
            other => panic!("not renew: {other:?}"),
        }
    }

    #[test]
    fn kind_defaults_to_service_account_and_takes_kinds_and_short_names() {
        assert_eq!(parse(&["a/b"]).kind, CredentialKind::ServiceAccount);
        for (flag, kind) in [
            ("dfnssa", CredentialKind::ServiceAccount),
            ("DfnsServiceAccount", CredentialKind::ServiceAccount),
            ("dfnspat", CredentialKind::PersonalAccessToken),
            (
                "DfnsPersonalAccessToken",
                CredentialKind::PersonalAccessToken,
            ),
        ] {
            assert_eq!(parse(&["a/b", "--kind", flag]).kind, kind, "{flag}");
        }
        assert!(
            crate::cli::Cli::try_parse_from(["dfns-operator", "renew", "a/b", "--kind", "pod"])
                .is_err()
        );
    }
}
