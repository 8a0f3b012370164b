//! Seals: proof that the operator itself recorded a Dfns id for a resource.
//!
//! A resource's `/status` is writable by whoever may patch it, so an id found there proves
//! nothing. The strong proof of ownership is the key: the Dfns object's public key matches the
//! private key in a Secret the resource owns. Where that key is gone (the Secret was deleted, or
//! the credential is a replaced one waiting for retirement), the operator relies on a seal it
//! wrote next to the id: an HMAC over the resource's uid and the id, under a key kept in a Secret
//! in the operator's namespace that tenants cannot read. A seal copied from another resource does
//! not verify (it binds that resource's uid). docs/architecture.md, "Ownership".

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use ring::hmac;

use dfns_client::IdentityKind;

/// The key inside the seal Secret.
const KEY_FIELD: &str = "seal-key";
const KEY_BYTES: usize = 32;

/// What a seal vouches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed {
    /// `status.serviceAccountId` / `status.tokenId`: the recorded identity.
    Recorded,
    /// `status.retiring.id`: a replaced identity waiting to be deactivated.
    Retiring,
    /// `status.pendingCreate.publicKeySha256`: the key an unfinished create registers.
    PendingKey,
    /// `status.keyCredential.credId` / `pendingKeyRotation.new.credId`: a key credential this
    /// operator registered for the resource's identity.
    KeyCredential,
}

impl Sealed {
    fn label(self) -> &'static str {
        match self {
            Sealed::Recorded => "recorded",
            Sealed::Retiring => "retiring",
            Sealed::PendingKey => "pending-key",
            Sealed::KeyCredential => "key-credential",
        }
    }
}

/// Makes and checks seals. No `Debug`: it holds the key.
pub struct Sealer {
    key: hmac::Key,
}

impl Sealer {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// A key that exists only in this process: for tests and tools that never write status.
    pub fn ephemeral() -> Self {
        Self::from_bytes(&random_key())
    }

    /// The operator's key from the Secret `name` in `namespace`, created on first start. Two
    /// replicas starting together agree: the loser of the create reads the winner's key.
    pub async fn load_or_create(
        kube: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, SealKeyError> {
        let secrets = Api::<Secret>::namespaced(kube, namespace);
        let failed = |source| SealKeyError::Kube {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        };
        if let Some(existing) = secrets.get_opt(name).await.map_err(failed)? {
            return Self::from_secret(&existing, namespace, name);
        }
        let fresh = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "dfns-operator".to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            data: Some([(KEY_FIELD.to_owned(), ByteString(random_key().to_vec()))].into()),
            type_: Some("Opaque".into()),
            immutable: Some(true),
            ..Default::default()
        };
        match secrets.create(&PostParams::default(), &fresh).await {
            Ok(created) => Self::from_secret(&created, namespace, name),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = secrets.get(name).await.map_err(failed)?;
                Self::from_secret(&existing, namespace, name)
            }
            Err(e) => Err(failed(e)),
        }
    }

    fn from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<Self, SealKeyError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(KEY_FIELD))
            .map(|b| b.0.as_slice())
            .filter(|b| b.len() >= KEY_BYTES)
            .ok_or_else(|| SealKeyError::Malformed {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The seal of `value` (an id or key fingerprint) for the resource `uid`.
    pub fn seal(&self, what: Sealed, kind: IdentityKind, uid: &str, value: &str) -> String {
        let tag = hmac::sign(&self.key, &message(what, kind, uid, value));
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `seal` is this operator's seal of `value` for `uid` (constant time).
    pub fn verify(
        &self,
        what: Sealed,
        kind: IdentityKind,
        uid: &str,
        value: &str,
        seal: Option<&str>,
    ) -> bool {
        let Some(tag) = seal.and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()) else {
            return false;
        };
        hmac::verify(&self.key, &message(what, kind, uid, value), &tag).is_ok()
    }
}

/// Length-prefixed fields, so no two different inputs share a message.
fn message(what: Sealed, kind: IdentityKind, uid: &str, value: &str) -> Vec<u8> {
    let kind = kind.to_string();
    let mut out = b"dfns-operator seal v1".to_vec();
    for part in [what.label(), kind.as_str(), uid, value] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn random_key() -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    rand::fill(&mut key);
    key
}

#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error(
        "cannot read or create the seal key Secret {namespace}/{name} (the operator needs get and create on it): {source}"
    )]
    Kube {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "the seal key Secret {namespace}/{name} has no {KEY_FIELD} of at least {KEY_BYTES} bytes; delete it and the operator creates a new one (seals made with the old key no longer verify)"
    )]
    Malformed { namespace: String, name: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: IdentityKind = IdentityKind::ServiceAccount;

    #[test]
    fn a_seal_verifies_only_for_the_uid_id_purpose_and_kind_it_was_made_for() {
        let sealer = Sealer::ephemeral();
        let seal = sealer.seal(Sealed::Recorded, SA, "uid-a", "us-1");
        let ok = |what, kind, uid, id| sealer.verify(what, kind, uid, id, Some(&seal));
        assert!(ok(Sealed::Recorded, SA, "uid-a", "us-1"));
        assert!(
            !ok(Sealed::Recorded, SA, "uid-b", "us-1"),
            "another resource"
        );
        assert!(!ok(Sealed::Recorded, SA, "uid-a", "us-2"), "another id");
        assert!(
            !ok(Sealed::Retiring, SA, "uid-a", "us-1"),
            "another purpose"
        );
        assert!(
            !ok(
                Sealed::Recorded,
                IdentityKind::PersonalAccessToken,
                "uid-a",
                "us-1"
            ),
            "another kind"
        );
    }

    #[test]
    fn a_seal_made_under_another_key_or_missing_or_garbled_does_not_verify() {
        let (mine, theirs) = (Sealer::ephemeral(), Sealer::ephemeral());
        let foreign = theirs.seal(Sealed::Recorded, SA, "uid-a", "us-1");
        for seal in [Some(foreign.as_str()), None, Some(""), Some("not base64!")] {
            assert!(!mine.verify(Sealed::Recorded, SA, "uid-a", "us-1", seal));
        }
    }

    #[test]
    fn fields_cannot_be_shifted_between_uid_and_id() {
        let sealer = Sealer::ephemeral();
        let seal = sealer.seal(Sealed::Recorded, SA, "ab", "c");
        assert!(!sealer.verify(Sealed::Recorded, SA, "a", "bc", Some(&seal)));
    }
}
