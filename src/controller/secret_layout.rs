//! The Secret a credential lives in (docs/architecture.md, "The Secret"): its keys, labels and annotations, how to tell
//! whether this resource owns it, and what it holds — never logging the values.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::credential::observed::{SecretMaterial, SecretState};
use dfns_client::SecretString;
use dfns_client::keys::{GeneratedKeyPair, PrivateKey};

/// Keys named so that `envFrom: secretRef` feeds the official Dfns SDKs directly.
pub const API_URL: &str = "DFNS_API_URL";
pub const AUTH_TOKEN: &str = "DFNS_AUTH_TOKEN";
pub const CRED_ID: &str = "DFNS_CRED_ID";
pub const PRIVATE_KEY: &str = "DFNS_PRIVATE_KEY";
pub const PUBLIC_KEY: &str = "DFNS_PUBLIC_KEY";
pub const ORG_ID: &str = "DFNS_ORG_ID";

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "dfns-operator";
/// Dfns id of the credential (`us-…` or `to-…`).
pub const ID_ANNOTATION: &str = "dfns.io/id";
pub const CREDENTIAL_ID_ANNOTATION: &str = "dfns.io/credential-id";
pub const FINGERPRINT_ANNOTATION: &str = "dfns.io/public-key-sha256";

/// What the operator wants the Secret's metadata and connection data to be.
#[derive(Clone, Debug)]
pub struct SecretLayout {
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub api_url: String,
    pub org_id: Option<String>,
}

/// Whether `secret` is controlled by the resource with this uid.
pub fn is_owned_by(secret: &Secret, uid: &str) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// What the plan needs to know about the Secret.
pub fn classify(secret: Option<&Secret>, owner_uid: &str) -> SecretState {
    match secret {
        None => SecretState::Missing,
        Some(s) if !is_owned_by(s, owner_uid) => SecretState::Foreign,
        Some(s) => SecretState::Owned(material(s)),
    }
}

fn material(secret: &Secret) -> SecretMaterial {
    let key_fingerprint = text(secret, PRIVATE_KEY)
        .ok()
        .and_then(|pem| PrivateKey::from_pem(pem).ok())
        .and_then(|key| key.public_key_sha256().ok());
    let token = text(secret, AUTH_TOKEN)
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let claims = token.and_then(|t| dfns_client::jwt::decode_claims(t).ok());
    SecretMaterial {
        key_fingerprint,
        has_token: token.is_some(),
        token_expires_at: claims.as_ref().and_then(|c| c.expires_at),
        token_issued_at: claims.as_ref().and_then(|c| c.issued_at),
        credential_id: text(secret, CRED_ID)
            .ok()
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    }
}

/// Why a Secret's key could not be read as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextError {
    Missing,
    NotText,
}

/// The value of `key` in any Secret, as text.
pub fn text<'s>(secret: &'s Secret, key: &str) -> Result<&'s str, TextError> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or(TextError::Missing)?;
    std::str::from_utf8(&bytes.0).map_err(|_| TextError::NotText)
}

/// The text under `key` of a Secret that may not exist.
pub fn text_of<'s>(secret: Option<&'s Secret>, key: &str) -> Option<&'s str> {
    secret.and_then(|s| text(s, key).ok())
}

/// A new Secret holding a fresh key, before any Dfns call (create step 1).
pub fn with_new_key(
    existing: Option<&Secret>,
    layout: &SecretLayout,
    key: &GeneratedKeyPair,
) -> Secret {
    let mut secret = base(existing, layout);
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    // A new key invalidates any token of the old one.
    data.remove(AUTH_TOKEN);
    data.remove(CRED_ID);
    data.insert(
        PRIVATE_KEY.into(),
        ByteString(key.private_key_pem.expose().as_bytes().to_vec()),
    );
    data.insert(
        PUBLIC_KEY.into(),
        ByteString(key.public_key_pem.as_bytes().to_vec()),
    );
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.remove(ID_ANNOTATION);
    annotations.remove(CREDENTIAL_ID_ANNOTATION);
    annotations.insert(FINGERPRINT_ANNOTATION.into(), key.public_key_sha256.clone());
    secret
}

/// The Secret with the token and credential id of a credential just created (create step 4).
pub fn with_token(
    existing: &Secret,
    layout: &SecretLayout,
    token: &SecretString,
    dfns_id: &str,
    credential_id: &str,
) -> Secret {
    let mut secret = base(Some(existing), layout);
    secret.data.get_or_insert_with(BTreeMap::new).insert(
        AUTH_TOKEN.into(),
        ByteString(token.expose().as_bytes().to_vec()),
    );
    record_credential_id(&mut secret, credential_id).insert(ID_ANNOTATION.into(), dfns_id.into());
    secret
}

/// Puts `credential_id` in the Secret's data (what the signer reads) and its annotation; returns
/// the annotations for the caller's own.
fn record_credential_id<'a>(
    secret: &'a mut Secret,
    credential_id: &str,
) -> &'a mut BTreeMap<String, String> {
    secret.data.get_or_insert_with(BTreeMap::new).insert(
        CRED_ID.into(),
        ByteString(credential_id.as_bytes().to_vec()),
    );
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(CREDENTIAL_ID_ANNOTATION.into(), credential_id.into());
    annotations
}

/// The name of the staging Secret a renewal mints its replacement into: the resource's uid makes
/// it unique and valid whatever the resource's name.
pub fn staging_name(owner_uid: &str) -> String {
    format!("dfns-renewal-{owner_uid}")
}

/// The Secret switched to the credential the staging Secret holds: its key, token, credential id
/// and ids in one write; everything else as the layout wants it.
pub fn switched(existing: Option<&Secret>, layout: &SecretLayout, staging: &Secret) -> Secret {
    let mut secret = base(existing, layout);
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    let staged = staging.data.as_ref();
    for key in [PRIVATE_KEY, PUBLIC_KEY, AUTH_TOKEN, CRED_ID] {
        match staged.and_then(|d| d.get(key)) {
            Some(value) => data.insert(key.into(), value.clone()),
            None => data.remove(key),
        };
    }
    let staged = staging.metadata.annotations.as_ref();
    for key in [
        ID_ANNOTATION,
        CREDENTIAL_ID_ANNOTATION,
        FINGERPRINT_ANNOTATION,
    ] {
        match staged.and_then(|a| a.get(key)) {
            Some(value) => annotations.insert(key.into(), value.clone()),
            None => annotations.remove(key),
        };
    }
    secret
}

/// The Secret switched to the new key of a key rotation, in one write: the staging Secret's key
/// pair and the new credential id; the token and the identity's id stay.
pub fn with_rotated_key(
    existing: &Secret,
    layout: &SecretLayout,
    staging: &Secret,
    credential_id: &str,
) -> Secret {
    let mut secret = base(Some(existing), layout);
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    let staged = staging.data.as_ref();
    for key in [PRIVATE_KEY, PUBLIC_KEY] {
        if let Some(value) = staged.and_then(|d| d.get(key)) {
            data.insert(key.into(), value.clone());
        }
    }
    let annotations = record_credential_id(&mut secret, credential_id);
    if let Some(fp) = staging
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
    {
        annotations.insert(FINGERPRINT_ANNOTATION.into(), fp.clone());
    }
    secret
}

/// The Secret with its metadata and connection data brought in line with the layout; equal to
/// `existing` when nothing changed (then no write is needed).
pub fn with_layout(existing: &Secret, layout: &SecretLayout) -> Secret {
    base(Some(existing), layout)
}

/// The same Secret without its ownerReference to the resource, so that garbage collection keeps it
/// (deletionPolicy Retain).
pub fn released(existing: &Secret, owner_uid: &str) -> Secret {
    let mut secret = existing.clone();
    if let Some(refs) = secret.metadata.owner_references.as_mut() {
        refs.retain(|r| r.uid != owner_uid);
    }
    secret
}

/// Metadata and connection data: the operator's labels and annotations win over the template's,
/// and keys the operator does not manage are left as they are.
fn base(existing: Option<&Secret>, layout: &SecretLayout) -> Secret {
    let mut secret = existing.cloned().unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(layout.name.clone()),
            namespace: Some(layout.namespace.clone()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        ..Default::default()
    });
    let meta = &mut secret.metadata;
    meta.owner_references = Some(vec![layout.owner.clone()]);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(layout.labels.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in &layout.annotations {
        if !k.starts_with("dfns.io/") {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    data.insert(
        API_URL.into(),
        ByteString(layout.api_url.as_bytes().to_vec()),
    );
    match &layout.org_id {
        Some(org) => data.insert(ORG_ID.into(), ByteString(org.as_bytes().to_vec())),
        None => data.remove(ORG_ID),
    };
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfns_client::keys::generate_p256;

    fn layout() -> SecretLayout {
        SecretLayout {
            name: "app".into(),
            namespace: "ns".into(),
            owner: OwnerReference {
                api_version: "dfns.io/v1alpha1".into(),
                kind: "DfnsServiceAccount".into(),
                name: "app".into(),
                uid: "uid-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            labels: [("team".to_string(), "pay".to_string())].into(),
            annotations: [("note".to_string(), "x".to_string())].into(),
            api_url: "https://api.dfns.io".into(),
            org_id: Some("or-1".into()),
        }
    }

    #[test]
    fn a_new_key_secret_is_owned_labelled_and_holds_no_token() {
        let key = generate_p256().unwrap();
        let s = with_new_key(None, &layout(), &key);
        assert!(is_owned_by(&s, "uid-1"));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY_VALUE
        );
        assert_eq!(s.metadata.labels.as_ref().unwrap()["team"], "pay");
        let SecretState::Owned(m) = classify(Some(&s), "uid-1") else {
            panic!("owned")
        };
        assert_eq!(
            m.key_fingerprint.as_deref(),
            Some(key.public_key_sha256.as_str())
        );
        assert!(!m.has_token);
        assert_eq!(s.data.as_ref().unwrap()[ORG_ID].0, b"or-1");
    }

    #[test]
    fn a_token_write_keeps_the_key_and_records_the_credential() {
        let key = generate_p256().unwrap();
        let s = with_new_key(None, &layout(), &key);
        let s = with_token(&s, &layout(), &SecretString::new("tok"), "us-1", "cred-1");
        let SecretState::Owned(m) = classify(Some(&s), "uid-1") else {
            panic!("owned")
        };
        assert!(m.holds_token_of("cred-1"));
        assert_eq!(
            m.key_fingerprint.as_deref(),
            Some(key.public_key_sha256.as_str())
        );
        assert_eq!(
            s.metadata.annotations.as_ref().unwrap()[ID_ANNOTATION],
            "us-1"
        );
    }

    #[test]
    fn the_expiry_of_the_token_workloads_use_is_read_from_the_secret() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let token = |claims: &str| format!("{}.{}.c2ln", part(r#"{"alg":"EdDSA"}"#), part(claims));
        let key = generate_p256().unwrap();
        let s = with_new_key(None, &layout(), &key);
        let material = |token: String| {
            let s = with_token(&s, &layout(), &SecretString::new(token), "us-1", "cred-1");
            let SecretState::Owned(m) = classify(Some(&s), "uid-1") else {
                panic!("owned")
            };
            m
        };
        let expiring = material(token(r#"{"sub":"us-1","exp":1900000000}"#));
        assert_eq!(
            expiring.token_expires_at,
            Some(jiff::Timestamp::from_second(1_900_000_000).unwrap())
        );
        let at = |second| jiff::Timestamp::from_second(second).unwrap();
        assert_eq!(expiring.expired_at(at(1_899_999_999)), None);
        assert_eq!(
            expiring.expired_at(at(1_900_000_000)),
            Some(at(1_900_000_000))
        );
        // No `exp`, or not a JWT at all: nothing to judge, never reported expired.
        assert_eq!(
            material(token(r#"{"sub":"us-1"}"#)).expired_at(at(i32::MAX.into())),
            None
        );
        assert_eq!(material("opaque".into()).token_expires_at, None);
    }

    #[test]
    fn a_switch_takes_key_token_and_ids_from_staging_in_one_secret() {
        let old = with_token(
            &with_new_key(None, &layout(), &generate_p256().unwrap()),
            &layout(),
            &SecretString::new("old"),
            "us-1",
            "cred-1",
        );
        let new_key = generate_p256().unwrap();
        let staging_layout = SecretLayout {
            name: staging_name("uid-1"),
            ..layout()
        };
        let staging = with_token(
            &with_new_key(None, &staging_layout, &new_key),
            &staging_layout,
            &SecretString::new("new"),
            "us-2",
            "cred-2",
        );
        let s = switched(Some(&old), &layout(), &staging);
        let SecretState::Owned(m) = classify(Some(&s), "uid-1") else {
            panic!("owned")
        };
        assert!(m.holds_token_of("cred-2"));
        assert_eq!(
            m.key_fingerprint.as_deref(),
            Some(new_key.public_key_sha256.as_str())
        );
        assert_eq!(text(&s, AUTH_TOKEN), Ok("new"));
        assert_eq!(text(&s, PUBLIC_KEY), Ok(new_key.public_key_pem.as_str()));
        assert_eq!(s.metadata.name.as_deref(), Some("app"));
        assert_eq!(
            s.metadata.annotations.as_ref().unwrap()[ID_ANNOTATION],
            "us-2"
        );
        assert_eq!(s.metadata.labels.as_ref().unwrap()["team"], "pay");
    }

    #[test]
    fn a_secret_owned_by_someone_else_is_foreign() {
        let key = generate_p256().unwrap();
        let s = with_new_key(None, &layout(), &key);
        assert_eq!(classify(Some(&s), "other-uid"), SecretState::Foreign);
        let unowned = Secret {
            metadata: ObjectMeta {
                name: Some("app".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(classify(Some(&unowned), "uid-1"), SecretState::Foreign);
    }

    #[test]
    fn a_released_secret_no_longer_names_its_owner() {
        let key = generate_p256().unwrap();
        let s = released(&with_new_key(None, &layout(), &key), "uid-1");
        assert_eq!(classify(Some(&s), "uid-1"), SecretState::Foreign);
    }

    #[test]
    fn reapplying_the_layout_to_an_up_to_date_secret_changes_nothing() {
        let key = generate_p256().unwrap();
        let s = with_new_key(None, &layout(), &key);
        assert_eq!(with_layout(&s, &layout()), s);
    }
}
