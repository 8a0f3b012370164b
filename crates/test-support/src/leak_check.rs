//! [`LeakCheck`]: the leak check every e2e test ends with (see [`crate::leaks`]).

use std::path::PathBuf;
use std::sync::Arc;

use dfns_emulator::RunningEmulator;
use dfns_operator::api::{
    ClusterDfnsConnection, DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount,
};
use dfns_operator::telemetry::Metrics;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::leaks::{self, Haystack, Needle};
use crate::operator::Setup;

/// Keys of a Secret whose values are secret (the rest are ids and URLs).
const SECRET_KEYS: [&str; 2] = ["DFNS_AUTH_TOKEN", "DFNS_PRIVATE_KEY"];
/// The field of the operator's seal key Secret (src/controller/seal.rs).
const SEAL_KEY_FIELD: &str = "seal-key";

/// What one leak check searches for and where; built with [`Setup::leak_check`].
pub struct LeakCheck<'a> {
    setup: &'a Setup,
    needles: Vec<Needle>,
    log_files: Vec<PathBuf>,
    emulators: Vec<&'a RunningEmulator>,
    metrics: Vec<Arc<Metrics>>,
}

impl Setup {
    /// A leak check of every token the test's emulator issued and every secret value of every
    /// Secret in the test's namespace, over the in-process operators' logs, the statuses, the
    /// Events and the metrics.
    pub fn leak_check(&self) -> LeakCheck<'_> {
        LeakCheck {
            setup: self,
            needles: vec![Needle::new(
                "the bootstrap admin's private key",
                &self.emulator.bootstrap().admin.private_key,
            )],
            log_files: Vec::new(),
            emulators: vec![&self.emulator],
            metrics: self.all_metrics.clone(),
        }
    }

    /// Runs the default [`Setup::leak_check`] and panics on any finding.
    pub async fn assert_no_leaks(&self) {
        self.leak_check().assert_clean().await;
    }
}

impl<'a> LeakCheck<'a> {
    /// Also searches the JSON log file of an operator run as a separate process.
    pub fn with_log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_files.push(path.into());
        self
    }

    /// Also looks for a secret the test holds itself (a key it generated, a token it minted).
    pub fn with_secret(mut self, what: &str, value: &str) -> Self {
        self.needles.push(Needle::new(what, value));
        self
    }

    /// Also looks for every token another emulator issued.
    pub fn with_emulator(mut self, emulator: &'a RunningEmulator) -> Self {
        self.emulators.push(emulator);
        self
    }

    /// Also searches the metrics of an operator the test ran itself (not through
    /// [`Setup::start_operator`], e.g. with leader election or impersonation).
    pub fn with_metrics(mut self, metrics: &Arc<Metrics>) -> Self {
        self.metrics.push(metrics.clone());
        self
    }

    /// Every finding, empty when nothing leaked.
    pub async fn findings(self) -> Vec<String> {
        let setup = self.setup;
        let mut needles = self.needles;
        for emulator in &self.emulators {
            for (i, token) in emulator.issued_tokens().iter().enumerate() {
                needles.push(Needle::new(
                    format!("access token #{i} issued by Dfns"),
                    token,
                ));
            }
        }
        let secrets = setup
            .secrets()
            .list(&ListParams::default())
            .await
            .expect("list Secrets");
        for secret in &secrets {
            // The operator's seal key (binary) lives in its namespace, the test's own.
            if let Some(key) = secret.data.as_ref().and_then(|d| d.get(SEAL_KEY_FIELD)) {
                needles.push(Needle::from_bytes(
                    format!("Secret {} {SEAL_KEY_FIELD}", secret.name_any()),
                    &key.0,
                ));
            }
            for key in SECRET_KEYS {
                if let Some(value) = crate::operator::secret_text(secret, key) {
                    needles.push(Needle::new(
                        format!("Secret {} {key}", secret.name_any()),
                        &value,
                    ));
                }
            }
        }

        let mut logs = crate::logs::captured();
        for file in &self.log_files {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("operator log {}: {e}", file.display()));
            logs.push_str(&crate::logs::operator_lines(&text));
        }
        assert!(
            logs.contains("\"target\":\"dfns_operator")
                || logs.contains("\"target\":\"kube_runtime"),
            "no operator logs were captured: the leak check would search nothing"
        );
        let mut haystacks = vec![Haystack {
            what: "the operator's logs".into(),
            text: logs,
        }];
        haystacks.push(Haystack {
            what: "statuses".into(),
            text: statuses(setup).await,
        });
        let events = Api::<Event>::namespaced(setup.kube.clone(), setup.namespace())
            .list(&ListParams::default())
            .await
            .expect("list Events");
        haystacks.push(Haystack {
            what: "Events".into(),
            text: serde_json::to_string(&events.items).expect("Events as JSON"),
        });
        for (i, metrics) in self.metrics.iter().enumerate() {
            haystacks.push(Haystack {
                what: format!("metrics of operator #{i}"),
                text: metrics.encode(),
            });
        }
        leaks::find(&needles, &haystacks)
    }

    /// Panics naming every finding (what leaked where, never the value).
    pub async fn assert_clean(self) {
        let found = self.findings().await;
        assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    }
}

/// The statuses of the test's resources and cluster-scoped connections, as JSON.
async fn statuses(setup: &Setup) -> String {
    async fn of<K>(api: Api<K>, params: &ListParams) -> String
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Serialize,
    {
        let list = api.list(params).await.expect("list resources");
        list.items
            .iter()
            .map(|obj| {
                let value = serde_json::to_value(obj).expect("resource as JSON");
                format!("{}\n", value["status"])
            })
            .collect()
    }
    let all = ListParams::default();
    let mut text = of(setup.api::<DfnsServiceAccount>(), &all).await;
    text += &of(setup.api::<DfnsPersonalAccessToken>(), &all).await;
    text += &of(setup.api::<DfnsConnection>(), &all).await;
    text += &of(
        Api::<ClusterDfnsConnection>::all(setup.kube.clone()),
        &ListParams::default().labels(&setup.cluster_selector()),
    )
    .await;
    text
}
