//! Per-credential gauges, computed at scrape time from the controllers' caches: how many
//! credentials are in each state, and when each one's token expires. Nothing to keep in sync, and
//! deleted resources disappear from the output by themselves.

use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;

/// A credential's state as kstatus sees it, from its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialState {
    Ready,
    /// Being created, updated or deleted.
    Reconciling,
    /// Waiting for a person (kstatus Failed).
    Stalled,
    /// `Ready=False` for another reason, e.g. deactivated on purpose or in Dfns.
    NotReady,
    /// Not reconciled yet.
    Unknown,
}

impl CredentialState {
    pub const ALL: [Self; 5] = [
        Self::Ready,
        Self::Reconciling,
        Self::Stalled,
        Self::NotReady,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Reconciling => "reconciling",
            Self::Stalled => "stalled",
            Self::NotReady => "not_ready",
            Self::Unknown => "unknown",
        }
    }

    /// kstatus order: Stalled, then Reconciling, then Ready decide.
    pub fn from_conditions(conditions: &[Condition]) -> Self {
        let is_true = |type_: &str| {
            conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
        };
        let ready = conditions.iter().find(|c| c.type_ == "Ready");
        if is_true("Stalled") {
            Self::Stalled
        } else if is_true("Reconciling") {
            Self::Reconciling
        } else {
            match ready.map(|c| c.status.as_str()) {
                Some("True") => Self::Ready,
                Some("False") => Self::NotReady,
                _ => Self::Unknown,
            }
        }
    }
}

/// What the gauges need of one credential resource: no ids, no secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSample {
    pub namespace: String,
    pub name: String,
    pub state: CredentialState,
    /// The access token's expiry (Unix seconds), when known.
    pub expires_at: Option<i64>,
    /// The next renewal (Unix seconds), when known.
    pub renews_at: Option<i64>,
}

/// One kind's resources as currently cached (a controller's reflector store).
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> &'static str;
    fn samples(&self) -> Vec<CredentialSample>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    kind: &'static str,
    namespace: String,
    name: String,
}

#[derive(Debug, Default)]
pub struct CredentialCollector {
    sources: Mutex<Vec<Box<dyn CredentialSource>>>,
}

impl CredentialCollector {
    pub fn add(&self, source: Box<dyn CredentialSource>) {
        self.sources
            .lock()
            .expect("credential sources lock")
            .push(source);
    }

    pub fn clear(&self) {
        self.sources
            .lock()
            .expect("credential sources lock")
            .clear();
    }
}

impl Collector for CredentialCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let states = Family::<StateLabels, Gauge>::default();
        let expiry = Family::<ResourceLabels, Gauge>::default();
        let renewal = Family::<ResourceLabels, Gauge>::default();
        let sources = self.sources.lock().expect("credential sources lock");
        if sources.is_empty() {
            // A standby replica caches nothing; it reports nothing rather than zeros.
            return Ok(());
        }
        for source in sources.iter() {
            let kind = source.kind();
            // Every state appears, at zero if empty, so alerts on a state need no `absent()`.
            for state in CredentialState::ALL {
                drop(states.get_or_create(&StateLabels {
                    kind,
                    state: state.as_str(),
                }));
            }
            for sample in source.samples() {
                states
                    .get_or_create(&StateLabels {
                        kind,
                        state: sample.state.as_str(),
                    })
                    .inc();
                let labels = ResourceLabels {
                    kind,
                    namespace: sample.namespace,
                    name: sample.name,
                };
                if let Some(expires_at) = sample.expires_at {
                    expiry.get_or_create(&labels).set(expires_at);
                }
                if let Some(renews_at) = sample.renews_at {
                    renewal.get_or_create(&labels).set(renews_at);
                }
            }
        }
        drop(sources);
        states.encode(encoder.encode_descriptor(
            "credentials",
            "Credential resources by kind and state (ready, reconciling, stalled, not_ready, unknown)",
            None,
            states.metric_type(),
        )?)?;
        expiry.encode(encoder.encode_descriptor(
            "credential_expiry_timestamp",
            "When each credential's access token expires (Unix time)",
            Some(&Unit::Seconds),
            expiry.metric_type(),
        )?)?;
        renewal.encode(encoder.encode_descriptor(
            "credential_renewal_timestamp",
            "When each credential is renewed next (Unix time)",
            Some(&Unit::Seconds),
            renewal.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Test".into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn state_follows_kstatus_precedence() {
        assert_eq!(
            CredentialState::from_conditions(&[]),
            CredentialState::Unknown
        );
        assert_eq!(
            CredentialState::from_conditions(&[condition("Ready", "True")]),
            CredentialState::Ready
        );
        assert_eq!(
            CredentialState::from_conditions(&[condition("Ready", "False")]),
            CredentialState::NotReady
        );
        let reconciling = [
            condition("Ready", "False"),
            condition("Reconciling", "True"),
        ];
        assert_eq!(
            CredentialState::from_conditions(&reconciling),
            CredentialState::Reconciling
        );
        let stalled = [
            condition("Ready", "False"),
            condition("Reconciling", "True"),
            condition("Stalled", "True"),
        ];
        assert_eq!(
            CredentialState::from_conditions(&stalled),
            CredentialState::Stalled
        );
    }

    #[derive(Debug)]
    struct Fixed(Vec<CredentialSample>);

    impl CredentialSource for Fixed {
        fn kind(&self) -> &'static str {
            "DfnsServiceAccount"
        }
        fn samples(&self) -> Vec<CredentialSample> {
            self.0.clone()
        }
    }

    #[test]
    fn gauges_count_states_and_export_expiry_per_resource() {
        let metrics = Metrics::new();
        assert!(
            !metrics.encode().contains("dfns_operator_credentials"),
            "no source, no gauges"
        );
        let sample = |name: &str, state, expires_at: Option<i64>| CredentialSample {
            namespace: "pay".into(),
            name: name.into(),
            state,
            expires_at,
            renews_at: expires_at.map(|e| e - 100),
        };
        metrics.add_credential_source(Box::new(Fixed(vec![
            sample("a", CredentialState::Ready, Some(1_900_000_000)),
            sample("b", CredentialState::Ready, None),
            sample("c", CredentialState::Stalled, None),
        ])));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"dfns_operator_credentials{kind="DfnsServiceAccount",state="ready"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"dfns_operator_credentials{kind="DfnsServiceAccount",state="stalled"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"dfns_operator_credentials{kind="DfnsServiceAccount",state="reconciling"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"dfns_operator_credential_expiry_timestamp_seconds{kind="DfnsServiceAccount",namespace="pay",name="a"} 1900000000"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dfns_operator_credential_renewal_timestamp_seconds{kind="DfnsServiceAccount",namespace="pay",name="a"} 1899999900"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"name="b""#),
            "no expiry series without a known expiry"
        );
    }
}
