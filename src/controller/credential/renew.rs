//! Performing a renewal's own steps (`renewal.rs`): begin it, and switch the Secret to the
//! replacement. Its key, pending record and create are the create protocol's, on the staging
//! Secret (`create.rs`, `Slot::Staging`).

use kube::api::DeleteParams;
use kube::runtime::events::EventType;

use super::create::Slot;
use super::facts::{Change, Effect};
use super::observed::SecretState;
use super::reconcile::Run;
use super::renewal::{RenewalStep, Trigger};
use super::resource::CredentialResource;
use crate::api::{ConditionReason, PendingRenewal, RetiringCredential};
use crate::controller::conditions::Verdict;
use crate::controller::crash_point::{self, CrashPoint};
use crate::controller::error::Error;
use crate::controller::seal::Sealed;
use crate::controller::secret_layout::{self, SecretLayout};
use dfns_client::SecretString;

impl<K: CredentialResource> Run<'_, K> {
    pub(super) async fn perform_renewal(&self, step: RenewalStep) -> Result<Effect, Error> {
        match step {
            RenewalStep::Begin { trigger } => Ok(self.begin_renewal(trigger)),
            RenewalStep::GenerateKey => self.generate_key(Slot::Staging).await,
            RenewalStep::MarkPendingCreate { key_fingerprint } => {
                Ok(self.mark_pending_create(Slot::Staging, key_fingerprint))
            }
            RenewalStep::Create => self.create(Slot::Staging).await,
            RenewalStep::Switch(object) => self.switch(&object.id).await,
        }
    }

    /// While a token still works its conditions stand during a renewal; an expired one is never
    /// `Ready` until the Secret holds a live token.
    pub(super) fn renewal_verdict(&self) -> Verdict {
        match self.facts.view().token_expired_at() {
            Some(expired_at) => Verdict::Progressing {
                reason: ConditionReason::Expired,
                message: format!(
                    "the access token in Secret {} expired at {expired_at}; renewing it now",
                    self.facts.desired.secret_name
                ),
            },
            None => Verdict::Unchanged,
        }
    }

    /// Records the renewal, durably, before its staging Secret holds anything: a staging Secret
    /// exists only while `pendingRenewal` does.
    fn begin_renewal(&self, trigger: Trigger) -> Effect {
        let mut status = self.facts.status.clone();
        status.pending_renewal = Some(Box::new(PendingRenewal {
            started_at: jiff::Timestamp::now().into(),
            trigger: trigger.as_str().into(),
            requested: self.facts.renew_request.clone(),
            pending_create: None,
        }));
        let id = self.facts.status.recorded_id().unwrap_or_default();
        let why = match trigger {
            Trigger::Scheduled => "its renewal time passed".to_owned(),
            Trigger::Requested => format!("{} changed", crate::api::RENEW_ANNOTATION),
            Trigger::Expired => "its token expired".to_owned(),
            Trigger::KeyRotationRefused => "Dfns refused it a key rotation".to_owned(),
        };
        Effect::saved(vec![Change::Status(status)], self.renewal_verdict()).with_event(
            EventType::Normal,
            "Renewing",
            format!("renewing {} {id}: {why}", K::DFNS_KIND),
        )
    }

    /// The Secret switches to the replacement in one write (token, key, credential id and ids
    /// together); then the staging Secret goes, and status records the replacement as held and
    /// the credential it replaces as previous until its grace period ends. A crash after the
    /// Secret's write is finished by the planner (`renewal::switched_to`).
    async fn switch(&self, id: &str) -> Result<Effect, Error> {
        let facts = &self.facts;
        let identity = facts
            .renewal_candidate(id)
            .ok_or_else(|| Error::Conflict(format!("{id} is no longer among the candidates")))?;
        let credential_id = identity.cred_id.clone().unwrap_or_default();
        let holds_it = |secret: Option<&k8s_openapi::api::core::v1::Secret>| {
            matches!(secret_layout::classify(secret, &facts.uid),
                SecretState::Owned(m) if m.holds_token_of(&credential_id))
        };
        let mut changes = Vec::new();
        if !holds_it(facts.secret.as_ref()) {
            let staging = facts
                .staging
                .as_ref()
                .filter(|s| holds_it(Some(s)))
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "the staging Secret no longer holds the token of {id}"
                    ))
                })?;
            let layout: SecretLayout = self.layout()?;
            let next = secret_layout::switched(facts.owned_secret(), &layout, staging);
            changes.extend(self.write_secret(Slot::Main, next).await?);
        }
        if let Some(staging) = &facts.staging {
            let name = staging.metadata.name.clone().unwrap_or_default();
            match self.secrets().delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            changes.push(Change::Staging(None));
        }
        crash_point::reached(CrashPoint::RenewalSecretSwitched);
        let now = jiff::Timestamp::now();
        let previous = facts.status.recorded_id().unwrap_or_default().to_owned();
        let retire_at = self.retire_at(now);
        let written = changes.iter().find_map(|c| match c {
            Change::Secret(Some(s)) => Some(s.clone()),
            _ => None,
        });
        let secret = written.as_ref().or(facts.secret.as_ref());
        let token = secret
            .and_then(|s| secret_layout::text(s, secret_layout::AUTH_TOKEN).ok())
            .map(SecretString::new);
        let key = secret_layout::classify(secret, &facts.uid)
            .key_fingerprint()
            .map(str::to_owned);
        let mut status = facts.status.clone();
        status.retiring = Some(Box::new(RetiringCredential {
            seal: Some(facts.seal(Sealed::Retiring, &previous)),
            id: previous.clone(),
            public_key_sha256: status.public_key_sha256.clone(),
            retire_at: Some(retire_at.into()),
        }));
        let mut status = self.recorded_status(status, &identity, token.as_ref(), key);
        let renewal = status.pending_renewal.take();
        if let Some(requested) = renewal.and_then(|r| r.requested) {
            status.renew_requested = Some(requested);
        }
        status.switched_at = Some(now.into());
        status.renewal_time = None;
        changes.push(Change::Status(status));
        changes.push(Change::Recorded(Some(identity.clone())));
        let kind = K::DFNS_KIND;
        Ok(Effect::saved(changes, Verdict::Unchanged).with_event(
            EventType::Normal,
            "Renewed",
            format!(
                "Secret {} now holds the token and key of {kind} {}; {kind} {previous} stays \
                 active until {retire_at} (grace period), then is retired per deletionPolicy",
                facts.desired.secret_name, identity.id
            ),
        ))
    }

    /// The end of the previous credential's grace period: never past its token's expiry.
    fn retire_at(&self, now: jiff::Timestamp) -> jiff::Timestamp {
        let grace = now
            .checked_add(self.facts.renewal_policy.grace_period)
            .unwrap_or(now);
        let expiry = match secret_layout::classify(self.facts.secret.as_ref(), &self.facts.uid) {
            SecretState::Owned(m) => m.token_expires_at,
            _ => None,
        };
        expiry.map_or(grace, |e| grace.min(e.max(now)))
    }
}
