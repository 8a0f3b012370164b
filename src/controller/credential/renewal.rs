//! Renewal before expiry (docs/architecture.md, "Renewal"): when a held credential is due, and
//! the steps of a renewal under way. The replacement is minted with the crash-safe create protocol
//! (`plan::create_path`), asked about a staging Secret instead of the Secret workloads read, and
//! the Secret switches to it in one write; the credential it replaces stays active for the grace
//! period. Pure functions of the planner's view.

use jiff::{SignedDuration, Timestamp};

use super::observed::{DfnsObject, DfnsView, Observed, Seals, SecretMaterial, SecretState};
use super::plan::{self, Step};
use crate::api::{CredentialStatus, OnKeyRotationRefused};

/// How long the previous credential stays active after a switch when the spec names no grace.
pub const DEFAULT_GRACE_PERIOD: SignedDuration = SignedDuration::from_hours(1);
/// Suffix of `status.pendingApproval.operation` for a replacement's create held for approval.
pub const RENEWAL_OPERATION_SUFFIX: &str = " (renewal)";

/// `spec.rotation`, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenewalPolicy {
    /// `None`: one third of the token's lifetime.
    pub renew_before: Option<SignedDuration>,
    pub grace_period: SignedDuration,
    /// `None`: the key is rotated only on request (`dfns.io/rotate-key`).
    pub key_rotation_interval: Option<SignedDuration>,
    pub on_key_rotation_refused: OnKeyRotationRefused,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self {
            renew_before: None,
            grace_period: DEFAULT_GRACE_PERIOD,
            key_rotation_interval: None,
            on_key_rotation_refused: OnKeyRotationRefused::Report,
        }
    }
}

/// What the planner knows for renewals besides the main view.
#[derive(Clone, Debug, PartialEq)]
pub struct RenewalFacts {
    /// The staging Secret a replacement is minted into (read while a renewal is under way).
    pub staging: SecretState,
    /// Identities that may stem from the replacement's create (looked up while one is pending).
    pub candidates: Vec<DfnsObject>,
    /// The resource's `dfns.io/renew` annotation.
    pub requested: Option<String>,
    /// The resource's `dfns.io/rotate-key` annotation.
    pub rotate_key_requested: Option<String>,
    pub policy: RenewalPolicy,
}

impl Default for RenewalFacts {
    fn default() -> Self {
        Self {
            staging: SecretState::Missing,
            candidates: Vec::new(),
            requested: None,
            rotate_key_requested: None,
            policy: RenewalPolicy::default(),
        }
    }
}

/// Why a renewal starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `status.renewalTime` passed.
    Scheduled,
    /// `dfns.io/renew` changed to a value not acted on yet.
    Requested,
    /// The token in the Secret is already past its expiry.
    Expired,
    /// Dfns refused a key rotation and `onKeyRotationRefused` is `Renew`.
    KeyRotationRefused,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Requested => "Requested",
            Self::Expired => "Expired",
            Self::KeyRotationRefused => "KeyRotationRefused",
        }
    }
}

/// The steps only a renewal has; the rest of its create are the create path's own steps.
#[derive(Clone, Debug, PartialEq)]
pub enum RenewalStep {
    /// Record `pendingRenewal` (durably) before anything is minted.
    Begin { trigger: Trigger },
    /// A fresh key in the staging Secret.
    GenerateKey,
    /// Record the replacement's key in `pendingRenewal.pendingCreate` before calling Dfns.
    MarkPendingCreate { key_fingerprint: String },
    /// Create the replacement in Dfns and write its token into the staging Secret.
    Create,
    /// The replacement's token is in the staging Secret (or already in the Secret): switch the
    /// Secret to it in one write, record its ids and keep the previous one for the grace period.
    Switch(DfnsObject),
}

/// When the token in `material` is to be renewed: `renewBefore` before its expiry, or one third
/// of its lifetime before it. A `renewBefore` as long as the lifetime would renew at once after
/// every renewal, so the default applies then (as cert-manager does). `None`: the token does not
/// expire, or its lifetime is unknown.
pub fn renewal_time(material: &SecretMaterial, policy: &RenewalPolicy) -> Option<Timestamp> {
    let expires_at = material.token_expires_at?;
    let lifetime = material
        .token_issued_at
        .map(|issued| expires_at.duration_since(issued))
        .filter(|l| l.is_positive());
    let default = lifetime.map(|l| l / 3);
    let before = match (policy.renew_before, lifetime) {
        (Some(before), Some(l)) if before < l => Some(before),
        (Some(before), None) => Some(before),
        _ => default,
    }?;
    expires_at.checked_sub(before).ok()
}

/// Why the held credential must be renewed now, if it must.
pub fn due(o: &Observed) -> Option<Trigger> {
    let SecretState::Owned(material) = &o.secret else {
        return None;
    };
    if material.expired_at(o.now).is_some() {
        return Some(Trigger::Expired);
    }
    if o.renewal.requested.is_some() && o.renewal.requested != o.status.renew_requested {
        return Some(Trigger::Requested);
    }
    renewal_time(material, &o.renewal.policy)
        .filter(|at| *at <= o.now)
        .map(|_| Trigger::Scheduled)
}

/// The next renewal to show in `status.renewalTime`.
pub fn next_renewal(o: &Observed) -> Option<Timestamp> {
    match &o.secret {
        SecretState::Owned(material) => renewal_time(material, &o.renewal.policy),
        _ => None,
    }
}

/// While a renewal is due or under way, how long the recorded token still works, as the tail of
/// a failure's message: `; renewal failed while …`. From status alone, so that a reconcile that
/// failed before it could read the Secret says it too.
pub fn failure_note(
    status: &CredentialStatus,
    secret_name: &str,
    now: Timestamp,
) -> Option<String> {
    let expires_at = status.expires_at.as_ref()?.0;
    let due = status.renewal_time.as_ref().is_some_and(|at| at.0 <= now);
    if status.pending_renewal.is_none() && !due && expires_at > now {
        return None;
    }
    let left = expires_at.duration_since(now);
    Some(if left.is_positive() {
        let left = SignedDuration::from_secs(left.as_secs());
        format!(
            "; renewal failed while the token in Secret {secret_name} still works for {left:#} (until {expires_at})"
        )
    } else {
        format!("; renewal failed and the token in Secret {secret_name} expired at {expires_at}")
    })
}

/// The previous credential's grace period has not ended yet.
pub fn in_grace(status: &CredentialStatus, now: Timestamp) -> bool {
    status
        .retiring
        .as_ref()
        .and_then(|r| r.retire_at.as_ref())
        .is_some_and(|at| at.0 > now)
}

/// The next step of the renewal in `status.pendingRenewal`.
pub fn step(o: &Observed) -> Step {
    // A replacement Dfns created with roles nobody asked for was deactivated at once; nothing is
    // minted again until the spec changes.
    if let Some(unasked) = &o.status.unasked_permissions
        && unasked.generation == o.generation
    {
        return Step::Stall {
            reason: crate::api::ConditionReason::UnaskedPermissions,
            message: super::rules::unasked_message(&unasked.id, &unasked.permission_ids),
        };
    }
    // At most one previous credential: one still in its grace period is retired first.
    if let Some(retiring) = &o.status.retiring {
        return Step::RetirePrevious {
            id: retiring.id.clone(),
        };
    }
    if o.renewal.staging == SecretState::Foreign {
        return Step::Stall {
            reason: crate::api::ConditionReason::SecretConflict,
            message: format!(
                "Secret {} exists and is not owned by this resource; the operator mints the \
                 renewal's replacement there: delete it",
                crate::controller::secret_layout::staging_name(&o.uid)
            ),
        };
    }
    if let Some(replacement) = switched_to(o) {
        return Step::Renewal(RenewalStep::Switch(replacement.clone()));
    }
    in_staging(plan::create_path(&staging_view(o)))
}

/// A create-path step asked about the staging view, as the renewal performs it.
pub fn in_staging(step: Step) -> Step {
    match step {
        Step::GenerateKey => Step::Renewal(RenewalStep::GenerateKey),
        Step::MarkPendingCreate { key_fingerprint } => {
            Step::Renewal(RenewalStep::MarkPendingCreate { key_fingerprint })
        }
        Step::Create => Step::Renewal(RenewalStep::Create),
        Step::Adopt(object) => Step::Renewal(RenewalStep::Switch(object)),
        // Retiring an orphan, a stall, or the approval steps act on status and Dfns alike.
        other => other,
    }
}

/// A switch written to the Secret whose status was never recorded (a crash in between): the
/// Secret holds the token of a replacement proven this resource's by the key beside it.
fn switched_to(o: &Observed) -> Option<&DfnsObject> {
    let SecretState::Owned(material) = &o.secret else {
        return None;
    };
    let recorded = o.recorded_id();
    o.renewal.candidates.iter().find(|c| {
        Some(c.id.as_str()) != recorded
            && !c.archived
            && material.holds_token_of(&c.credential_id)
            && (c.key_fingerprint.is_some() && c.key_fingerprint == material.key_fingerprint
                || c.external_id.as_deref() == Some(o.uid.as_str()))
    })
}

/// The view the create path decides a replacement's create on: the staging Secret as its
/// Secret, `pendingRenewal.pendingCreate` as its pending create, nothing recorded, and neither
/// the current nor the previous credential among the candidates (both are this resource's and
/// in use; neither is a leftover of the replacement's create).
pub fn staging_view(o: &Observed) -> Observed {
    let recorded = o.recorded_id();
    let retiring = o.status.retiring.as_ref().map(|r| r.id.as_str());
    let candidates = o
        .renewal
        .candidates
        .iter()
        .filter(|c| Some(c.id.as_str()) != recorded && Some(c.id.as_str()) != retiring)
        .cloned()
        .collect();
    let status = CredentialStatus {
        pending_create: o
            .status
            .pending_renewal
            .as_ref()
            .and_then(|p| p.pending_create.clone().map(Box::new)),
        retiring: o.status.retiring.clone(),
        pending_approval: o.status.pending_approval.clone(),
        api_url: o.status.api_url.clone(),
        org_id: o.status.org_id.clone(),
        ..Default::default()
    };
    Observed {
        status,
        secret: o.renewal.staging.clone(),
        dfns: DfnsView::Candidates(candidates),
        seals: Seals {
            recorded: false,
            retiring: o.seals.retiring,
            pending_key: o.seals.renewal_key,
            renewal_key: false,
            key_credential: false,
            new_key_credential: false,
            retiring_key: false,
        },
        ..o.clone()
    }
}

/// Where a held write is the replacement's create.
pub fn holds_replacement_create(o: &Observed) -> bool {
    o.status.pending_renewal.is_some()
        && o.status
            .pending_approval
            .as_ref()
            .is_some_and(|p| p.operation.ends_with(RENEWAL_OPERATION_SUFFIX))
}

/// A Go-style duration (`720h`, `1h30m`, `90s`, `500ms`), as `spec.rotation` takes them (jiff's
/// "friendly" format reads them; the schema's pattern admits no other form).
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let duration: SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 720h or 1h30m: {e}"))?;
    if duration.is_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_while_renewal_is_due_says_how_long_the_token_still_works() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| {
            Some(
                jiff::Timestamp::from_second(1_800_000_000 + s)
                    .unwrap()
                    .into(),
            )
        };
        let status = |renewal: i64, expiry: i64| CredentialStatus {
            renewal_time: at(renewal),
            expires_at: at(expiry),
            ..Default::default()
        };
        assert_eq!(failure_note(&status(10, 100), "app", now), None);
        let note = failure_note(&status(-10, 90), "app", now).unwrap();
        assert!(note.contains("still works for 1m 30s"), "{note}");
        let note = failure_note(&status(-100, -5), "app", now).unwrap();
        assert!(note.contains("expired at"), "{note}");
    }

    #[test]
    fn go_durations_parse_as_the_schema_admits_them() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs_f64());
        assert_eq!(secs("720h"), Ok(2_592_000.0));
        assert_eq!(secs("1h30m"), Ok(5_400.0));
        assert_eq!(secs("90s"), Ok(90.0));
        assert_eq!(secs("1.5h"), Ok(5_400.0));
        assert_eq!(secs("500ms"), Ok(0.5));
        for bad in ["", "10", "5d", "h", "1h-2m", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
