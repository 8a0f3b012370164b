//! Sustained signed writes per second against an in-process emulator.
//!
//! Each of N concurrent clients loops: `POST /auth/action/init` → sign the challenge (P-256)
//! → `POST /auth/action` → `POST /auth/service-accounts` with the user action. Every reply must
//! be 200; the run fails on any error.
//!
//! `cargo bench -p dfns-emulator --bench signed_writes` (env: BENCH_CLIENTS, default 32;
//! BENCH_SECS, default 10).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dfns_emulator::{Emulator, EmulatorConfig};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use signature::Signer as _;

struct Caller {
    http: reqwest::Client,
    base: String,
    token: String,
    cred_id: String,
    key: SigningKey,
}

fn sign_challenge(key: &SigningKey, cred_id: &str, challenge: &str) -> Value {
    let client_data = json!({ "type": "key.get", "challenge": challenge }).to_string();
    let sig: p256::ecdsa::Signature = key.sign(client_data.as_bytes());
    json!({
        "kind": "Key",
        "credentialAssertion": {
            "credId": cred_id,
            "clientData": URL_SAFE_NO_PAD.encode(client_data),
            "signature": URL_SAFE_NO_PAD.encode(sig.to_der().as_bytes()),
        }
    })
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    ua: Option<&str>,
    body: &Value,
) -> Result<Value, String> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ua) = ua {
        req = req.header("x-dfns-useraction", ua);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

impl Caller {
    async fn signed_post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let payload = body.to_string();
        let init = post(
            &self.http,
            format!("{}/auth/action/init", self.base),
            Some(&self.token),
            None,
            &json!({ "userActionPayload": payload, "userActionHttpMethod": "POST", "userActionHttpPath": path, "userActionServerKind": "Api" }),
        )
        .await?;
        let challenge = init["challenge"].as_str().ok_or("no challenge")?;
        let action = post(
            &self.http,
            format!("{}/auth/action", self.base),
            Some(&self.token),
            None,
            &json!({ "challengeIdentifier": init["challengeIdentifier"], "firstFactor": sign_challenge(&self.key, &self.cred_id, challenge) }),
        )
        .await?;
        let ua = action["userAction"].as_str().ok_or("no userAction")?;
        post(
            &self.http,
            format!("{}{path}", self.base),
            Some(&self.token),
            Some(ua),
            body,
        )
        .await
    }
}

/// Name of the emulator's runtime threads, to tell server CPU from client CPU.
const SERVER_THREADS: &str = "emu-server";

/// CPU seconds (user + system) used so far by (emulator threads, all threads), from
/// /proc/self/task (Linux; None elsewhere). Throughput depends on what else runs on the
/// machine; CPU per write does not. Threads that already exited are not counted, which is why
/// both runtimes are kept alive until the measurement ends.
fn cpu_seconds() -> Option<(f64, f64)> {
    let (mut server, mut total) = (0.0, 0.0);
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1;
        // Fields after the ")": utime and stime are the 12th and 13th.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let secs =
            (fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0;
        total += secs;
        if name.starts_with(SERVER_THREADS) {
            server += secs;
        }
    }
    Some((server, total))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let clients = env_or("BENCH_CLIENTS", 32) as usize;
    let secs = env_or("BENCH_SECS", 10);
    // Emulator and clients run on separate runtimes so their CPU can be told apart.
    let server = tokio::runtime::Builder::new_multi_thread()
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    client.block_on(run(
        server.handle().clone(),
        clients,
        Duration::from_secs(secs),
    ));
}

async fn run(server: tokio::runtime::Handle, clients: usize, duration: Duration) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = server
        .spawn(Emulator::start(EmulatorConfig::default()))
        .await
        .unwrap()
        .expect("emulator starts");
    let b = emu.bootstrap().clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let key = SigningKey::from_pkcs8_pem(&b.admin.private_key).unwrap();

    // Log in as the bootstrap admin.
    let init = post(
        &http,
        format!("{}/auth/login/init", b.api_url),
        None,
        None,
        &json!({ "orgId": b.org_id, "username": b.admin.username }),
    )
    .await
    .unwrap();
    let login = post(
        &http,
        format!("{}/auth/login", b.api_url),
        None,
        None,
        &json!({ "challengeIdentifier": init["challengeIdentifier"], "firstFactor": sign_challenge(&key, &b.admin.cred_id, init["challenge"].as_str().unwrap()) }),
    )
    .await
    .unwrap();
    let caller = Arc::new(Caller {
        http,
        base: b.api_url.clone(),
        token: login["token"].as_str().unwrap().to_owned(),
        cred_id: b.admin.cred_id.clone(),
        key,
    });
    let public_key =
        <SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(&mut rand::rng())
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();

    // Warm up connections, then measure.
    for i in 0..clients {
        caller
            .signed_post(
                "/auth/service-accounts",
                &json!({ "name": format!("warm-{i}"), "publicKey": public_key }),
            )
            .await
            .unwrap();
    }
    emu.reset_request_counts();

    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (caller, done, errors, stop, first_error, public_key) = (
            caller.clone(),
            done.clone(),
            errors.clone(),
            stop.clone(),
            first_error.clone(),
            public_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "name": format!("bench-{c}-{n}"), "publicKey": public_key });
                match caller.signed_post("/auth/service-accounts", &body).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        first_error.lock().unwrap().get_or_insert(e);
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(cpu_seconds())
        .map(|(a, b)| (b.0 - a.0, b.1 - a.1));
    let writes = done.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let counts = emu.request_counts();
    let state = emu.state();
    emu.shutdown().await;

    let per_sec = writes as f64 / elapsed;
    println!(
        "emulator_signed_writes: {per_sec:.0} signed writes/s ({:.0} HTTP requests/s; each write = action init + action + create), \
         {clients} clients, {elapsed:.1} s, {writes} writes, {errors} errors, {} service accounts in state",
        counts.total as f64 / elapsed,
        state.service_accounts.len(),
    );
    if let Some((server_cpu, total_cpu)) = cpu {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let server_us = server_cpu / writes.max(1) as f64 * 1e6;
        println!(
            "emulator_signed_writes: CPU per signed write: emulator {server_us:.0} µs, clients {:.0} µs; \
             the process got {:.0}% of {cores} cores (the rest went to other work on the machine); \
             emulator-only capacity at full use of {cores} cores ≈ {:.0} signed writes/s",
            (total_cpu - server_cpu) / writes.max(1) as f64 * 1e6,
            total_cpu / elapsed / cores as f64 * 100.0,
            cores as f64 / (server_us / 1e6),
        );
    }
    if let Some(e) = first_error.lock().unwrap().take() {
        eprintln!("first error: {e}");
    }
    if errors > 0 {
        std::process::exit(1);
    }
}
