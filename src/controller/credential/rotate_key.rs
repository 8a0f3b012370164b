//! Performing a key rotation's steps (`key_rotation.rs`): the Dfns calls are made as the
//! identity itself (its token and current key, from the Secret), never as the connection.

use kube::api::DeleteParams;
use kube::runtime::events::EventType;

use super::create::Slot;
use super::facts::{Change, Effect, view_of};
use super::key_rotation::{self, KeyRotationStep, KeyTrigger};
use super::reconcile::Run;
use super::renewal::Trigger;
use super::resource::CredentialResource;
use crate::api::{
    ConditionReason, KeyCredential, KeyRotationRefusal, OnKeyRotationRefused, PendingKeyRotation,
    PendingRenewal, RetiringKey,
};
use crate::controller::conditions::Verdict;
use crate::controller::crash_point::{self, CrashPoint};
use crate::controller::error::Error;
use crate::controller::seal::Sealed;
use crate::controller::secret_layout;
use dfns_client::keys::PrivateKey;
use dfns_client::{DfnsClient, DfnsError, ErrorCategory, NewKeyCredential, new_cred_id};

impl<K: CredentialResource> Run<'_, K> {
    pub(super) async fn perform_key_rotation(
        &self,
        step: KeyRotationStep,
    ) -> Result<Effect, Error> {
        match step {
            KeyRotationStep::Begin { trigger } => Ok(self.begin_key_rotation(trigger)),
            KeyRotationStep::GenerateKey => self.generate_key(Slot::Staging).await,
            KeyRotationStep::MarkNew { key_fingerprint } => Ok(self.mark_new_key(key_fingerprint)),
            KeyRotationStep::Register => self.register_key().await,
            KeyRotationStep::Switch => self.switch_key(None).await,
            KeyRotationStep::Abandon { message } => self.abandon_key_rotation(message).await,
            KeyRotationStep::RetireKey => self.retire_key().await,
            KeyRotationStep::RecordTime(at) => {
                let mut status = self.facts.status.clone();
                status.key_rotation_time = at.map(Into::into);
                Ok(Effect::changed(vec![Change::Status(status)]))
            }
        }
    }

    /// Records the rotation, durably, before the staging Secret holds anything.
    fn begin_key_rotation(&self, trigger: KeyTrigger) -> Effect {
        let mut status = self.facts.status.clone();
        status.pending_key_rotation = Some(Box::new(PendingKeyRotation {
            started_at: jiff::Timestamp::now().into(),
            trigger: trigger.as_str().into(),
            requested: self.facts.rotate_key_request.clone(),
            new: None,
            public_key_sha256: None,
        }));
        let id = self.facts.status.recorded_id().unwrap_or_default();
        let why = match trigger {
            KeyTrigger::Scheduled => "its key rotation time passed".to_owned(),
            KeyTrigger::Requested => format!("{} changed", crate::api::ROTATE_KEY_ANNOTATION),
        };
        Effect::saved(vec![Change::Status(status)], Verdict::Unchanged).with_event(
            EventType::Normal,
            "RotatingKey",
            format!("rotating the key of {} {id}: {why}", K::DFNS_KIND),
        )
    }

    /// The new credential id, chosen here and sealed, recorded with the new key's fingerprint
    /// before Dfns hears of either: after a crash, a registration is recognised by this id.
    fn mark_new_key(&self, key_fingerprint: String) -> Effect {
        let mut status = self.facts.status.clone();
        let cred_id = new_cred_id();
        if let Some(pending) = status.pending_key_rotation.as_mut() {
            pending.new = Some(KeyCredential {
                seal: Some(self.facts.seal(Sealed::KeyCredential, &cred_id)),
                cred_id,
                credential_uuid: None,
            });
            pending.public_key_sha256 = Some(key_fingerprint);
        }
        Effect::saved(vec![Change::Status(status)], Verdict::Unchanged)
    }

    /// A client acting as the identity, signing with the key the Secret holds now.
    fn as_identity(&self) -> Result<DfnsClient, Error> {
        let connection = self
            .connection
            .as_ref()
            .ok_or_else(|| Error::Connection("the connection is not available".into()))?;
        let secret = self
            .facts
            .owned_secret()
            .ok_or_else(|| Error::Conflict("the Secret is gone".into()))?;
        self.ctx.dfns_clients.identity_client(connection, secret)
    }

    /// Registers the new key credential as the identity, signed with its current key; an id
    /// Dfns already holds was registered by an attempt whose answer was lost.
    async fn register_key(&self) -> Result<Effect, Error> {
        let new = self
            .facts
            .status
            .pending_key_rotation
            .as_ref()
            .and_then(|p| p.new.clone())
            .ok_or_else(|| Error::Conflict("no new key credential is recorded".into()))?;
        let pem = self
            .secret_text(Slot::Staging, secret_layout::PRIVATE_KEY)
            .ok_or_else(|| Error::Conflict("the staging Secret lost the new key".into()))?;
        let key = PrivateKey::from_pem(&pem).map_err(Error::SecretKey)?;
        let name = format!("dfns-operator {}", self.facts.desired.display_name);
        let registered = self
            .as_identity()?
            .register_key_credential(&NewKeyCredential {
                cred_id: &new.cred_id,
                key: &key,
                name: &name,
            })
            .await;
        let uuid = match registered {
            Ok(credential) => credential.credential_uuid,
            Err(DfnsError::Api { status: 409, .. }) => None,
            Err(e) if e.category() == ErrorCategory::KeyRotationRefused => {
                return self.key_rotation_refused(&e).await;
            }
            Err(e) => return Err(e.into()),
        };
        crash_point::reached(CrashPoint::KeyRotationRegistered);
        self.switch_key(uuid).await
    }

    /// The Secret switches to the new key and credential id in one write (the token stays);
    /// then the staging Secret goes, and status records the new key credential as held and the
    /// old one as retiring until the grace period ends. A crash after the Secret's write is
    /// finished by the planner (`key_rotation::step`, `Switch`).
    async fn switch_key(&self, uuid: Option<String>) -> Result<Effect, Error> {
        let facts = &self.facts;
        let pending = facts
            .status
            .pending_key_rotation
            .clone()
            .ok_or_else(|| Error::Conflict("no key rotation is under way".into()))?;
        let mut new = pending
            .new
            .clone()
            .ok_or_else(|| Error::Conflict("no new key credential is recorded".into()))?;
        if uuid.is_some() {
            new.credential_uuid = uuid;
        }
        let identity = facts
            .recorded()
            .ok_or_else(|| Error::Conflict("the recorded identity is not known".into()))?;
        // What the Secret held before the switch: status's key credential, or the original.
        let view = facts.view();
        let old_cred_id = view.held_credential_id(&view_of(identity)).to_owned();
        let old_uuid = facts
            .status
            .key_credential
            .as_ref()
            .filter(|k| view.seals.key_credential && k.cred_id == old_cred_id)
            .and_then(|k| k.credential_uuid.clone());
        let mut changes = Vec::new();
        let holds_new = secret_layout::text_of(facts.secret.as_ref(), secret_layout::CRED_ID)
            == Some(new.cred_id.as_str());
        if !holds_new {
            let staging = facts
                .staging
                .as_ref()
                .ok_or_else(|| Error::Conflict("the staging Secret is gone".into()))?;
            let current = facts
                .owned_secret()
                .ok_or_else(|| Error::Conflict("the Secret is gone".into()))?;
            let next =
                secret_layout::with_rotated_key(current, &self.layout()?, staging, &new.cred_id);
            changes.extend(self.write_secret(Slot::Main, next).await?);
        }
        changes.extend(self.delete_staging().await?);
        crash_point::reached(CrashPoint::KeyRotationSecretSwitched);
        let now = jiff::Timestamp::now();
        let grace = facts.renewal_policy.grace_period;
        let retire_at = key_rotation::retire_at(now, grace);
        let mut status = facts.status.clone();
        status.retiring_key = Some(Box::new(RetiringKey {
            credential: KeyCredential {
                seal: Some(facts.seal(Sealed::KeyCredential, &old_cred_id)),
                cred_id: old_cred_id.clone(),
                credential_uuid: old_uuid,
            },
            retire_at: retire_at.into(),
        }));
        status.credential_id = Some(new.cred_id.clone());
        status.public_key_sha256 = pending.public_key_sha256.clone();
        status.key_credential = Some(Box::new(new.clone()));
        status.pending_key_rotation = None;
        if let Some(requested) = pending.requested {
            status.key_rotation_requested = Some(requested);
        }
        status.key_rotation_refused = None;
        status.switched_at = Some(now.into());
        status.key_rotation_time = facts
            .renewal_policy
            .key_rotation_interval
            .and_then(|i| now.checked_add(i).ok())
            .map(Into::into);
        changes.push(Change::Status(status));
        let kind = K::DFNS_KIND;
        Ok(Effect::saved(changes, Verdict::Unchanged).with_event(
            EventType::Normal,
            "KeyRotated",
            format!(
                "Secret {} now holds a new key (credential id {}) of {kind} {}, same token; the \
                 old key credential {old_cred_id} stays active until {retire_at} (grace period)",
                facts.desired.secret_name, new.cred_id, identity.id
            ),
        ))
    }

    async fn delete_staging(&self) -> Result<Vec<Change>, Error> {
        let Some(staging) = &self.facts.staging else {
            return Ok(Vec::new());
        };
        let name = staging.metadata.name.clone().unwrap_or_default();
        match self.secrets().delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(vec![Change::Staging(None)])
    }

    /// Dfns refuses the identity its own key credentials: nothing changed in Dfns or the
    /// Secret. Answered once: `Report` records the refusal (no retry on schedule until the spec
    /// changes), `Renew` starts one renewal by replacement instead.
    async fn key_rotation_refused(&self, error: &DfnsError) -> Result<Effect, Error> {
        let mut changes = self.delete_staging().await?;
        let mut status = self.facts.status.clone();
        if let Some(requested) = status.pending_key_rotation.take().and_then(|p| p.requested) {
            status.key_rotation_requested = Some(requested);
        }
        let kind = K::DFNS_KIND;
        let id = status.recorded_id().unwrap_or_default().to_owned();
        let reason = ConditionReason::KeyRotationRefused;
        let text = match self.facts.renewal_policy.on_key_rotation_refused {
            OnKeyRotationRefused::Report => {
                status.key_rotation_refused = Some(Box::new(KeyRotationRefusal {
                    at: jiff::Timestamp::now().into(),
                    generation: self.facts.generation,
                }));
                format!(
                    "Dfns refused {kind} {id} a rotation of its own key ({error}); nothing was \
                     changed and Secret {} keeps working. Set spec.rotation.onKeyRotationRefused \
                     to Renew to renew by replacement instead, or remove \
                     spec.rotation.keyRotationInterval, or ask Dfns to let service accounts and \
                     PATs register their own key credentials",
                    self.facts.desired.secret_name
                )
            }
            OnKeyRotationRefused::Renew => {
                status.pending_renewal = Some(Box::new(PendingRenewal {
                    started_at: jiff::Timestamp::now().into(),
                    trigger: Trigger::KeyRotationRefused.as_str().into(),
                    requested: None,
                    pending_create: None,
                }));
                format!(
                    "Dfns refused {kind} {id} a rotation of its own key ({error}); renewing it \
                     by replacement instead (spec.rotation.onKeyRotationRefused: Renew)"
                )
            }
        };
        changes.push(Change::Status(status));
        Ok(Effect::saved(changes, Verdict::Unchanged).with_event(
            EventType::Warning,
            reason.as_str(),
            text,
        ))
    }

    /// The rotation cannot go on: forget it (and its staging Secret), say why once.
    async fn abandon_key_rotation(&self, message: String) -> Result<Effect, Error> {
        let mut changes = self.delete_staging().await?;
        let mut status = self.facts.status.clone();
        if let Some(requested) = status.pending_key_rotation.take().and_then(|p| p.requested) {
            status.key_rotation_requested = Some(requested);
        }
        changes.push(Change::Status(status));
        Ok(Effect::saved(changes, Verdict::Unchanged).with_event(
            EventType::Warning,
            "KeyRotationAbandoned",
            message,
        ))
    }

    /// Deactivates the previous key credential, as the identity signing with its new key.
    /// Where Dfns refuses it (or will not say which credential it is), a Warning says what to
    /// deactivate by hand; it is not tried again.
    async fn retire_key(&self) -> Result<Effect, Error> {
        let mut status = self.facts.status.clone();
        let Some(retiring) = status.retiring_key.take() else {
            return Ok(Effect::changed(Vec::new()));
        };
        let old = retiring.credential;
        let held = secret_layout::text_of(self.facts.secret.as_ref(), secret_layout::CRED_ID);
        let kind = K::DFNS_KIND;
        let id = status.recorded_id().unwrap_or_default().to_owned();
        // Never the key the Secret signs with, nor one this operator did not seal for this
        // resource (a status edited to name it): only forgotten.
        if held == Some(old.cred_id.as_str()) || !self.facts.view().seals.retiring_key {
            return Ok(Effect::changed(vec![Change::Status(status)]));
        }
        let effect = match self.deactivate_key_credential(&old).await {
            Ok(()) => Effect::changed(Vec::new()).with_event(
                EventType::Normal,
                "KeyRetired",
                format!(
                    "deactivated the previous key credential {} of {kind} {id}",
                    old.cred_id
                ),
            ),
            Err(e) if e.needs_a_person() => Effect::changed(Vec::new()).with_event(
                EventType::Warning,
                "KeyNotRetired",
                format!(
                    "could not deactivate the previous key credential {} of {kind} {id} ({e}); \
                     it is still active: deactivate it in Dfns",
                    old.cred_id
                ),
            ),
            Err(e) => return Err(e),
        };
        Ok(Effect {
            changes: vec![Change::Status(status)],
            ..effect
        })
    }

    async fn deactivate_key_credential(&self, old: &KeyCredential) -> Result<(), Error> {
        let client = self.as_identity()?;
        let uuid = match &old.credential_uuid {
            Some(uuid) => uuid.clone(),
            // The identity's original credential: Dfns names it in its credential list.
            None => {
                let found = client
                    .list_credentials()
                    .await?
                    .into_iter()
                    .find(|c| c.credential_id == old.cred_id);
                match found.and_then(|c| c.credential_uuid) {
                    Some(uuid) => uuid,
                    // Already gone.
                    None => return Ok(()),
                }
            }
        };
        match client.deactivate_key_credential(&uuid).await {
            Ok(()) => Ok(()),
            Err(e) if e.category() == ErrorCategory::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
