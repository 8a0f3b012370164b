//! `dfns-operator run`: the controller process, with its metrics and probes server and leader
//! election.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dfns_client::RequestObserver;

use super::Error;
use crate::controller::allowed_hosts::{AllowedHosts, DEFAULT_ALLOWED_API_HOSTS};
use crate::controller::leader::{LeaseConfig, default_identity};
use crate::controller::restart_targets::RolloutRestarts;
use crate::controller::{ControllerConfig, RunOptions};
use crate::telemetry::{Health, KubeWriteCounterLayer, Metrics};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Namespace the operator runs in; the Secrets of ClusterDfnsConnections live here.
    #[arg(long, env = "POD_NAMESPACE", default_value = "dfns-system")]
    pub namespace: String,
    /// How often an idle resource is compared with Dfns (one list per connection and kind), e.g.
    /// `10m`, `90s`, `1h`. Jittered by up to 10%.
    #[arg(long, env = "DFNS_OPERATOR_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// How often a write that Dfns holds for a policy approval (HTTP 202) is looked at again
    /// (one read of the approval); the write itself is never sent again while it is pending.
    #[arg(long, env = "DFNS_OPERATOR_APPROVAL_CHECK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub approval_check_interval: Duration,
    /// Reconciles running at once, per kind.
    #[arg(long, env = "DFNS_OPERATOR_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "DFNS_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Serve only the ClusterDfnsConnections with these labels (a label selector such as
    /// `dfns.io/shard=a`), so several operators can split them; default: all.
    #[arg(long, env = "DFNS_OPERATOR_CLUSTER_CONNECTION_SELECTOR")]
    pub cluster_connection_selector: Option<String>,
    /// Secret in --namespace holding the key that seals the Dfns ids the operator records in
    /// status (created on first start; back it up with the operator's other state).
    #[arg(
        long,
        env = "DFNS_OPERATOR_SEAL_KEY_SECRET",
        default_value = "dfns-operator-seal-key"
    )]
    pub seal_key_secret: String,
    /// API hosts a connection's apiUrl may name, comma-separated: `host` (any port) or
    /// `host:port`, case-insensitive; `*.example.com` matches any subdomain of example.com. A
    /// connection naming another host goes Stalled (ApiHostNotAllowed) and that host is sent
    /// nothing.
    #[arg(
        long,
        env = "DFNS_OPERATOR_ALLOWED_API_HOSTS",
        default_value = DEFAULT_ALLOWED_API_HOSTS,
        value_parser = AllowedHosts::parse
    )]
    pub allowed_api_hosts: AllowedHosts,
    /// Restart a credential's rolloutRestartTargets after its Secret switched (needs get and
    /// patch on apps deployments, statefulsets and daemonsets). When off, resources naming
    /// targets get a Warning Event instead.
    #[arg(long, env = "DFNS_OPERATOR_ROLLOUT_RESTARTS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rollout_restarts: bool,
    /// Switches within this window after the first make one restart per target (e.g. several
    /// Secrets a Deployment loads switching together); the restart comes at the window's end.
    #[arg(long, env = "DFNS_OPERATOR_RESTART_DEBOUNCE", default_value = "10s", value_parser = parse_duration)]
    pub restart_debounce: Duration,
    /// Largest answer read from a Dfns list call, in bytes. Dfns lists every service account
    /// (or PAT) of the organization in one answer, about 850 bytes each; the default (16 MiB)
    /// holds 10,000 at twice that. Other answers keep a 4 MiB cap.
    #[arg(long, env = "DFNS_OPERATOR_MAX_LIST_RESPONSE_BYTES", default_value_t = dfns_client::DEFAULT_MAX_LIST_RESPONSE_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4 * 1024 * 1024..=1024 * 1024 * 1024))]
    pub max_list_response_bytes: usize,
    /// Log format.
    #[arg(long, env = "DFNS_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Path of a kubeconfig file; default: in-cluster config, then $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Address of the HTTP server for /metrics, /healthz and /readyz, e.g. `0.0.0.0:8080` (what
    /// the Helm chart sets). Off when not given, so local runs never fight over a port.
    #[arg(long, env = "DFNS_OPERATOR_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
}

/// Leader election: with several replicas, only the holder of a Lease reconciles.
#[derive(Debug, clap::Args)]
pub struct LeaderElectionArgs {
    /// Reconcile only while holding the Lease; needed with more than one replica (the Helm chart
    /// turns it on). Off by default for a single local process.
    #[arg(long = "leader-election", env = "DFNS_OPERATOR_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enabled: bool,
    /// Name of the Lease.
    #[arg(
        long = "leader-election-lease-name",
        env = "DFNS_OPERATOR_LEASE_NAME",
        default_value = "dfns-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (default: --namespace).
    #[arg(
        long = "leader-election-namespace",
        env = "DFNS_OPERATOR_LEASE_NAMESPACE"
    )]
    pub lease_namespace: Option<String>,
    /// How long a standby waits after the leader's last renewal before taking over.
    #[arg(long = "leader-election-lease-duration", env = "DFNS_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps failing to renew before it stops reconciling (< lease duration).
    #[arg(long = "leader-election-renew-deadline", env = "DFNS_OPERATOR_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew the Lease.
    #[arg(long = "leader-election-retry-period", env = "DFNS_OPERATOR_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

impl LeaderElectionArgs {
    fn lease(&self, operator_namespace: &str) -> Option<LeaseConfig> {
        self.enabled.then(|| LeaseConfig {
            namespace: self
                .lease_namespace
                .clone()
                .unwrap_or_else(|| operator_namespace.to_owned()),
            name: self.lease_name.clone(),
            identity: default_identity(),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `90s`, `10m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = number
        .parse()
        .map_err(|_| Error::NotADuration(text.to_owned()))?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => {
            return Err(Error::UnknownDurationUnit {
                text: text.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    if seconds == 0 {
        return Err(Error::ZeroDuration);
    }
    Ok(Duration::from_secs(seconds))
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,hyper=warn,reqwest=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests running several commands in one process) keeps the first subscriber.
    drop(result);
}

pub async fn run(args: RunArgs) -> i32 {
    init_logging(args.log_format);
    dfns_client::install_crypto_provider();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let dfns_metrics = metrics.clone();
    let request_observer = RequestObserver::new(move |method, path, outcome, took| {
        dfns_metrics.dfns_request(method, path, &outcome.label(), took);
    });
    let kube = match kube_client(args.kubeconfig.as_deref(), &metrics).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build a Kubernetes client");
            return 1;
        }
    };
    let server = match args.metrics_address {
        Some(address) => match start_server(address, &metrics, &health).await {
            Ok(server) => Some(server),
            Err(error) => {
                tracing::error!(%error, "cannot start the metrics and probes server");
                return 1;
            }
        },
        None => None,
    };
    let leader_election = args.leader_election.lease(&args.namespace);
    let config = ControllerConfig {
        operator_namespace: args.namespace,
        resync_interval: args.resync_interval,
        approval_check_interval: args.approval_check_interval,
        concurrency: args.concurrency,
        watch_namespace: args.watch_namespace,
        cluster_connection_selector: args.cluster_connection_selector,
        request_observer: Some(request_observer),
        seal_key_secret: args.seal_key_secret,
        allowed_api_hosts: args.allowed_api_hosts,
        rollout_restarts: RolloutRestarts {
            enabled: args.rollout_restarts,
            debounce: args.restart_debounce,
        },
        max_list_response_bytes: args.max_list_response_bytes,
    };
    tracing::info!(
        ?config,
        metrics_address = ?args.metrics_address,
        leader_election = ?leader_election.as_ref().map(|l| format!("{}/{} as {}", l.namespace, l.name, l.identity)),
        "starting dfns-operator"
    );
    let options = RunOptions {
        leader_election,
        metrics,
        health,
    };
    let result = crate::controller::run_with(kube, config, options, shutdown_signal()).await;
    // The probes answer until the controllers have stopped and the Lease is released.
    if let Some((stop_server, server)) = server {
        let _ = stop_server.send(());
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "metrics server"),
            Err(error) => tracing::warn!(%error, "metrics server task"),
        }
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(error) => {
            tracing::error!(%error, "dfns-operator failed");
            1
        }
    }
}

type ServerHandle = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), crate::telemetry::ServerError>>,
);

async fn start_server(
    address: SocketAddr,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
) -> Result<ServerHandle, crate::telemetry::ServerError> {
    let listener = crate::telemetry::server::bind(address).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::telemetry::serve(
        listener,
        metrics.clone(),
        health.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok((stop, server))
}

/// A Kubernetes client that counts its writes in `metrics`.
async fn kube_client(
    path: Option<&std::path::Path>,
    metrics: &Arc<Metrics>,
) -> Result<kube::Client, Error> {
    let config = super::kubeconfig::load(path).await?;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(Error::KubeClient)?;
    Ok(builder
        .with_layer(&KubeWriteCounterLayer::new(metrics.clone()))
        .build())
}

/// Resolves on SIGTERM or Ctrl-C; the controllers then finish their current reconciles.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
