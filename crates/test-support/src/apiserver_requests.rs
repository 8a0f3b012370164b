//! The operator's Kubernetes API requests, counted by the API server itself (for the benchmark).
//!
//! `apiserver_request_total` (kube-apiserver's `/metrics`) counts every request by verb, resource
//! and subresource, but not by client. The operator's share is what is left after taking off
//! - the bench's own requests, which it counts on its side with [`BenchRequestCounter`] (a layer
//!   on the bench's one client), classified exactly as the API server classifies them;
//! - kube-controller-manager's requests, from the API server's audit log, which the local
//!   control plane keeps for that user's requests on these resources only
//!   (`tests/controlplane/cluster-up.sh`): its garbage collector looks up the owner of each new
//!   Secret whose owner its cache does not show yet, reads that grow with the operator's creates
//!   and that no baseline rate can take off;
//! - other clients (the API server's loopback, anything else), whose rate on the same resources
//!   is measured before the operator starts, once they are quiet (an earlier run's namespace may
//!   still be torn down), and taken off pro rata.
//!
//! Only the resources the operator uses are counted ([`OPERATOR_RESOURCES`]); WATCH requests are
//! listed apart: the API server counts a watch when it ends, not when it starts, so a watch's
//! count depends on when it times out rather than on the work done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request};
use serde_json::{Value, json};
use tower::{Layer, Service};

/// What the operator reads or writes (subresources such as `dfnsserviceaccounts/status` included).
const OPERATOR_RESOURCES: [&str; 7] = [
    "dfnsserviceaccounts",
    "dfnspersonalaccesstokens",
    "dfnsconnections",
    "clusterdfnsconnections",
    "secrets",
    "events",
    "namespaces",
];

const READ_VERBS: [&str; 2] = ["GET", "LIST"];

/// The user kube-controller-manager authenticates as.
const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

/// Request counts by `"VERB resource[/subresource]"`.
pub type Counts = BTreeMap<String, f64>;

/// Sums `apiserver_request_total` over the labels that do not matter here (code, scope, version,
/// component, dry run), keeping verb, resource and subresource.
pub fn parse_request_totals(metrics: &str) -> Counts {
    let mut counts = Counts::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| label_value(labels, name).unwrap_or_default();
        let resource = label("resource");
        if !OPERATOR_RESOURCES.contains(&resource.as_str()) {
            continue;
        }
        let subresource = label("subresource");
        let key = if subresource.is_empty() {
            format!("{} {resource}", label("verb"))
        } else {
            format!("{} {resource}/{subresource}", label("verb"))
        };
        *counts.entry(key).or_default() += value;
    }
    counts
}

/// The value of `name="..."` in a Prometheus label set (these metrics' values hold no commas).
fn label_value(labels: &str, name: &str) -> Option<String> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// kube-controller-manager's completed requests on the operator's resources, by the API server's
/// verb and `resource[/subresource]`, from its audit log (JSON lines; missing: none).
pub fn controller_manager_counts(audit_log: &Path) -> Counts {
    let mut counts = Counts::new();
    let Ok(text) = std::fs::read_to_string(audit_log) else {
        return counts;
    };
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["stage"] != "ResponseComplete" || event["user"]["username"] != CONTROLLER_MANAGER {
            continue;
        }
        let Some(resource) = event["objectRef"]["resource"].as_str() else {
            continue;
        };
        if !OPERATOR_RESOURCES.contains(&resource) {
            continue;
        }
        let verb = match event["verb"].as_str() {
            Some("get") => "GET",
            Some("list") => "LIST",
            Some("watch") => "WATCH",
            Some("create") => "POST",
            Some("update") => "PUT",
            Some("patch") => "PATCH",
            Some("delete") => "DELETE",
            Some("deletecollection") => "DELETECOLLECTION",
            _ => continue,
        };
        let key = match event["objectRef"]["subresource"].as_str() {
            Some(sub) if !sub.is_empty() => format!("{verb} {resource}/{sub}"),
            _ => format!("{verb} {resource}"),
        };
        *counts.entry(key).or_default() += 1.0;
    }
    counts
}

pub async fn scrape(client: &kube::Client) -> Result<Counts, String> {
    let request = Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("GET /metrics from kube-apiserver: {e}"))?;
    Ok(parse_request_totals(&text))
}

/// The bench's own requests, as the API server would count them.
#[derive(Clone, Default)]
pub struct BenchRequestCounter {
    counts: Arc<Mutex<Counts>>,
    /// The API server's audit log of kube-controller-manager's requests, when it keeps one.
    controller_manager_audit: Option<PathBuf>,
}

impl BenchRequestCounter {
    pub fn snapshot(&self) -> Counts {
        self.counts.lock().expect("counter lock").clone()
    }

    /// Also takes off kube-controller-manager's requests, as `audit_log` records them.
    pub fn without_controller_manager_in(mut self, audit_log: PathBuf) -> Self {
        self.controller_manager_audit = Some(audit_log);
        self
    }
}

impl<S> Layer<S> for BenchRequestCounter {
    type Service = CountedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountedService {
            inner,
            counts: self.counts.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CountedService<S> {
    inner: S,
    counts: Arc<Mutex<Counts>>,
}

impl<S, B> Service<Request<B>> for CountedService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(key) = classify(
            request.method(),
            request.uri().path(),
            request.uri().query().unwrap_or_default(),
            content_type,
        ) && OPERATOR_RESOURCES.contains(&key.1.split('/').next().unwrap_or_default())
        {
            *self
                .counts
                .lock()
                .expect("counter lock")
                .entry(format!("{} {}", key.0, key.1))
                .or_default() += 1.0;
        }
        self.inner.call(request)
    }
}

/// The API server's verb and `resource[/subresource]` for a request (`None` for non-resource
/// paths such as `/metrics`).
fn classify(
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
) -> Option<(&'static str, String)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..)?,
        Some(&"apis") => segments.get(3..)?,
        _ => return None,
    };
    let rest: Vec<&str> = match rest {
        ["namespaces", _, resource, tail @ ..] => [&[*resource][..], tail].concat(),
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [resource] => ((*resource).to_owned(), false),
        [resource, _] => ((*resource).to_owned(), true),
        [resource, _, sub, ..] => (format!("{resource}/{sub}"), true),
        [] => return None,
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method.clone(), named) {
        (Method::GET, _) if watch => "WATCH",
        (Method::GET, false) => "LIST",
        (Method::GET, true) => "GET",
        // kube-apiserver's verb label: the HTTP method, except LIST, WATCH and APPLY.
        (Method::POST, _) => "POST",
        (Method::PUT, _) => "PUT",
        (Method::PATCH, _) if content_type.starts_with("application/apply-patch") => "APPLY",
        (Method::PATCH, _) => "PATCH",
        (Method::DELETE, false) => "DELETECOLLECTION",
        (Method::DELETE, true) => "DELETE",
        _ => return None,
    };
    Some((verb, resource))
}

/// A kube client whose requests are counted, and the counter.
pub fn counted_client(config: kube::Config) -> Result<(kube::Client, BenchRequestCounter), String> {
    let counter = BenchRequestCounter::default();
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("kube client: {e}"))?
        .with_layer(&counter)
        .build();
    Ok((client, counter))
}

/// Requests per second by other clients on the operator's resources, before the operator runs.
#[derive(Clone, Debug, Default)]
pub struct Background {
    per_second: Counts,
    window: Duration,
    /// Until other clients were quiet.
    waited: Duration,
}

/// Requests by other clients in one window that still count as quiet.
const QUIET_REQUESTS: f64 = 2.0;
/// The longest the bench waits for quiet before taking the rate as it is.
const QUIET_WAIT_LIMIT: Duration = Duration::from_secs(180);

impl Background {
    /// Watches the API server's counts in windows of `window` while only the bench's watches are
    /// open, until a window in which other clients sent at most [`QUIET_REQUESTS`] requests (or
    /// [`QUIET_WAIT_LIMIT`] has passed): a namespace still being torn down by an earlier run
    /// (kube-controller-manager's garbage collector reads every dependent) must not be taken for
    /// a steady rate and subtracted over the whole scenario.
    pub async fn measure(
        client: &kube::Client,
        bench: &BenchRequestCounter,
        window: Duration,
    ) -> Result<Self, String> {
        let started = Instant::now();
        loop {
            let start = Snapshot::take(client, bench).await?;
            tokio::time::sleep(window).await;
            let end = Snapshot::take(client, bench).await?;
            let elapsed = end.at.duration_since(start.at).as_secs_f64();
            let seen = others(&start, &end);
            let requests: f64 = seen
                .iter()
                .filter(|(key, _)| !key.starts_with("WATCH "))
                .map(|(_, n)| n)
                .sum();
            if requests <= QUIET_REQUESTS || started.elapsed() >= QUIET_WAIT_LIMIT {
                let per_second = seen.into_iter().map(|(k, v)| (k, v / elapsed)).collect();
                return Ok(Self {
                    per_second,
                    window,
                    waited: started.elapsed(),
                });
            }
            eprintln!(
                "bench: waiting for other clients to go quiet ({requests} requests in {window:?})"
            );
        }
    }
}

/// The API server's counts and the bench's own, at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    apiserver: Counts,
    bench: Counts,
    controller_manager: Counts,
    at: Instant,
}

impl Snapshot {
    pub async fn take(client: &kube::Client, bench: &BenchRequestCounter) -> Result<Self, String> {
        // The bench's count first: the scrape itself is not a resource request, but any request
        // of the bench in flight lands in both or, at worst, in the API server's count only.
        let bench_counts = bench.snapshot();
        // Read before the scrape: a request in between is left to the operator, never taken
        // off twice.
        let controller_manager = bench
            .controller_manager_audit
            .as_deref()
            .map(controller_manager_counts)
            .unwrap_or_default();
        let apiserver = scrape(client).await?;
        Ok(Self {
            apiserver,
            bench: bench_counts,
            controller_manager,
            at: Instant::now(),
        })
    }
}

/// How much `key` grew from `start` to `end`.
fn delta(start: &Counts, end: &Counts, key: &str) -> f64 {
    end.get(key).copied().unwrap_or_default() - start.get(key).copied().unwrap_or_default()
}

/// What the API server counted between two snapshots that neither the bench nor
/// kube-controller-manager sent.
fn others(start: &Snapshot, end: &Snapshot) -> Counts {
    let mut counts = Counts::new();
    for (key, total) in &end.apiserver {
        let served = total - start.apiserver.get(key).copied().unwrap_or_default();
        let by_bench = delta(&start.bench, &end.bench, key);
        let by_controller_manager = delta(&start.controller_manager, &end.controller_manager, key);
        let left = served - by_bench - by_controller_manager;
        if left != 0.0 {
            counts.insert(key.clone(), left);
        }
    }
    counts
}

/// The operator's requests between two snapshots.
#[derive(Clone, Debug)]
pub struct OperatorRequests {
    pub by_verb_and_resource: Counts,
    pub background_subtracted: f64,
    /// kube-controller-manager's requests taken off, from the audit log.
    pub controller_manager_subtracted: Counts,
    pub seconds: f64,
}

impl OperatorRequests {
    pub fn between(start: &Snapshot, end: &Snapshot, background: &Background) -> Self {
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        let mut by_verb_and_resource = Counts::new();
        let mut background_subtracted = 0.0;
        for (key, count) in others(start, end) {
            let expected_background =
                background.per_second.get(&key).copied().unwrap_or_default() * seconds;
            let operator = (count - expected_background).max(0.0).round();
            background_subtracted += count - operator;
            if operator > 0.0 {
                by_verb_and_resource.insert(key, operator);
            }
        }
        let controller_manager_subtracted = end
            .controller_manager
            .keys()
            .map(|key| {
                let n = delta(&start.controller_manager, &end.controller_manager, key);
                (key.clone(), n)
            })
            .filter(|(_, n)| *n != 0.0)
            .collect();
        Self {
            by_verb_and_resource,
            background_subtracted,
            controller_manager_subtracted,
            seconds,
        }
    }

    fn sum(&self, keep: impl Fn(&str) -> bool) -> f64 {
        self.by_verb_and_resource
            .iter()
            .filter(|(key, _)| keep(key.split(' ').next().unwrap_or_default()))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request but watches.
    pub fn requests(&self) -> f64 {
        self.sum(|verb| verb != "WATCH")
    }

    /// GET and LIST.
    pub fn reads(&self) -> f64 {
        self.sum(|verb| READ_VERBS.contains(&verb))
    }

    /// May come out negative over a short window: the bench counts its own watches when they
    /// start, the API server when they end.
    pub fn watches(&self) -> f64 {
        self.sum(|verb| verb == "WATCH")
    }

    pub fn to_json(&self, background: &Background) -> Value {
        json!({
            "by_verb_and_resource": self.by_verb_and_resource,
            "requests_excluding_watches": self.requests(),
            "reads": self.reads(),
            "watch_requests": self.watches(),
            "window_seconds": (self.seconds * 10.0).round() / 10.0,
            "controller_manager_subtracted": self.controller_manager_subtracted,
            "other_clients_subtracted": self.background_subtracted.round(),
            "other_clients_baseline_per_second": background.per_second,
            "other_clients_baseline_window_seconds": background.window.as_secs(),
            "other_clients_waited_for_quiet_seconds": background.waited.as_secs(),
            "method": "kube-apiserver apiserver_request_total deltas for the operator's resources, minus the bench's own requests (counted client-side, classified as the API server does), minus kube-controller-manager's (its garbage collector's owner lookups; from the API server's audit log), minus other clients' rate measured before the operator started; WATCH is counted by the API server when a watch ends and is listed apart",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_managers_requests_on_the_operators_resources_come_from_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let event = |stage: &str, user: &str, verb: &str, resource: &str| {
            json!({
                "stage": stage, "verb": verb, "user": { "username": user },
                "objectRef": { "resource": resource, "namespace": "n", "name": "sa-1" },
            })
            .to_string()
        };
        let done = |user: &str, verb: &str, resource: &str| {
            event("ResponseComplete", user, verb, resource)
        };
        let lines = [
            event(
                "RequestReceived",
                CONTROLLER_MANAGER,
                "get",
                "dfnsserviceaccounts",
            ),
            done(CONTROLLER_MANAGER, "get", "dfnsserviceaccounts"),
            done(CONTROLLER_MANAGER, "get", "dfnsserviceaccounts"),
            done(CONTROLLER_MANAGER, "patch", "secrets"),
            done("dfns-operator", "get", "dfnsserviceaccounts"),
            done(CONTROLLER_MANAGER, "get", "leases"),
            "not json".to_owned(),
        ];
        std::fs::write(&log, lines.join("\n")).unwrap();
        let counts = controller_manager_counts(&log);
        assert_eq!(counts.get("GET dfnsserviceaccounts"), Some(&2.0));
        assert_eq!(counts.get("PATCH secrets"), Some(&1.0));
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(controller_manager_counts(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn totals_are_summed_over_codes_and_kept_by_verb_and_resource() {
        let text = r#"
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 7
apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",dry_run="",group="dfns.io",resource="dfnsserviceaccounts",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 99
"#;
        let counts = parse_request_totals(text);
        assert_eq!(counts.get("GET secrets"), Some(&10.0));
        assert_eq!(counts.get("APPLY dfnsserviceaccounts/status"), Some(&2.0));
        assert_eq!(counts.len(), 2, "leases are not the operator's: {counts:?}");
    }

    #[test]
    fn requests_are_classified_as_the_api_server_does() {
        let c = |m: Method, p: &str, q: &str, ct: &str| {
            classify(&m, p, q, ct).map(|(v, r)| format!("{v} {r}"))
        };
        let ns = "/api/v1/namespaces/b";
        assert_eq!(
            c(Method::GET, &format!("{ns}/secrets/x"), "", "").as_deref(),
            Some("GET secrets")
        );
        assert_eq!(
            c(Method::GET, &format!("{ns}/secrets"), "labelSelector=a", "").as_deref(),
            Some("LIST secrets")
        );
        assert_eq!(
            c(Method::GET, &format!("{ns}/secrets"), "watch=true&x=1", "").as_deref(),
            Some("WATCH secrets")
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/dfns.io/v1alpha1/namespaces/b/dfnsserviceaccounts/sa-1/status",
                "",
                "application/apply-patch+yaml"
            )
            .as_deref(),
            Some("APPLY dfnsserviceaccounts/status")
        );
        assert_eq!(
            c(
                Method::PATCH,
                &format!("{ns}/secrets/x"),
                "",
                "application/merge-patch+json"
            )
            .as_deref(),
            Some("PATCH secrets")
        );
        assert_eq!(
            c(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/b/events",
                "",
                ""
            )
            .as_deref(),
            Some("POST events")
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/b", "", "").as_deref(),
            Some("DELETE namespaces")
        );
        assert_eq!(c(Method::GET, "/metrics", "", ""), None);
    }

    #[test]
    fn the_operator_share_excludes_the_bench_the_controller_manager_and_the_background() {
        let at = Instant::now();
        let counts = |pairs: &[(&str, f64)]| -> Counts {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let snap = |api: &[(&str, f64)], bench: &[(&str, f64)], cm: &[(&str, f64)], at| Snapshot {
            apiserver: counts(api),
            bench: counts(bench),
            controller_manager: counts(cm),
            at,
        };
        let start = snap(
            &[
                ("GET secrets", 100.0),
                ("APPLY dfnsserviceaccounts", 5.0),
                ("GET dfnsserviceaccounts", 3.0),
            ],
            &[("APPLY dfnsserviceaccounts", 5.0)],
            &[("GET dfnsserviceaccounts", 3.0)],
            at,
        );
        let end = snap(
            &[
                ("GET secrets", 160.0),
                ("APPLY dfnsserviceaccounts", 15.0),
                ("LIST events", 2.0),
                ("GET dfnsserviceaccounts", 10.0),
            ],
            &[("APPLY dfnsserviceaccounts", 15.0)],
            &[("GET dfnsserviceaccounts", 10.0)],
            at + Duration::from_secs(10),
        );
        let background = Background {
            per_second: [("GET secrets".to_owned(), 1.0)].into(),
            window: Duration::from_secs(5),
            waited: Duration::ZERO,
        };
        let operator = OperatorRequests::between(&start, &end, &background);
        // 60 GETs served, 10 of them expected from other clients in 10 s; the bench's applies are
        // its own; the 7 owner lookups are the garbage collector's.
        assert_eq!(
            operator.by_verb_and_resource.get("GET secrets"),
            Some(&50.0)
        );
        assert_eq!(
            operator
                .by_verb_and_resource
                .get("APPLY dfnsserviceaccounts"),
            None
        );
        assert_eq!(
            operator.by_verb_and_resource.get("GET dfnsserviceaccounts"),
            None
        );
        assert_eq!(
            operator
                .controller_manager_subtracted
                .get("GET dfnsserviceaccounts"),
            Some(&7.0)
        );
        assert_eq!(operator.reads(), 52.0);
        assert_eq!(operator.requests(), 52.0);
    }
}
