//! Whether an identity is this resource's (docs/architecture.md, "Ownership"), and what the plan
//! does with one that is not.

use super::*;

/// Whether an identity is provably this resource's (docs/architecture.md, "Ownership"): its key
/// is the one whose private half is in the resource's own Secret, or it carries what only this
/// operator writes for this resource — the resource's uid as `externalId` (where Dfns returns
/// it), or an id or key fingerprint that the operator sealed in status. Status alone proves
/// nothing: whoever may patch `/status` can write any id or fingerprint there.
pub(in crate::controller::credential) fn proven_ours(o: &Observed, c: &DfnsObject) -> bool {
    let secret_key = o.secret.key_fingerprint();
    let sealed_pending_key = o
        .status
        .pending_create
        .as_ref()
        .filter(|_| o.seals.pending_key)
        .map(|p| p.public_key_sha256.as_str());
    let key_is_ours = c
        .key_fingerprint
        .as_deref()
        .is_some_and(|k| Some(k) == secret_key || Some(k) == sealed_pending_key);
    let sealed_id = (o.seals.recorded && o.recorded_id() == Some(c.id.as_str()))
        || (o.seals.retiring && o.status.retiring.as_ref().is_some_and(|r| r.id == c.id));
    c.external_id.as_deref() == Some(o.uid.as_str()) || key_is_ours || sealed_id
}

/// Ids in status are acted on only once proven this resource's; one that cannot be proven is
/// reported with what a person can do, and nothing is sent to Dfns for it.
pub(in crate::controller::credential) fn ownership_step(o: &Observed) -> Option<Step> {
    if let Some((id, field)) = foreign_id(o) {
        return Some(foreign_credential(id, field));
    }
    match &o.dfns {
        DfnsView::Recorded(Some(_)) if !o.seals.recorded => Some(Step::SealRecorded),
        _ => None,
    }
}

/// An id in status naming an identity not proven this resource's, with the field it is in:
/// a retiring id without this operator's seal, or a recorded id Dfns shows and nothing proves.
pub(in crate::controller::credential) fn foreign_id(o: &Observed) -> Option<(&str, &'static str)> {
    if let Some(retiring) = &o.status.retiring
        && !o.seals.retiring
    {
        return Some((&retiring.id, "status.retiring.id"));
    }
    let id = o.recorded_id()?;
    match &o.dfns {
        DfnsView::Recorded(Some(object)) if !proven_ours(o, object) => {
            Some((id, recorded_field(o)))
        }
        _ => None,
    }
}

fn recorded_field(o: &Observed) -> &'static str {
    if o.status.service_account_id.is_some() {
        "status.serviceAccountId"
    } else {
        "status.tokenId"
    }
}

fn foreign_credential(id: &str, field: &str) -> Step {
    Step::Stall {
        reason: ConditionReason::ForeignCredential,
        message: foreign_message(id, field),
    }
}

pub(in crate::controller::credential) fn foreign_message(id: &str, field: &str) -> String {
    format!(
        "{field} names {id}, which cannot be proven to be this resource's: Dfns shows no key that \
         is in this resource's Secret, and the id carries no seal of this operator. Nothing is \
         done to {id}. If status was edited, remove the field (kubectl patch --subresource=status); \
         if {id} is this resource's and its Secret is gone, deactivate it in Dfns yourself, then \
         remove the field"
    )
}
