//! When each resource was first seen Ready=True, by the bench's own clock through a watch (the
//! condition's lastTransitionTime has only one-second resolution).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dfns_operator::api::DfnsServiceAccount;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::watcher;

pub struct ReadyTracker {
    first_ready: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyTracker {
    pub fn start(client: &kube::Client, namespace: &str) -> Self {
        let api: Api<DfnsServiceAccount> = Api::namespaced(client.clone(), namespace);
        let first_ready = Arc::new(Mutex::new(HashMap::new()));
        let seen = first_ready.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let sa = match event {
                    Ok(watcher::Event::Apply(sa) | watcher::Event::InitApply(sa)) => sa,
                    Ok(_) => continue,
                    Err(error) => {
                        eprintln!("bench: ready watch: {error}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if is_ready(&sa) {
                    seen.lock()
                        .expect("lock")
                        .entry(sa.name_any())
                        .or_insert_with(Instant::now);
                }
            }
        });
        Self { first_ready, task }
    }

    pub fn ready_count(&self) -> usize {
        self.first_ready.lock().expect("lock").len()
    }

    /// Waits until `count` resources have been Ready; `Err` with how many were, on timeout.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        let mut last_report = Instant::now();
        loop {
            let ready = self.ready_count();
            if ready >= count {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ready);
            }
            if last_report.elapsed() >= Duration::from_secs(15) {
                eprintln!("bench: {ready}/{count} Ready");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn first_ready(&self) -> HashMap<String, Instant> {
        self.first_ready.lock().expect("lock").clone()
    }
}

impl Drop for ReadyTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_ready(sa: &DfnsServiceAccount) -> bool {
    sa.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}
