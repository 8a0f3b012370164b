//! What must hold after any crash, for every credential resource: Dfns has exactly one active
//! credential for it, the one its status records, registered with the key its Secret holds, and
//! the Secret's token and key work; and Dfns has no other active credential (no orphan).
//! Matching is by recorded id and key fingerprint only, never by `externalId` in Dfns answers.

use std::collections::BTreeMap;

use dfns_client::keys::PrivateKey;
use dfns_client::{AuthMode, DfnsClient, Identity, IdentityKind, KeySigner, SecretString};
use dfns_operator::api::CredentialStatus;
use dfns_operator::controller::credential::CredentialResource;
use kube::ResourceExt;

use crate::operator::{Setup, secret_text};

/// One resource as the test read it after it became Ready.
pub struct Recorded {
    pub kind: IdentityKind,
    /// For messages: `DfnsServiceAccount/sa-1`.
    pub what: String,
    pub status: CredentialStatus,
}

impl Recorded {
    pub fn of<K: CredentialResource>(obj: &K) -> Self {
        let what = format!("{}/{}", K::kind(&()), obj.name_any());
        Self {
            kind: K::DFNS_KIND,
            status: obj
                .credential_status()
                .cloned()
                .unwrap_or_else(|| panic!("{what} has no status")),
            what,
        }
    }
}

/// The active credentials in the setup's Dfns, of both kinds, by id.
pub async fn active_in_dfns(setup: &Setup) -> BTreeMap<String, Identity> {
    let admin = setup.admin_client();
    let mut active = BTreeMap::new();
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        for identity in admin.list(kind).await.expect("list credentials in Dfns") {
            if identity.is_active {
                active.insert(identity.id.clone(), identity);
            }
        }
    }
    active
}

/// Asserts, for `resources` (all the setup's credential resources), that each holds the only
/// active credential registered with its key, that it is the recorded one and that its Secret's
/// token and key work; and that Dfns holds no other active credential.
pub async fn assert_one_working_credential_each(setup: &Setup, resources: &[Recorded]) {
    let active = active_in_dfns(setup).await;
    for resource in resources {
        let what = &resource.what;
        let status = &resource.status;
        let id = status
            .recorded_id()
            .unwrap_or_else(|| panic!("{what}: no recorded id"));
        let secret_name = status.secret_name.as_deref().expect("status.secretName");
        let secret = setup.secrets().get(secret_name).await.expect("the Secret");
        let key = secret_text(&secret, "DFNS_PRIVATE_KEY").expect("DFNS_PRIVATE_KEY");
        let fingerprint = PrivateKey::from_pem(&key)
            .and_then(|k| k.public_key_sha256())
            .expect("the Secret's key parses");
        assert_eq!(
            status.public_key_sha256.as_deref(),
            Some(fingerprint.as_str()),
            "{what}: status records the Secret's key"
        );
        let with_key: Vec<&str> = active
            .values()
            .filter(|i| i.public_key_sha256().as_deref() == Some(fingerprint.as_str()))
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(
            with_key,
            vec![id],
            "{what}: the active credentials in Dfns registered with the Secret's key"
        );
        assert_eq!(active[id].kind, resource.kind, "{what}: kind of {id}");
        assert_token_and_key_work(setup, what, &secret, status).await;
    }
    let recorded: Vec<&str> = resources
        .iter()
        .filter_map(|r| r.status.recorded_id())
        .collect();
    let orphans: Vec<&String> = active
        .keys()
        .filter(|id| !recorded.contains(&id.as_str()))
        .collect();
    assert!(
        orphans.is_empty(),
        "active credentials in Dfns that no resource records: {orphans:?}"
    );
}

/// The Secret's token authenticates and its key signs, as a workload mounting it would use them.
async fn assert_token_and_key_work(
    setup: &Setup,
    what: &str,
    secret: &k8s_openapi::api::core::v1::Secret,
    status: &CredentialStatus,
) {
    let token = secret_text(secret, "DFNS_AUTH_TOKEN").expect("DFNS_AUTH_TOKEN");
    let key = secret_text(secret, "DFNS_PRIVATE_KEY").expect("DFNS_PRIVATE_KEY");
    let cred_id = secret_text(secret, "DFNS_CRED_ID").expect("DFNS_CRED_ID");
    assert_eq!(
        status.credential_id.as_deref(),
        Some(cred_id.as_str()),
        "{what}: the Secret's credential id is the recorded one"
    );
    let signer = KeySigner::from_pem(cred_id, &key).expect("the Secret's key");
    let config = crate::dfns::config_for(
        &setup.emulator,
        AuthMode::Token(SecretString::new(token)),
        signer,
    );
    let client = DfnsClient::new(config).expect("client");
    client
        .identity()
        .await
        .unwrap_or_else(|e| panic!("{what}: token unusable: {e}"));
    client
        .verify_signing()
        .await
        .unwrap_or_else(|e| panic!("{what}: key cannot sign: {e}"));
}
