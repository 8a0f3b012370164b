//! The crash-safe create protocol (docs/architecture.md, "Crash-safe create"): a key in the
//! Secret before Dfns is called, the attempt recorded before the call, the token written the
//! moment it exists, the ids recorded right after; and adoption of a create whose answer was lost.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;

use super::facts::{Change, DfnsFacts, Effect, Then};
use super::reconcile::Run;
use super::renewal;
use super::resource::{CredentialResource, record_ids};
use super::rules;
use super::steps::creating;
use crate::api::{ConditionReason, PendingCreate, UnaskedPermissions};
use crate::controller::conditions::Verdict;
use crate::controller::crash_point::{self, CrashPoint};
use crate::controller::error::{Error, ignore_not_found};
use crate::controller::seal::Sealed;
use crate::controller::secret_layout::{self, SecretLayout};
use dfns_client::keys::{PrivateKey, generate_p256};
use dfns_client::{Identity, NewIdentity, SecretString, decode_claims};

/// Attempts at writing a token that exists only in this process.
const TOKEN_WRITE_ATTEMPTS: u32 = 6;

/// The Secret a create works on: the one workloads read (a first create, or a new credential
/// after a loss), or the staging Secret a renewal mints its replacement into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Main,
    Staging,
}

impl<K: CredentialResource> Run<'_, K> {
    /// Step 1: a fresh key in the slot's Secret (created if needed), before any Dfns call.
    pub(super) async fn generate_key(&self, slot: Slot) -> Result<Effect, Error> {
        let key = generate_p256().map_err(Error::KeyGeneration)?;
        let next =
            secret_layout::with_new_key(self.slot_secret(slot), &self.layout_of(slot)?, &key);
        Ok(Effect::changed(self.write_secret(slot, next).await?))
    }

    /// Step 2: record the attempt, durably, before calling Dfns.
    pub(super) fn mark_pending_create(&self, slot: Slot, key_fingerprint: String) -> Effect {
        let mut status = self.facts.status.clone();
        let view = self.facts.view();
        let pending = PendingCreate {
            started_at: jiff::Timestamp::now().into(),
            seal: Some(self.facts.seal(Sealed::PendingKey, &key_fingerprint)),
            public_key_sha256: key_fingerprint,
            preexisting: match slot {
                Slot::Main => super::plan::unproven_ids(&view),
                Slot::Staging => super::plan::unproven_ids(&renewal::staging_view(&view)),
            },
        };
        match slot {
            Slot::Main => status.pending_create = Some(Box::new(pending)),
            Slot::Staging => {
                if let Some(renewal) = status.pending_renewal.as_mut() {
                    renewal.pending_create = Some(pending);
                }
            }
        }
        // Where this attempt's identity will live; a connection moved later stalls the resource.
        if let Some(connection) = &self.facts.connection {
            status.api_url = Some(connection.api_url.clone());
            status.org_id = connection.org_id.clone();
        }
        let verdict = match slot {
            Slot::Main => creating(),
            Slot::Staging => self.renewal_verdict(),
        };
        Effect::saved(vec![Change::Status(status)], verdict)
    }

    /// Steps 3–5: create in Dfns, write the token into the slot's Secret at once; a first create
    /// records the ids, a renewal's replacement becomes a candidate for the switch.
    pub(super) async fn create(&self, slot: Slot) -> Result<Effect, Error> {
        // The plan asks for Create only once `pendingCreate` is saved (step 2).
        crash_point::reached(CrashPoint::CreatePendingSaved);
        let handle = self.handle()?;
        let facts = &self.facts;
        let new = NewIdentity {
            name: facts.desired.display_name.clone(),
            public_key_pem: self.secret_public_key(slot)?,
            permission_id: facts.desired.permission_id.clone(),
            external_id: Some(facts.uid.clone()),
            days_valid: self.days_valid(),
            seconds_valid: self.obj.seconds_valid(),
        };
        let created = handle.client.create(K::DFNS_KIND, &new).await?;
        crash_point::reached(CrashPoint::CreateDfnsReturned);
        let identity = created.identity;
        // Checked before the token is stored: an identity with rights nobody asked for never
        // becomes usable. A crash before this leaves it an orphan (no token stored), retired by
        // the pending-create recovery.
        let unasked = rules::unasked_permissions(
            facts.desired.permission_id.as_deref(),
            identity
                .permission_assignments
                .iter()
                .map(|a| a.permission_id.as_str()),
        );
        if !unasked.is_empty() {
            return self.refuse_unasked(&identity.id, unasked).await;
        }
        let credential_id = identity.cred_id.clone().ok_or_else(|| {
            Error::UnexpectedDfnsAnswer(format!(
                "Dfns created {} without a credential id",
                identity.id
            ))
        })?;
        let secret = self
            .write_token(slot, &created.access_token, &identity.id, &credential_id)
            .await?;
        crash_point::reached(CrashPoint::CreateTokenWritten);
        if slot == Slot::Staging {
            // The planner finds it among the candidates, holding its token: the switch comes next.
            return Ok(Effect::changed(vec![
                Change::Staging(Some(secret)),
                Change::Candidate(identity),
            ]));
        }
        let note = format!(
            "created {} {} and wrote Secret {}",
            K::DFNS_KIND,
            identity.id,
            facts.desired.secret_name
        );
        Ok(self
            .record_created(identity, Some(&created.access_token), Some(secret))
            .with_event(EventType::Normal, "Created", note))
    }

    /// The validity to ask for: the resource's, or the connection's maximum where it sets one and
    /// the resource asks for none (Dfns documents no default, and some revisions mint no expiry).
    fn days_valid(&self) -> Option<u32> {
        let asked = self.obj.credential_spec().days_valid;
        if asked.is_some() || self.obj.seconds_valid().is_some() {
            return asked;
        }
        self.facts
            .connection
            .as_ref()
            .and_then(|c| c.limits.max_days_valid)
    }

    /// Dfns created an identity with roles nobody asked for: deactivate it at once (it is ours:
    /// created this instant with the pending key), never store its token, and stall until the spec
    /// changes. `pendingCreate` stays, so its key is never registered again and a later attempt
    /// archives the identity as an orphan.
    async fn refuse_unasked(&self, id: &str, unasked: Vec<String>) -> Result<Effect, Error> {
        let kind = K::DFNS_KIND;
        let deactivated = ignore_not_found(self.handle()?.client.deactivate(kind, id).await);
        // The check comes first: if the deactivation failed, the recovery retires it as an orphan.
        deactivated?;
        let reason = ConditionReason::UnaskedPermissions;
        self.ctx
            .metrics
            .deactivated_by_rule(&K::kind(&()), reason.as_str());
        let message = rules::unasked_message(id, &unasked);
        let mut status = self.facts.status.clone();
        status.unasked_permissions = Some(Box::new(UnaskedPermissions {
            id: id.to_owned(),
            permission_ids: unasked,
            generation: self.facts.generation,
        }));
        let verdict = Verdict::Stalled {
            reason,
            message: message.clone(),
        };
        Ok(Effect {
            changes: vec![Change::Status(status)],
            ..Effect::then(Then::Finish(verdict))
        }
        .with_event(EventType::Warning, reason.as_str(), message))
    }

    /// An interrupted create did happen and the Secret holds its token: record its ids.
    pub(super) async fn adopt(&self, id: &str) -> Result<Effect, Error> {
        let identity = self
            .candidate(id)
            .ok_or_else(|| Error::Conflict(format!("{id} is no longer among the candidates")))?;
        let token = self
            .secret_text(Slot::Main, secret_layout::AUTH_TOKEN)
            .map(SecretString::new);
        let note = format!(
            "recorded {} {id} created before an interruption",
            K::DFNS_KIND
        );
        Ok(self
            .record_created(identity, token.as_ref(), None)
            .with_event(EventType::Normal, "Created", note))
    }

    fn candidate(&self, id: &str) -> Option<Identity> {
        match &self.facts.dfns {
            DfnsFacts::Candidates(candidates) => candidates
                .iter()
                .find(|c| c.identity.id == id)
                .map(|c| c.identity.clone()),
            _ => None,
        }
    }

    /// Step 5 (or recovery): ids into status and `pendingCreate` cleared, saved at once.
    fn record_created(
        &self,
        identity: Identity,
        token: Option<&SecretString>,
        written: Option<Secret>,
    ) -> Effect {
        let facts = &self.facts;
        let key = secret_layout::classify(written.as_ref().or(facts.secret.as_ref()), &facts.uid)
            .key_fingerprint()
            .map(str::to_owned);
        let mut status = self.recorded_status(facts.status.clone(), &identity, token, key);
        status.pending_create = None;
        // What is asked of a new credential now is answered by it.
        status.renew_requested = facts.renew_request.clone();
        status.key_rotation_requested = facts.rotate_key_request.clone();
        // A replacement for a lost credential: the Secret switched (rolloutRestartTargets).
        if status.retiring.is_some() {
            status.switched_at = Some(jiff::Timestamp::now().into());
        }
        let mut changes: Vec<Change> = written
            .map(|s| Change::Secret(Some(s)))
            .into_iter()
            .collect();
        changes.push(Change::Status(status));
        changes.push(Change::Recorded(Some(identity)));
        Effect::saved(changes, creating())
    }

    /// `status` with `identity` recorded as the held credential: its ids, this operator's seal,
    /// its token's expiry, its key and role assignment.
    pub(super) fn recorded_status(
        &self,
        mut status: crate::api::CredentialStatus,
        identity: &Identity,
        token: Option<&SecretString>,
        key_fingerprint: Option<String>,
    ) -> crate::api::CredentialStatus {
        let facts = &self.facts;
        record_ids(&mut status, identity);
        status.seal = Some(facts.seal(Sealed::Recorded, &identity.id));
        status.expires_at = token
            .and_then(|t| decode_claims(t.expose()).ok())
            .and_then(|c| c.expires_at)
            .map(Into::into);
        status.public_key_sha256 = key_fingerprint;
        status.unasked_permissions = None;
        // A new identity comes with its own first key: no rotated key credential, and its key
        // rotation is scheduled afresh.
        status.key_credential = None;
        status.retiring_key = None;
        status.key_rotation_time = None;
        status.secret_name = Some(facts.desired.secret_name.clone());
        status.assigned_permission_id = None;
        status.permission_assignment_id = None;
        if let Some(p) = &facts.desired.permission_id
            && let Some(assignment) = identity.assignment_of(p)
        {
            status.assigned_permission_id = Some(p.clone());
            status.permission_assignment_id = Some(assignment.assignment_id.clone());
        }
        status
    }

    /// Step 4: the token exists only in this process now, so retry the write in-process; if it
    /// cannot be written, the pending-create recovery retires the identity later.
    async fn write_token(
        &self,
        slot: Slot,
        token: &SecretString,
        dfns_id: &str,
        credential_id: &str,
    ) -> Result<Secret, Error> {
        let layout = self.layout_of(slot)?;
        let name = &layout.name;
        let namespace = self.obj.namespace().unwrap_or_default();
        let secrets = self.secrets();
        let mut last_error = None;
        for attempt in 0..TOKEN_WRITE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            }
            let current = match (attempt, self.slot_secret(slot)) {
                // As this reconcile wrote (or read) it: no read; if it changed since, the
                // replace is refused and the next attempt reads it.
                (0, Some(s)) if secret_layout::is_owned_by(s, &self.facts.uid) => {
                    Ok(Some(s.clone()))
                }
                _ => secrets.get_opt(name).await,
            };
            let current = match current {
                Ok(Some(s)) if secret_layout::is_owned_by(&s, &self.facts.uid) => s,
                Ok(_) => {
                    return Err(Error::Conflict(format!(
                        "Secret {name} vanished or changed owner during create"
                    )));
                }
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            let next = secret_layout::with_token(&current, &layout, token, dfns_id, credential_id);
            let writing = self.ctx.owned_secrets.writing(&namespace, name);
            match secrets.replace(name, &PostParams::default(), &next).await {
                Ok(written) => {
                    writing.wrote(&written);
                    return Ok(written);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.map_or_else(
            || Error::Conflict("could not write the token".into()),
            Error::Kube,
        ))
    }

    pub(super) fn secrets(&self) -> Api<Secret> {
        Api::namespaced(
            self.ctx.kube.clone(),
            &self.obj.namespace().unwrap_or_default(),
        )
    }

    /// What the Secret's metadata and connection data should be.
    pub(super) fn layout(&self) -> Result<SecretLayout, Error> {
        let connection = self
            .connection
            .as_ref()
            .ok_or_else(|| Error::Connection("the connection is not available".into()))?;
        let template = self
            .obj
            .credential_spec()
            .secret
            .clone()
            .unwrap_or_default();
        Ok(SecretLayout {
            name: self.facts.desired.secret_name.clone(),
            namespace: self.obj.namespace().unwrap_or_default(),
            owner: self
                .obj
                .controller_owner_ref(&())
                .ok_or_else(|| Error::InvalidSpec("resource has no uid".into()))?,
            labels: template.labels,
            annotations: template.annotations,
            api_url: connection.spec.api_url.clone(),
            org_id: connection.org_id(),
        })
    }

    /// The layout of the slot's Secret. The staging Secret carries none of the template's labels
    /// and annotations: nothing that watches Secrets by label should act on a key not yet in use.
    pub(super) fn layout_of(&self, slot: Slot) -> Result<SecretLayout, Error> {
        let layout = self.layout()?;
        Ok(match slot {
            Slot::Main => layout,
            Slot::Staging => SecretLayout {
                name: secret_layout::staging_name(&self.facts.uid),
                labels: Default::default(),
                annotations: Default::default(),
                ..layout
            },
        })
    }

    /// The slot's Secret as last read or written.
    pub(super) fn slot_secret(&self, slot: Slot) -> Option<&Secret> {
        match slot {
            Slot::Main => self.facts.secret.as_ref(),
            Slot::Staging => self.facts.staging.as_ref(),
        }
    }

    /// Creates or replaces (optimistically, by resourceVersion) the slot's Secret; no write if
    /// unchanged.
    pub(super) async fn write_secret(
        &self,
        slot: Slot,
        next: Secret,
    ) -> Result<Vec<Change>, Error> {
        if self.slot_secret(slot) == Some(&next) {
            return Ok(Vec::new());
        }
        let secrets = self.secrets();
        let namespace = self.obj.namespace().unwrap_or_default();
        let writing = self.ctx.owned_secrets.writing(&namespace, &next.name_any());
        let written = match next.resource_version() {
            None => secrets.create(&PostParams::default(), &next).await,
            Some(_) => {
                secrets
                    .replace(&next.name_any(), &PostParams::default(), &next)
                    .await
            }
        }
        .map_err(|error| match error {
            // The Secret exists after all (the owned-Secret watch had not shown it yet), or
            // changed since it was read: nothing was written; decide again on a fresh read.
            kube::Error::Api(status) if status.code == 409 => {
                self.ctx.owned_secrets.exists(&namespace, &next.name_any());
                Error::StaleResource
            }
            other => Error::Kube(other),
        })?;
        writing.wrote(&written);
        Ok(vec![match slot {
            Slot::Main => Change::Secret(Some(written)),
            Slot::Staging => Change::Staging(Some(written)),
        }])
    }

    /// A Ready credential's Secret follows the template and the connection (labels,
    /// annotations, API URL, organization).
    pub(super) async fn sync_secret_layout(&mut self) -> Result<(), Error> {
        let Some(current) = self.facts.owned_secret() else {
            return Ok(());
        };
        let next = secret_layout::with_layout(current, &self.layout()?);
        for change in self.write_secret(Slot::Main, next).await? {
            self.facts.apply(change);
        }
        Ok(())
    }

    pub(super) fn secret_text(&self, slot: Slot, key: &str) -> Option<String> {
        let secret = self.slot_secret(slot)?;
        secret_layout::text(secret, key).ok().map(str::to_string)
    }

    /// The SPKI PEM of the slot's key, derived from the private key so the two always match.
    fn secret_public_key(&self, slot: Slot) -> Result<String, Error> {
        let pem = self
            .secret_text(slot, secret_layout::PRIVATE_KEY)
            .ok_or_else(|| {
                Error::Conflict("the Secret lost its private key during create".into())
            })?;
        let key = PrivateKey::from_pem(&pem).map_err(Error::SecretKey)?;
        key.public_key_pem().map_err(Error::SecretKey)
    }
}
