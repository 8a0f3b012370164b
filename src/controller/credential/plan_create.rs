//! The crash-safe create path and the lost creates it finds again (docs/architecture.md,
//! "Crash-safe create"): which candidate is adopted, which is an orphan, which is unproven.

use super::*;

/// Nothing recorded yet: the crash-safe create (docs/architecture.md). A renewal asks it about
/// its staging view (`renewal::staging_view`).
pub(in crate::controller::credential) fn create_path(o: &Observed) -> Step {
    let key = o.secret.key_fingerprint();
    let retired_key = o
        .status
        .retiring
        .as_ref()
        .and_then(|r| r.public_key_sha256.as_deref());

    if let Some(pending) = &o.status.pending_create {
        // A create may have happened whose outcome we did not see.
        let candidates = match &o.dfns {
            DfnsView::Candidates(candidates) => candidates.as_slice(),
            _ => &[],
        };
        if let Some(orphan) = find_orphan(o) {
            return Step::RetireOrphan(orphan.clone());
        }
        if let Some(created) = candidates
            .iter()
            .find(|c| !c.archived && o.secret_holds_token_of(&c.credential_id) && proven_ours(o, c))
        {
            return Step::Adopt(created.clone());
        }
        let reported = unproven_candidates(o);
        if !reported.is_empty() {
            return Step::Stall {
                reason: ConditionReason::OrphanNotProven,
                message: unproven_message(&reported),
            };
        }
        // A key that an earlier attempt registered, or may have, is never used again.
        let burnt = candidates
            .iter()
            .any(|c| c.key_fingerprint.as_deref() == Some(pending.public_key_sha256.as_str()))
            || in_doubt(o).next().is_some();
        return match key {
            Some(fp) if fp == pending.public_key_sha256 && !burnt => Step::Create,
            Some(fp) if fp != pending.public_key_sha256 && Some(fp) != retired_key => {
                Step::MarkPendingCreate {
                    key_fingerprint: fp.to_string(),
                }
            }
            _ => Step::GenerateKey,
        };
    }
    match key {
        Some(fp) if Some(fp) != retired_key => Step::MarkPendingCreate {
            key_fingerprint: fp.to_string(),
        },
        _ => Step::GenerateKey,
    }
}

/// A credential from an interrupted create that nobody holds the token of and that could still be
/// used: active, or registered with the pending key. Older, deactivated leftovers of lost
/// credentials are left alone.
pub(in crate::controller::credential) fn find_orphan(o: &Observed) -> Option<&DfnsObject> {
    let DfnsView::Candidates(candidates) = &o.dfns else {
        return None;
    };
    let pending_key = o
        .status
        .pending_create
        .as_ref()
        .map(|p| p.public_key_sha256.as_str());
    let retiring_id = o.status.retiring.as_ref().map(|r| r.id.as_str());
    candidates.iter().find(|c| {
        Some(c.id.as_str()) != retiring_id
            && !c.archived
            && !o.secret_holds_token_of(&c.credential_id)
            && proven_ours(o, c)
            && (c.active || (pending_key.is_some() && c.key_fingerprint.as_deref() == pending_key))
    })
}

/// Active identities that may stem from an interrupted create without proof either way (see
/// `observe::may_stem_from`): never retired, never ignored, reported to a person.
pub(in crate::controller::credential) fn unproven_candidates(o: &Observed) -> Vec<&DfnsObject> {
    in_doubt(o).filter(|c| c.active).collect()
}

/// Every identity that may stem from the pending attempt without proof, active or not: what a
/// new attempt records as `preexisting`, so it is never mistaken for that attempt's result.
pub(in crate::controller::credential) fn unproven_ids(o: &Observed) -> Vec<String> {
    in_doubt(o).map(|c| c.id.clone()).collect()
}

fn in_doubt(o: &Observed) -> impl Iterator<Item = &DfnsObject> {
    let candidates = match &o.dfns {
        DfnsView::Candidates(candidates) => candidates.as_slice(),
        _ => &[],
    };
    let preexisting = o
        .status
        .pending_create
        .as_ref()
        .map(|p| p.preexisting.as_slice())
        .unwrap_or_default();
    // A token in the Secret naming its credential id proves nothing: the Secret is writable by
    // the tenant, who can copy another identity's credential id into it.
    candidates
        .iter()
        .filter(move |c| !c.archived && unproven(c) && !preexisting.contains(&c.id))
}

pub(in crate::controller::credential) fn unproven_message(unproven: &[&DfnsObject]) -> String {
    // Dfns' listing decides how many there are: name a few, count the rest.
    const NAMED: usize = 5;
    let mut ids: Vec<&str> = unproven.iter().take(NAMED).map(|c| c.id.as_str()).collect();
    let more = unproven.len().saturating_sub(NAMED).to_string() + " more";
    if unproven.len() > NAMED {
        ids.push(&more);
    }
    format!(
        "an interrupted create may have made {} in Dfns, but Dfns shows neither its key nor an \
         externalId to prove it; if it is not in use elsewhere, deactivate it in Dfns, then \
         annotate this resource (or wait for the next resync) and the operator continues with a \
         new key",
        ids.join(", ")
    )
}

/// Dfns shows neither the key nor an `externalId`: nothing tells whose the identity is.
fn unproven(c: &DfnsObject) -> bool {
    c.key_fingerprint.is_none() && c.external_id.is_none()
}
