//! Starting and stopping the emulator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use tokio::task::JoinHandle;

use super::app::{AppState, Shared};
use super::bootstrap::{Bootstrap, BootstrapAdmin};
use super::config::{EmulatorConfig, Faults};
use super::counters::{Counters, RequestCounts};
use super::crypto::PublicKey;
use super::error::EmulatorError;
use super::faults::RateLimiter;
use super::profile::Profile;
use super::state::snapshot::StateSnapshot;
use super::state::{AdminSeed, Store};
use super::tokens::TokenKeys;
use super::{ids, routes, tls};

/// Entry point: `Emulator::start(config).await`.
pub struct Emulator;

/// A listening emulator. Dropping it without [`RunningEmulator::shutdown`] stops it as well
/// (the server task ends with the runtime), but `shutdown` waits for connections to close.
pub struct RunningEmulator {
    api_url: String,
    bootstrap: Bootstrap,
    ca_cert: Option<String>,
    app: Shared,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Emulator {
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        config.validate().map_err(EmulatorError::Config)?;

        // The bootstrap admin: a P-256 Key credential whose private key only the bootstrap holds.
        let admin_key =
            <p256::ecdsa::SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
                &mut rand::rng(),
            );
        let private_pem = admin_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| EmulatorError::Keys(e.to_string()))?;
        let public_pem = admin_key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| EmulatorError::Keys(e.to_string()))?;
        let seed = AdminSeed {
            org_id: ids::new_id("or"),
            user_id: ids::new_id("us"),
            username: config.admin_username.clone(),
            cred_uuid: ids::new_id("cr"),
            cred_id: ids::new_cred_id(),
            key: Arc::new(PublicKey::p256(*admin_key.verifying_key())),
            public_key_pem: public_pem,
            permission_id: ids::new_id("pm"),
            assignment_id: ids::new_id("as"),
            app_id: ids::new_id("ap"),
        };

        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let host = match local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };

        let tls_material = if config.tls {
            let mut hosts = config.tls_hosts.clone();
            hosts.push(local.ip().to_string());
            Some(tls::generate(&hosts)?)
        } else {
            None
        };
        let scheme = if config.tls { "https" } else { "http" };
        let api_url = format!("{scheme}://{host}:{}", local.port());
        let ca_cert = tls_material.as_ref().map(|t| t.ca_pem.clone());

        let bootstrap = Bootstrap {
            api_url: api_url.clone(),
            org_id: seed.org_id.clone(),
            admin: BootstrapAdmin {
                user_id: seed.user_id.clone(),
                username: seed.username.clone(),
                cred_id: seed.cred_id.clone(),
                private_key: private_pem.to_string(),
            },
            ca_cert: ca_cert.clone(),
        };

        let app: Shared = Arc::new(AppState {
            store: Store::new(seed, config.profile.clone()),
            keys: TokenKeys::generate(),
            faults: RwLock::new(config.faults.clone()),
            limiter: Mutex::new(RateLimiter::new(
                config.faults.rate_limit_per_minute,
                config.faults.rate_limit_initial_tokens,
            )),
            counters: Counters::default(),
            config,
        });
        let router = routes::router(app.clone());
        let handle = Handle::new();
        let bind_error = |source| EmulatorError::Bind {
            addr: local,
            source,
        };
        let task = match tls_material {
            Some(material) => {
                let server = axum_server::from_tcp_rustls(
                    listener,
                    RustlsConfig::from_config(material.server_config),
                )
                .map_err(bind_error)?
                .handle(handle.clone());
                tokio::spawn(async move { server.serve(router.into_make_service()).await })
            }
            None => {
                let server = axum_server::from_tcp(listener)
                    .map_err(bind_error)?
                    .handle(handle.clone());
                tokio::spawn(async move { server.serve(router.into_make_service()).await })
            }
        };
        // The socket is bound already; wait until the server task accepts on it.
        handle.listening().await;
        tracing::info!(api_url = %api_url, org_id = %bootstrap.org_id, tls = ca_cert.is_some(), "dfns emulator listening");
        Ok(RunningEmulator {
            api_url,
            bootstrap,
            ca_cert,
            app,
            handle,
            task,
        })
    }
}

impl RunningEmulator {
    /// Base URL, e.g. `http://127.0.0.1:40123` (the real port when started on port 0).
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    /// PEM of the CA that signed the server certificate (TLS mode only).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_cert.as_deref()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.app.set_faults(faults);
    }

    pub fn faults(&self) -> Faults {
        self.app.faults()
    }

    /// Same as `PUT /_emulator/profile` (checked the same way).
    pub fn set_profile(&self, profile: Profile) -> Result<(), EmulatorError> {
        profile.validate().map_err(EmulatorError::Config)?;
        self.app.store.lock().profile = profile;
        Ok(())
    }

    pub fn profile(&self) -> Profile {
        self.app.store.lock().profile.clone()
    }

    /// Same content as `GET /_emulator/state`.
    pub fn state(&self) -> StateSnapshot {
        self.app.store.lock().snapshot()
    }

    /// Same content as `GET /_emulator/requests`.
    pub fn request_counts(&self) -> RequestCounts {
        self.app.counters.snapshot()
    }

    /// Every access token this emulator signed (service accounts', PATs' and login sessions'),
    /// the newest 10 000 at most: what tests search the operator's outputs for.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.app.keys.issued()
    }

    pub fn reset_request_counts(&self) {
        self.app.counters.reset();
    }

    /// Same as `POST /_emulator/reset` (start-up faults and profile again).
    pub fn reset(&self) {
        self.app.store.reset();
        self.app.set_faults(self.app.config.faults.clone());
        self.app.counters.reset();
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), then returns.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "emulator server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "emulator server task failed"),
        }
    }
}
