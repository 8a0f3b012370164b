//! The operator's Prometheus metrics (prefix `dfns_operator_`). Labels carry kinds, endpoints,
//! statuses and resource names only: never a token, key or anything read from a Secret.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::credentials::CredentialCollector;
use super::credentials::CredentialSource;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    /// `success`, `waiting` or `error`.
    result: &'static str,
}

/// How a reconcile ended, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileOutcome {
    Success,
    /// It gave its worker back to wait (a rate limit, the connection's share of workers, a
    /// shutdown, a deletion held for approval): not a failure, so no error is counted.
    Waiting(&'static str),
    /// It failed; the error's category.
    Failed(&'static str),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileErrorLabels {
    kind: String,
    /// The controller error's category, e.g. `dfns_forbidden`, `kubernetes`.
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DfnsRequestLabels {
    method: String,
    endpoint: String,
    /// The HTTP status code, or `timeout` / `transport_error` when no response came.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DfnsLatencyLabels {
    method: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeWriteLabels {
    /// `create`, `update`, `patch` or `delete`.
    verb: &'static str,
    /// `secrets`, `dfnsserviceaccounts/status`, `leases`, … (API group left out: names do not clash here).
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CredentialPolicyLabels {
    /// `DfnsServiceAccount` or `DfnsPersonalAccessToken`.
    kind: String,
    /// A condition reason (`CredentialNoLongerAllowed`, `UnaskedPermissions`) or, for credentials
    /// left active, `Retain` / `SkipCleanup`.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reconciles take milliseconds to tens of seconds (a create makes several Dfns calls).
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Dfns answers in milliseconds; timeouts are 30 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The metrics registry and the handles the controllers update.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    reconcile_waits: Family<ReconcileErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<KindLabels>,
    dfns_requests: Family<DfnsRequestLabels, Counter>,
    dfns_request_duration: HistogramFamily<DfnsLatencyLabels>,
    kube_writes: Family<KubeWriteLabels, Counter>,
    leader: Gauge,
    credentials: Arc<CredentialCollector>,
    deactivated_by_rule: Family<CredentialPolicyLabels, Counter>,
    left_active: Family<CredentialPolicyLabels, Counter>,
    rollout_restarts: Family<KindLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dfns_operator");
        let reconciles = Family::default();
        registry.register(
            "reconciles",
            "Reconciles finished, by kind and result",
            reconciles.clone(),
        );
        let reconcile_errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by kind and error category",
            reconcile_errors.clone(),
        );
        let reconcile_waits = Family::default();
        registry.register(
            "reconcile_waits",
            "Reconciles that gave their worker back to wait (not failures), by kind and category",
            reconcile_waits.clone(),
        );
        let reconcile_duration =
            HistogramFamily::new_with_constructor(reconcile_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconcile, by kind",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let dfns_requests = Family::default();
        registry.register(
            "dfns_requests",
            "HTTP requests to the Dfns API, by method, endpoint and status",
            dfns_requests.clone(),
        );
        let dfns_request_duration =
            HistogramFamily::new_with_constructor(request_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "dfns_request_duration",
            "Latency of Dfns API requests, by method and endpoint",
            prometheus_client::registry::Unit::Seconds,
            dfns_request_duration.clone(),
        );
        let kube_writes = Family::default();
        registry.register(
            "kubernetes_writes",
            "Writes to the Kubernetes API, by verb and resource",
            kube_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles",
            leader.clone(),
        );
        registry.register(
            "build",
            "Version of the running operator",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let credentials = Arc::new(CredentialCollector::default());
        registry.register_collector(Box::new(credentials.clone()));
        let deactivated_by_rule = Family::default();
        registry.register(
            "credentials_deactivated_by_rule",
            "Credentials the operator deactivated in Dfns because the connection's rules do not allow them, by kind and reason",
            deactivated_by_rule.clone(),
        );
        let left_active = Family::default();
        registry.register(
            "credentials_left_active",
            "Deleted resources whose credential was deliberately left active in Dfns, by kind and reason (Retain, SkipCleanup)",
            left_active.clone(),
        );
        let rollout_restarts = Family::default();
        registry.register(
            "rollout_restarts",
            "Workloads restarted after a credential's Secret switched (rolloutRestartTargets), by workload kind",
            rollout_restarts.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_waits,
            reconcile_duration,
            dfns_requests,
            dfns_request_duration,
            kube_writes,
            leader,
            credentials,
            deactivated_by_rule,
            left_active,
            rollout_restarts,
        }
    }

    /// A Deployment, StatefulSet or DaemonSet restarted after a Secret switched.
    pub fn rollout_restarted(&self, kind: &str) {
        self.rollout_restarts
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// A credential deactivated in Dfns because the connection's rules do not allow it.
    pub fn deactivated_by_rule(&self, kind: &str, reason: &'static str) {
        self.deactivated_by_rule
            .get_or_create(&CredentialPolicyLabels {
                kind: kind.to_owned(),
                reason,
            })
            .inc();
    }

    /// A deleted resource's credential left active in Dfns on purpose (`Retain`, `SkipCleanup`).
    pub fn left_active(&self, kind: &str, reason: &'static str) {
        self.left_active
            .get_or_create(&CredentialPolicyLabels {
                kind: kind.to_owned(),
                reason,
            })
            .inc();
    }

    /// One finished reconcile and how it ended.
    pub fn reconciled(&self, kind: &str, outcome: ReconcileOutcome, took: Duration) {
        let kind = kind.to_owned();
        let (result, by_category) = match outcome {
            ReconcileOutcome::Success => ("success", None),
            ReconcileOutcome::Waiting(category) => {
                ("waiting", Some((&self.reconcile_waits, category)))
            }
            ReconcileOutcome::Failed(category) => {
                ("error", Some((&self.reconcile_errors, category)))
            }
        };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.clone(),
                result,
            })
            .inc();
        if let Some((family, category)) = by_category {
            family
                .get_or_create(&ReconcileErrorLabels {
                    kind: kind.clone(),
                    category,
                })
                .inc();
        }
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// One Dfns HTTP exchange. `path` is normalized here (ids and queries removed).
    pub fn dfns_request(&self, method: &str, path: &str, status: &str, took: Duration) {
        let endpoint = super::endpoint::endpoint_label(path);
        let labels = DfnsRequestLabels {
            method: method.to_owned(),
            endpoint: endpoint.clone(),
            status: status.to_owned(),
        };
        self.dfns_requests.get_or_create(&labels).inc();
        self.dfns_request_duration
            .get_or_create(&DfnsLatencyLabels {
                method: method.to_owned(),
                endpoint,
            })
            .observe(took.as_secs_f64());
    }

    pub fn kube_write(&self, verb: &'static str, resource: String) {
        self.kube_writes
            .get_or_create(&KubeWriteLabels { verb, resource })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Adds a source of per-credential gauges (a controller's cache), read at each scrape.
    pub fn add_credential_source(&self, source: Box<dyn CredentialSource>) {
        self.credentials.add(source);
    }

    /// Drops the credential sources, when the controllers that fed them stop.
    pub fn clear_credential_sources(&self) {
        self.credentials.clear();
    }

    /// The text exposition (OpenMetrics) of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("metrics encode into a String");
        text
    }

    /// Total reconciles of `kind` so far (any result); for tests and logs.
    pub fn reconcile_count(&self, kind: &str) -> u64 {
        ["success", "error"]
            .into_iter()
            .filter_map(|result| {
                self.reconciles
                    .get(&ReconcileLabels {
                        kind: kind.to_owned(),
                        result,
                    })
                    .map(|c| c.get())
            })
            .sum()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_kind_and_result_and_waits_are_not_errors() {
        let metrics = Metrics::new();
        metrics.reconciled(
            "DfnsServiceAccount",
            ReconcileOutcome::Success,
            Duration::from_millis(20),
        );
        metrics.reconciled(
            "DfnsServiceAccount",
            ReconcileOutcome::Failed("dfns_forbidden"),
            Duration::from_millis(3),
        );
        metrics.reconciled(
            "DfnsServiceAccount",
            ReconcileOutcome::Waiting("dfns_throttled"),
            Duration::from_millis(1),
        );
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"dfns_operator_reconciles_total{kind="DfnsServiceAccount",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"dfns_operator_reconciles_total{kind="DfnsServiceAccount",result="error"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"dfns_operator_reconcile_errors_total{kind="DfnsServiceAccount",category="dfns_forbidden"} 1"#), "{text}");
        // A wait is counted as such, never as an error.
        assert!(
            text.contains(
                r#"dfns_operator_reconciles_total{kind="DfnsServiceAccount",result="waiting"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"dfns_operator_reconcile_waits_total{kind="DfnsServiceAccount",category="dfns_throttled"} 1"#), "{text}");
        assert!(!text.contains(r#"dfns_operator_reconcile_errors_total{kind="DfnsServiceAccount",category="dfns_throttled"}"#), "{text}");
        assert!(
            text.contains(
                r#"dfns_operator_reconcile_duration_seconds_count{kind="DfnsServiceAccount"} 3"#
            ),
            "{text}"
        );
        assert_eq!(metrics.reconcile_count("DfnsServiceAccount"), 2);
        assert_eq!(metrics.reconcile_count("DfnsConnection"), 0);
    }

    #[test]
    fn dfns_requests_are_labelled_by_endpoint_without_ids() {
        let metrics = Metrics::new();
        metrics.dfns_request(
            "PUT",
            "/auth/service-accounts/us-2ba4q-gftpk-8s7qp0i2b6qgd28b/deactivate",
            "200",
            Duration::from_millis(7),
        );
        let text = metrics.encode();
        assert!(
            text.contains(r#"dfns_operator_dfns_requests_total{method="PUT",endpoint="/auth/service-accounts/{id}/deactivate",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("dfns_operator_dfns_request_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(!text.contains("us-2ba4q"), "no object ids in labels");
    }

    #[test]
    fn leader_and_build_info_are_exported() {
        let metrics = Metrics::new();
        metrics.set_leader(true);
        metrics.kube_write("create", "secrets".into());
        let text = metrics.encode();
        assert!(text.contains("dfns_operator_leader 1"), "{text}");
        assert!(
            text.contains(
                r#"dfns_operator_kubernetes_writes_total{verb="create",resource="secrets"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(concat!(
                r#"dfns_operator_build_info{version=""#,
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }
}
