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
