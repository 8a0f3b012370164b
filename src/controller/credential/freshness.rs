//! Which steps may act on the watch cache's copy of the resource, and which only on a version the
//! API server confirmed (docs/architecture.md, "A reconcile").
//!
//! The cache may lag behind the API server (our own last write, another replica's). Every status
//! write carries the `resourceVersion` its decision was made on, so a status decided on a stale
//! copy is refused (409) and the reconcile decides again on a fresh read. A step that writes to
//! Dfns (or switches the Secret workloads read) cannot be undone that way: it runs only once this
//! reconcile has confirmed the version — by a status write the API server accepted under that
//! precondition (in a create, the `pendingCreate` apply just before the Dfns call), or else by
//! reading the resource.

use super::key_rotation::KeyRotationStep;
use super::plan::Step;
use super::renewal::RenewalStep;

/// Whether `step` may run on the cache's copy of the resource: it changes only status (written
/// under the version precondition) or writes a key into a Secret that holds no credential yet.
/// Every other step, including any step added later, needs a confirmed version.
pub(super) fn safe_on_cached_copy(step: &Step) -> bool {
    status_only(step)
        // A key goes only into a Secret without one, or replaces a key no credential may use
        // (the plan's view of the Secret is read fresh, not from a cache).
        || matches!(
            step,
            Step::GenerateKey
                | Step::Renewal(RenewalStep::GenerateKey)
                | Step::KeyRotation(KeyRotationStep::GenerateKey)
        )
}

/// Whether `step` changes nothing but the status the reconcile writes: a status a previous step
/// asked to be saved before the next step (`Then::SaveThenContinue`) may wait past it, to be
/// written with the next one (so a create's ids and its `Ready` go in one write).
pub(super) fn status_only(step: &Step) -> bool {
    matches!(
        step,
        Step::Wait { .. }
            | Step::Stall { .. }
            | Step::UpToDate
            | Step::AwaitApproval { .. }
            | Step::MarkPendingCreate { .. }
            | Step::Renewal(RenewalStep::Begin { .. })
            | Step::Renewal(RenewalStep::MarkPendingCreate { .. })
            | Step::Adopt(_)
            | Step::LoseCredential { .. }
            | Step::SealRecorded
            | Step::ReportDeactivatedInDfns
            | Step::AcknowledgeDeactivation
            | Step::RecordAssignment { .. }
            | Step::RecordApprovalOutcome { .. }
            | Step::ForgetApproval
            | Step::RecordConnection
            | Step::RecordRenewalTime(_)
            | Step::KeyRotation(KeyRotationStep::Begin { .. })
            | Step::KeyRotation(KeyRotationStep::MarkNew { .. })
            | Step::KeyRotation(KeyRotationStep::RecordTime(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfns_writes_and_the_secret_switch_need_a_confirmed_version() {
        for step in [
            Step::Create,
            Step::Renewal(RenewalStep::Create),
            Step::Activate,
            Step::Deactivate,
            Step::DeactivateNotAllowed {
                message: String::new(),
            },
            Step::Rename { name: "n".into() },
            Step::AssignPermission {
                permission_id: "p".into(),
            },
            Step::RevokeAssignment {
                permission_id: "p".into(),
                assignment_id: "a".into(),
            },
            Step::RetirePrevious { id: "i".into() },
            Step::ApprovalGranted,
            Step::KeyRotation(KeyRotationStep::Register),
            Step::KeyRotation(KeyRotationStep::Switch),
            Step::KeyRotation(KeyRotationStep::RetireKey),
        ] {
            assert!(!safe_on_cached_copy(&step), "{step:?}");
        }
    }

    #[test]
    fn a_secret_write_is_not_status_only() {
        assert!(!status_only(&Step::GenerateKey));
        assert!(!status_only(&Step::Create));
        assert!(status_only(&Step::RecordRenewalTime(None)));
        assert!(status_only(&Step::UpToDate));
    }

    #[test]
    fn the_steps_before_the_dfns_create_run_on_the_cached_copy() {
        assert!(safe_on_cached_copy(&Step::GenerateKey));
        assert!(safe_on_cached_copy(&Step::MarkPendingCreate {
            key_fingerprint: "SHA256:x".into(),
        }));
        assert!(safe_on_cached_copy(&Step::KeyRotation(
            KeyRotationStep::GenerateKey
        )));
        assert!(safe_on_cached_copy(&Step::KeyRotation(
            KeyRotationStep::MarkNew {
                key_fingerprint: "SHA256:x".into(),
            }
        )));
    }
}
