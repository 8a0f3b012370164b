use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelectorRequirement, Time};

use super::*;
use crate::api::{ConnectionAuth, ConnectionIdentity};

fn ready_status(kind: &str) -> ConnectionStatus {
    ConnectionStatus {
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Ready".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }],
        identity: Some(ConnectionIdentity {
            kind: kind.into(),
            user_id: "us-1".into(),
            ..Default::default()
        }),
    }
}

fn spec(allowed: &[&str]) -> ConnectionSpec {
    ConnectionSpec {
        api_url: "https://api.dfns.io".into(),
        auth: ConnectionAuth::default(),
        allowed_permission_ids: allowed.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn request<'a>(
    labels: &'a BTreeMap<String, String>,
    permission: Option<&'a str>,
    is_pat: bool,
) -> Request<'a> {
    Request {
        namespace_labels: labels,
        permission_id: permission,
        is_pat,
        needs_create: true,
        deletion_policy: DeletionPolicy::Deactivate,
        lifetime_secs: None,
    }
}

#[test]
fn a_missing_connection_waits_with_its_name() {
    let labels = BTreeMap::new();
    let g = judge(
        None,
        "ClusterDfnsConnection/default",
        &request(&labels, None, false),
    );
    assert!(
        matches!(g, Guard::ConnectionUnavailable { reason: ConditionReason::ConnectionNotFound, ref message } if message.contains("ClusterDfnsConnection/default"))
    );
}

#[test]
fn a_role_outside_allowed_permission_ids_is_refused() {
    let (spec, status, labels) = (spec(&["pm-a"]), ready_status("User"), BTreeMap::new());
    let c = ConnectionFacts {
        display: "c".into(),
        spec: &spec,
        status: Some(&status),
        namespace_selector: None,
    };
    assert!(matches!(
        judge(Some(&c), "", &request(&labels, Some("pm-b"), false)),
        Guard::Refused {
            reason: ConditionReason::PermissionNotAllowed,
            ..
        }
    ));
    assert_eq!(
        judge(Some(&c), "", &request(&labels, Some("pm-a"), false)),
        Guard::Allowed
    );
}

#[test]
fn an_unscoped_pat_is_refused_unless_the_connection_allows_it() {
    let (mut spec, status, labels) = (spec(&[]), ready_status("User"), BTreeMap::new());
    let c = ConnectionFacts {
        display: "c".into(),
        spec: &spec,
        status: Some(&status),
        namespace_selector: None,
    };
    assert!(matches!(
        judge(Some(&c), "", &request(&labels, None, true)),
        Guard::Refused {
            reason: ConditionReason::UnscopedTokenNotAllowed,
            ..
        }
    ));
    // A service account without a role has no rights at all: always allowed.
    assert_eq!(
        judge(Some(&c), "", &request(&labels, None, false)),
        Guard::Allowed
    );
    spec.allow_unscoped_tokens = Some(true);
    let c = ConnectionFacts {
        display: "c".into(),
        spec: &spec,
        status: Some(&status),
        namespace_selector: None,
    };
    assert_eq!(
        judge(Some(&c), "", &request(&labels, None, true)),
        Guard::Allowed
    );
}

#[test]
fn a_token_connection_cannot_create_but_can_manage() {
    let (spec, status, labels) = (spec(&[]), ready_status("ServiceAccount"), BTreeMap::new());
    let c = ConnectionFacts {
        display: "c".into(),
        spec: &spec,
        status: Some(&status),
        namespace_selector: None,
    };
    assert!(matches!(
        judge(Some(&c), "", &request(&labels, None, false)),
        Guard::Refused {
            reason: ConditionReason::Forbidden,
            ..
        }
    ));
    let manage = Request {
        needs_create: false,
        ..request(&labels, None, false)
    };
    assert_eq!(judge(Some(&c), "", &manage), Guard::Allowed);
}

#[test]
fn a_connection_that_is_not_ready_makes_resources_wait() {
    let (spec, labels) = (spec(&[]), BTreeMap::new());
    let c = ConnectionFacts {
        display: "c".into(),
        spec: &spec,
        status: None,
        namespace_selector: None,
    };
    assert!(matches!(
        judge(Some(&c), "", &request(&labels, None, false)),
        Guard::ConnectionUnavailable {
            reason: ConditionReason::ConnectionNotReady,
            ..
        }
    ));
}

#[test]
fn the_namespace_selector_of_a_cluster_connection_is_enforced() {
    let (spec, status) = (spec(&[]), ready_status("User"));
    let selector = LabelSelector {
        match_labels: Some([("team".to_string(), "pay".to_string())].into()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".into(),
            operator: "NotIn".into(),
            values: Some(vec!["dev".into()]),
        }]),
    };
    let c = ConnectionFacts {
        display: "c".into(),
        spec: &spec,
        status: Some(&status),
        namespace_selector: Some(&selector),
    };
    let pay: BTreeMap<String, String> = [("team".to_string(), "pay".to_string())].into();
    assert_eq!(
        judge(Some(&c), "", &request(&pay, None, false)),
        Guard::Allowed
    );
    let other: BTreeMap<String, String> = [("team".to_string(), "ops".to_string())].into();
    assert!(matches!(
        judge(Some(&c), "", &request(&other, None, false)),
        Guard::Refused {
            reason: ConditionReason::ConnectionNotAllowed,
            ..
        }
    ));
    let dev: BTreeMap<String, String> = [
        ("team".to_string(), "pay".to_string()),
        ("env".to_string(), "dev".to_string()),
    ]
    .into();
    assert!(matches!(
        judge(Some(&c), "", &request(&dev, None, false)),
        Guard::Refused { .. }
    ));
}

fn limited(limits: crate::api::CredentialLimits) -> ConnectionSpec {
    ConnectionSpec {
        credential_limits: Some(limits),
        ..spec(&[])
    }
}

fn connection_facts<'a>(
    spec: &'a ConnectionSpec,
    status: &'a ConnectionStatus,
) -> ConnectionFacts<'a> {
    ConnectionFacts {
        display: "DfnsConnection ns/main".into(),
        spec,
        status: Some(status),
        namespace_selector: None,
    }
}

#[test]
fn a_deletion_policy_outside_the_connections_limits_is_refused_naming_the_allowed_ones() {
    let labels = BTreeMap::new();
    let spec = limited(crate::api::CredentialLimits {
        allowed_deletion_policies: Some(vec![DeletionPolicy::Deactivate, DeletionPolicy::Archive]),
        ..Default::default()
    });
    let status = ready_status("User");
    let c = connection_facts(&spec, &status);
    let retain = Request {
        deletion_policy: DeletionPolicy::Retain,
        // Refused for live credentials too, not only before a create.
        needs_create: false,
        ..request(&labels, None, false)
    };
    assert!(matches!(
        judge(Some(&c), "", &retain),
        Guard::Refused { reason: ConditionReason::DeletionPolicyNotAllowed, ref message }
            if message.contains("Retain") && message.contains("Deactivate, Archive")
    ));
    let archive = Request {
        deletion_policy: DeletionPolicy::Archive,
        ..request(&labels, None, false)
    };
    assert_eq!(judge(Some(&c), "", &archive), Guard::Allowed);
}

#[test]
fn a_validity_beyond_the_connections_maximum_is_refused_before_minting_only() {
    let labels = BTreeMap::new();
    let spec = limited(crate::api::CredentialLimits {
        max_days_valid: Some(30),
        ..Default::default()
    });
    let status = ready_status("User");
    let c = connection_facts(&spec, &status);
    let long = Request {
        lifetime_secs: Some(31 * 86_400),
        ..request(&labels, None, false)
    };
    assert!(matches!(
        judge(Some(&c), "", &long),
        Guard::Refused { reason: ConditionReason::LifetimeNotAllowed, ref message } if message.contains("30 days")
    ));
    let at_most = Request {
        lifetime_secs: Some(30 * 86_400),
        ..request(&labels, None, false)
    };
    assert_eq!(judge(Some(&c), "", &at_most), Guard::Allowed);
    // What is minted already keeps its validity; the cap is for what is minted from now on.
    let minted = Request {
        needs_create: false,
        ..long
    };
    assert_eq!(judge(Some(&c), "", &minted), Guard::Allowed);
}

#[test]
fn the_strictest_allowed_deletion_policy_replaces_a_refused_one() {
    use crate::api::CredentialLimits;
    let only = |allowed: Vec<DeletionPolicy>| CredentialLimits {
        allowed_deletion_policies: Some(allowed),
        ..Default::default()
    };
    let table = [
        (
            only(vec![DeletionPolicy::Deactivate]),
            DeletionPolicy::Retain,
            DeletionPolicy::Deactivate,
        ),
        (
            only(vec![DeletionPolicy::Deactivate, DeletionPolicy::Archive]),
            DeletionPolicy::Retain,
            DeletionPolicy::Archive,
        ),
        (
            only(vec![DeletionPolicy::Deactivate, DeletionPolicy::Archive]),
            DeletionPolicy::Deactivate,
            DeletionPolicy::Deactivate,
        ),
        (
            CredentialLimits::default(),
            DeletionPolicy::Retain,
            DeletionPolicy::Retain,
        ),
    ];
    for (limits, asked, applied) in table {
        assert_eq!(
            limits.deletion_policy_for(asked),
            applied,
            "{limits:?} {asked:?}"
        );
    }
    assert!(CredentialLimits::default().honours_skip_cleanup());
    assert!(
        !CredentialLimits {
            honour_skip_cleanup: Some(false),
            ..Default::default()
        }
        .honours_skip_cleanup()
    );
}
