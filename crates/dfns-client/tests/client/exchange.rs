//! The request observer is per client: set in its ClientConfig, it sees that client's exchanges.

use std::sync::{Arc, Mutex};

use dfns_client::{DfnsClient, IdentityKind, RequestObserver};
use dfns_test_support::dfns::*;

#[tokio::test]
async fn the_configured_observer_sees_its_clients_exchanges_and_no_others() {
    let emulator = start_emulator().await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let mut config = admin_config(&emulator);
    config.request_observer = Some(RequestObserver::new(move |method, path, outcome, _| {
        record
            .lock()
            .unwrap()
            .push(format!("{method} {path} {}", outcome.label()));
    }));
    let observed = DfnsClient::new(config).unwrap();
    let unobserved = admin_client(&emulator);

    observed
        .list(IdentityKind::PersonalAccessToken)
        .await
        .unwrap();
    unobserved.list(IdentityKind::ServiceAccount).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&"GET /auth/pats 200".to_owned()), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|line| line.contains("/auth/service-accounts")),
        "{seen:?}"
    );
    emulator.shutdown().await;
}
