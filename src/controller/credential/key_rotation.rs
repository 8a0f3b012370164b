//! Key rotation in place (docs/architecture.md, "Key rotation"): the identity keeps its token and
//! registers a new Key credential itself, signed with its current key (Dfns' credential rotation
//! guide); the Secret switches to the new key and credential id in one write, and the old key
//! credential is deactivated after the grace period. The new key waits in the staging Secret
//! until the switch, and its credential id is chosen and sealed in status before it is
//! registered, so a crash at any point is recognised and finished. Pure functions of the
//! planner's view.

use jiff::{SignedDuration, Timestamp};

use super::observed::{DfnsObject, Observed, SecretState};
use super::plan::Step;
use crate::api::ConditionReason;
use crate::controller::secret_layout;

/// Why a key rotation starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTrigger {
    /// `status.keyRotationTime` passed.
    Scheduled,
    /// `dfns.io/rotate-key` changed to a value not acted on yet.
    Requested,
}

impl KeyTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Requested => "Requested",
        }
    }
}

/// The steps of a key rotation, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyRotationStep {
    /// Record `pendingKeyRotation` (durably) before the staging Secret holds anything.
    Begin { trigger: KeyTrigger },
    /// A fresh key in the staging Secret.
    GenerateKey,
    /// Choose the new credential id, seal it and record it with the key's fingerprint, durably,
    /// before it is registered.
    MarkNew { key_fingerprint: String },
    /// Register the new key credential as the identity (an id already taken is ours: a crash
    /// after an earlier registration), then switch the Secret to it and record it.
    Register,
    /// The Secret already holds the new key credential (a crash before its record): record it.
    Switch,
    /// The rotation cannot go on (the Secret lost the token it signs with, or the staging
    /// Secret lost a key that may be registered): forget it, say what a person can check.
    Abandon { message: String },
    /// The previous key credential's grace period ended: deactivate it, as the identity.
    RetireKey,
    /// `status.keyRotationTime` should show the next scheduled rotation.
    RecordTime(Option<Timestamp>),
}

/// Why the key must be rotated now, if it must.
pub fn due(o: &Observed) -> Option<KeyTrigger> {
    let requested = &o.renewal.rotate_key_requested;
    if requested.is_some() && *requested != o.status.key_rotation_requested {
        return Some(KeyTrigger::Requested);
    }
    o.status
        .key_rotation_time
        .as_ref()
        .filter(|at| at.0 <= o.now && next_time(o).is_some())
        .map(|_| KeyTrigger::Scheduled)
}

/// The next scheduled rotation: the recorded one, or an interval from now when none is recorded
/// (or the interval was shortened below what is left). `None` without an interval, and while a
/// refusal stands for this generation of the spec (no retry on schedule until it changes).
pub fn next_time(o: &Observed) -> Option<Timestamp> {
    let interval = o.renewal.policy.key_rotation_interval?;
    if refused_now(o) {
        return None;
    }
    let latest = o.now.checked_add(interval).ok()?;
    match o.status.key_rotation_time.as_ref().map(|t| t.0) {
        Some(at) if at <= latest => Some(at),
        _ => Some(latest),
    }
}

/// A refusal recorded for the spec as it is.
pub fn refused_now(o: &Observed) -> bool {
    o.status
        .key_rotation_refused
        .as_ref()
        .is_some_and(|r| r.generation == o.generation)
}

/// The previous key credential's grace period is over.
pub fn retire_due(o: &Observed) -> bool {
    o.status
        .retiring_key
        .as_ref()
        .is_some_and(|r| r.retire_at.0 <= o.now)
}

/// The next step of the rotation in `status.pendingKeyRotation`, for the recorded `object`.
pub fn step(o: &Observed, object: Option<&DfnsObject>) -> Step {
    let Some(pending) = &o.status.pending_key_rotation else {
        return Step::UpToDate;
    };
    let step = |s| Step::KeyRotation(s);
    if o.renewal.staging == SecretState::Foreign {
        return Step::Stall {
            reason: ConditionReason::SecretConflict,
            message: format!(
                "Secret {} exists and is not owned by this resource; the operator keeps the \
                 rotation's new key there: delete it",
                secret_layout::staging_name(&o.uid)
            ),
        };
    }
    let new = pending.new.as_ref().filter(|_| o.seals.new_key_credential);
    // The identity is gone or archived: nothing to rotate; the loss is handled once forgotten.
    let Some(object) = object else {
        return step(KeyRotationStep::Abandon {
            message: abandoned_message(o, new.map(|k| k.cred_id.as_str())),
        });
    };
    let material = match &o.secret {
        SecretState::Owned(m) if m.has_token => m,
        // Nothing to sign the registration with: the loss is handled once this is forgotten.
        _ => {
            return step(KeyRotationStep::Abandon {
                message: abandoned_message(o, new.map(|k| k.cred_id.as_str())),
            });
        }
    };
    if let Some(new) = new
        && material.credential_id.as_deref() == Some(new.cred_id.as_str())
    {
        return step(KeyRotationStep::Switch);
    }
    // The Secret must still sign as the identity's current key credential.
    if material.credential_id.as_deref() != Some(o.held_credential_id(object)) {
        return step(KeyRotationStep::Abandon {
            message: abandoned_message(o, new.map(|k| k.cred_id.as_str())),
        });
    }
    let staged_key = o.renewal.staging.key_fingerprint();
    match (new, pending.public_key_sha256.as_deref()) {
        (Some(_), Some(fp)) if staged_key == Some(fp) => step(KeyRotationStep::Register),
        // The key a registration may have used is gone from the staging Secret.
        (Some(new), _) => step(KeyRotationStep::Abandon {
            message: abandoned_message(o, Some(new.cred_id.as_str())),
        }),
        (None, _) => match staged_key {
            Some(fp) => step(KeyRotationStep::MarkNew {
                key_fingerprint: fp.to_owned(),
            }),
            None => step(KeyRotationStep::GenerateKey),
        },
    }
}

fn abandoned_message(o: &Observed, new_cred_id: Option<&str>) -> String {
    let mut message = format!(
        "the key rotation of {} was abandoned: Secret {} no longer holds the token and key it \
         signs with, or the staging Secret {} lost the new key",
        o.recorded_id().unwrap_or_default(),
        o.desired.secret_name,
        secret_layout::staging_name(&o.uid)
    );
    if let Some(cred_id) = new_cred_id {
        message.push_str(&format!(
            "; key credential {cred_id} may have been registered in Dfns: if Dfns lists it, \
             deactivate it there"
        ));
    }
    message
}

/// When the previous key credential is deactivated: the grace period after the switch.
pub fn retire_at(now: Timestamp, grace: SignedDuration) -> Timestamp {
    now.checked_add(grace).unwrap_or(now)
}
