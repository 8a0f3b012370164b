//! `dfns-emulator`: a local Dfns API for demos, tests and development without a Dfns account.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dfns_emulator::{
    ApprovalOperation, Emulator, EmulatorConfig, Faults, IdentityKeyRotation, Profile,
    PublicKeyForm,
};
use tracing_subscriber::EnvFilter;

/// A local Dfns API emulator. It serves the authentication, service-account, personal access
/// token, permission and credential endpoints with Dfns' signature and permission rules, and
/// test controls under /_emulator/. Once listening it writes the bootstrap file: the API URL,
/// the organization id and an admin user's credential id and private key (PKCS#8 PEM).
#[derive(Debug, Parser)]
#[command(name = "dfns-emulator", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the bootstrap file has the real URL).
    #[arg(long, env = "DFNS_EMULATOR_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Where to write the bootstrap JSON (apiUrl, orgId, admin {userId, username, credId,
    /// privateKey}, caCert with --tls). Written atomically, mode 0600, once listening.
    #[arg(long, env = "DFNS_EMULATOR_BOOTSTRAP_FILE")]
    bootstrap_file: PathBuf,

    /// Serve HTTPS with a generated CA and certificate; the CA's PEM goes to "caCert".
    #[arg(long, env = "DFNS_EMULATOR_TLS")]
    tls: bool,

    /// Extra DNS name or IP for the TLS certificate (repeatable), e.g. the host name a
    /// cluster uses to reach the emulator.
    #[arg(
        long = "tls-host",
        env = "DFNS_EMULATOR_TLS_HOSTS",
        value_delimiter = ','
    )]
    tls_hosts: Vec<String>,

    /// Username of the bootstrap admin.
    #[arg(
        long,
        env = "DFNS_EMULATOR_ADMIN_USERNAME",
        default_value = "admin@emulator.local"
    )]
    admin_username: String,

    /// Fixed delay added to every Dfns API response, in milliseconds.
    #[arg(long, env = "DFNS_EMULATOR_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,

    /// Extra random delay, uniform between 0 and this many milliseconds.
    #[arg(long, env = "DFNS_EMULATOR_JITTER_MS", default_value_t = 0)]
    jitter_ms: u64,

    /// Requests per minute allowed for the organization; more are answered 429. Unset: no
    /// limit.
    #[arg(long, env = "DFNS_EMULATOR_RATE_LIMIT_PER_MINUTE")]
    rate_limit_per_minute: Option<u32>,

    /// Requests the rate-limit bucket holds at start. Unset: full (one minute's allowance).
    #[arg(long, env = "DFNS_EMULATOR_RATE_LIMIT_INITIAL_TOKENS")]
    rate_limit_initial_tokens: Option<u32>,

    /// Send Retry-After (seconds) with the rate limit's 429s. Dfns documents no such header.
    #[arg(long, env = "DFNS_EMULATOR_RETRY_AFTER")]
    retry_after: bool,

    /// Share of Dfns API requests (0 to 1) answered 500 before anything is changed.
    #[arg(long, env = "DFNS_EMULATOR_ERROR_RATIO", default_value_t = 0.0)]
    error_ratio: f64,

    /// Share of state-changing requests (0 to 1) that are applied but whose reply is replaced by
    /// a 502 ("lost response"), to test clients' crash safety. Reads and signing steps are
    /// never lost.
    #[arg(long, env = "DFNS_EMULATOR_LOST_RESPONSE_RATIO", default_value_t = 0.0)]
    lost_response_ratio: f64,

    /// Base fidelity profile: "strict" follows Dfns' reference pages; "lenient" is the
    /// emulator's earlier, kinder behaviour. The flags below override single switches.
    #[arg(
        long,
        env = "DFNS_EMULATOR_PROFILE",
        value_enum,
        default_value = "strict"
    )]
    profile: BaseProfile,

    /// May service accounts and PATs use the credential endpoints on their own credentials?
    /// "refused": the reference pages' caller tables; "allowed": the credential-rotation guide.
    #[arg(long, env = "DFNS_EMULATOR_IDENTITY_KEY_ROTATION", value_enum)]
    identity_key_rotation: Option<IdentityKeyRotation>,

    /// Let service accounts call List Credentials (the reference page marks them ❌).
    #[arg(long, env = "DFNS_EMULATOR_SERVICE_ACCOUNTS_LIST_CREDENTIALS")]
    service_accounts_list_credentials: Option<bool>,

    /// Return externalId in service-account and PAT responses (no documented response has it).
    #[arg(long, env = "DFNS_EMULATOR_EXTERNAL_ID_IN_RESPONSES")]
    external_id_in_responses: Option<bool>,

    /// Answer linkedAppId "" instead of the documented ap-… id.
    #[arg(long, env = "DFNS_EMULATOR_EMPTY_LINKED_APP_ID")]
    empty_linked_app_id: Option<bool>,

    /// Days a service-account or PAT token created without daysValid/secondsValid lasts
    /// (1-730). Unset in the strict profile: such tokens carry no exp.
    #[arg(long, env = "DFNS_EMULATOR_DEFAULT_DAYS_VALID")]
    default_days_valid: Option<u32>,

    /// Form of publicKey in service-account and PAT responses: the PEM, "SHA256:" + base64 of
    /// SHA-256 over the SPKI DER, or "".
    #[arg(long, env = "DFNS_EMULATOR_PUBLIC_KEY_FORM", value_enum)]
    public_key_form: Option<PublicKeyForm>,

    /// Writes held for approval (202 + change request), comma-separated: assignment, revoke,
    /// service-account-create, pat-create, service-account-deactivate. Decide with POST
    /// /_emulator/change-requests/{id}/approve|deny.
    #[arg(long, env = "DFNS_EMULATOR_REQUIRE_APPROVAL", value_delimiter = ',')]
    require_approval: Vec<ApprovalOperation>,

    /// A service account created without permissionId gets its creator's roles (older Dfns
    /// pages); the latest reference page gives it none.
    #[arg(
        long,
        env = "DFNS_EMULATOR_SERVICE_ACCOUNTS_INHERIT_CREATOR_PERMISSIONS"
    )]
    service_accounts_inherit_creator_permissions: Option<bool>,

    /// Test knob, not a fidelity switch: seconds one day of daysValid lasts (default a real
    /// day, 86400), so tests of renewal before expiry get service-account tokens that expire in
    /// seconds. Never set it against clients you expect to behave as with Dfns.
    #[arg(
        long,
        env = "DFNS_EMULATOR_SECONDS_PER_VALID_DAY",
        default_value_t = dfns_emulator::SECONDS_PER_DAY,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    seconds_per_valid_day: u32,

    /// Log format on stderr.
    #[arg(
        long,
        env = "DFNS_EMULATOR_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BaseProfile {
    Strict,
    Lenient,
}

impl Args {
    fn profile(&self) -> Profile {
        let mut profile = match self.profile {
            BaseProfile::Strict => Profile::strict(),
            BaseProfile::Lenient => Profile::lenient(),
        };
        if let Some(v) = self.identity_key_rotation {
            profile.identity_key_rotation = v;
        }
        if let Some(v) = self.service_accounts_list_credentials {
            profile.service_accounts_list_credentials = v;
        }
        if let Some(v) = self.external_id_in_responses {
            profile.external_id_in_responses = v;
        }
        if let Some(v) = self.empty_linked_app_id {
            profile.empty_linked_app_id = v;
        }
        if let Some(v) = self.default_days_valid {
            profile.default_days_valid = Some(v);
        }
        if let Some(v) = self.public_key_form {
            profile.public_key_form = v;
        }
        if let Some(v) = self.service_accounts_inherit_creator_permissions {
            profile.service_accounts_inherit_creator_permissions = v;
        }
        profile
            .require_approval
            .extend(self.require_approval.iter().copied());
        profile
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);

    let faults = Faults {
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        rate_limit_per_minute: args.rate_limit_per_minute,
        rate_limit_initial_tokens: args.rate_limit_initial_tokens,
        retry_after: args.retry_after,
        error_ratio: args.error_ratio,
        lost_response_ratio: args.lost_response_ratio,
    };
    let config = EmulatorConfig {
        profile: args.profile(),
        listen: args.listen,
        tls: args.tls,
        tls_hosts: args.tls_hosts,
        faults,
        admin_username: args.admin_username,
        seconds_per_valid_day: args.seconds_per_valid_day,
        ..EmulatorConfig::default()
    };
    // A file left by an earlier run would point readers at a dead port: remove it before
    // listening, so the file that appears is always this run's.
    remove_bootstrap(&args.bootstrap_file);
    let emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the emulator");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = emulator.bootstrap().write_atomically(&args.bootstrap_file) {
        tracing::error!(error = %e, path = %args.bootstrap_file.display(), "cannot write the bootstrap file");
        emulator.shutdown().await;
        return ExitCode::FAILURE;
    }
    tracing::info!(path = %args.bootstrap_file.display(), api_url = %emulator.api_url(), "bootstrap file written");

    shutdown_signal().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    remove_bootstrap(&args.bootstrap_file);
    ExitCode::SUCCESS
}

fn remove_bootstrap(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed bootstrap file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove bootstrap file")
        }
    }
}
