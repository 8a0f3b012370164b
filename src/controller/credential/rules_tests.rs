use super::*;
use crate::api::{CredentialLimits, PendingCreate, RetiringCredential};

fn view(url: &str, org: Option<&str>) -> ConnectionView {
    ConnectionView {
        display: "ClusterDfnsConnection default".into(),
        api_url: url.into(),
        org_id: org.map(Into::into),
        namespace_allowed: true,
        allowed_permission_ids: vec![],
        roleless_allowed: true,
        limits: CredentialLimits::default(),
    }
}

fn minted_at(url: Option<&str>, org: Option<&str>) -> CredentialStatus {
    CredentialStatus {
        service_account_id: Some("us-1".into()),
        api_url: url.map(Into::into),
        org_id: org.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn only_a_known_record_that_differs_counts_as_moved() {
    let now = view("https://api.dfns.io", Some("or-a"));
    assert!(moved(&minted_at(Some("https://api.dfns.io"), Some("or-a")), &now).is_none());
    assert!(moved(&minted_at(Some("https://evil.example"), Some("or-a")), &now).is_some());
    assert!(moved(&minted_at(Some("https://api.dfns.io"), Some("or-b")), &now).is_some());
    // No record (a legacy resource): adopted, not judged.
    assert!(moved(&minted_at(None, None), &now).is_none());
    assert!(needs_record(&minted_at(None, None), &now));
    // An organization unknown at minting and known now is learnt, not a move.
    let learnt = minted_at(Some("https://api.dfns.io"), None);
    assert!(moved(&learnt, &now).is_none());
    assert!(needs_record(&learnt, &now));
    assert!(!needs_record(
        &minted_at(Some("https://api.dfns.io"), Some("or-a")),
        &now
    ));
}

#[test]
fn an_unfinished_create_or_a_retiring_credential_also_belongs_to_where_it_was_minted() {
    let now = view("https://api.dfns.io", Some("or-b"));
    let pending = CredentialStatus {
        pending_create: Some(Box::new(PendingCreate {
            started_at: jiff::Timestamp::UNIX_EPOCH.into(),
            public_key_sha256: "k".into(),
            preexisting: vec![],
            seal: None,
        })),
        api_url: Some("https://api.dfns.io".into()),
        org_id: Some("or-a".into()),
        ..Default::default()
    };
    assert!(moved(&pending, &now).is_some());
    let retiring = CredentialStatus {
        retiring: Some(Box::new(RetiringCredential {
            id: "us-old".into(),
            ..Default::default()
        })),
        api_url: Some("https://api.dfns.io".into()),
        org_id: Some("or-a".into()),
        ..Default::default()
    };
    assert!(moved(&retiring, &now).is_some_and(|m| m.contains("us-old")));
    // Holding nothing, a resource simply follows its connection.
    let empty = CredentialStatus {
        api_url: Some("https://old.example".into()),
        ..Default::default()
    };
    assert!(moved(&empty, &now).is_none());
}
