//! What Dfns holds, read through one list call per connection and kind per resync interval and
//! shared by every resource (docs/architecture.md, "Cost rules"), instead of one GET per resource.
//! The drift watch (`drift_watch.rs`) refreshes it; a reconcile lists only when it finds the
//! listing missing or older than the interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::dfns_clients::{ConnectionHandle, ConnectionKey};
use super::error::ignore_not_found;
use dfns_client::{DfnsError, Identity, IdentityKind};

#[derive(Default)]
struct Listing {
    /// The client (`ConnectionHandle::build`) the items were read through.
    build: u64,
    fetched_at: Option<Instant>,
    items: HashMap<String, Identity>,
}

impl Listing {
    /// Forgets what another client listed: the same connection name may now be another
    /// connection, or point at another endpoint or organization.
    fn served_by(&mut self, build: u64) {
        if self.build != build {
            *self = Self {
                build,
                ..Self::default()
            };
        }
    }

    /// Lists afresh. The previous items are dropped before the call, so a refresh never holds
    /// two listings at once (at 10,000 identities that was most of the operator's peak heap);
    /// if the call fails, the listing is empty and stale, and its next reader lists again.
    async fn relist(
        &mut self,
        connection: &ConnectionHandle,
        kind: IdentityKind,
    ) -> Result<(), DfnsError> {
        self.items = HashMap::new();
        self.fetched_at = None;
        let items = connection.client.list(kind).await?;
        self.items = items
            .into_iter()
            .map(|c| (c.id.clone(), c.fingerprinted()))
            .collect();
        self.fetched_at = Some(Instant::now());
        Ok(())
    }
}

/// One listing per connection and kind; its async lock makes concurrent readers share one call.
type Listings = HashMap<(ConnectionKey, IdentityKind), Arc<tokio::sync::Mutex<Listing>>>;

pub struct Inventory {
    max_age: Duration,
    listings: Mutex<Listings>,
}

impl Inventory {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            listings: Mutex::default(),
        }
    }

    fn listing(&self, key: &ConnectionKey, kind: IdentityKind) -> Arc<tokio::sync::Mutex<Listing>> {
        self.listings
            .lock()
            .expect("inventory lock")
            .entry((key.clone(), kind))
            .or_default()
            .clone()
    }

    /// The recorded credential as Dfns shows it, or `None` when it is archived or gone. Served from
    /// the shared listing while it is fresh; an id missing from the listing is confirmed with one
    /// GET before it is reported gone.
    pub async fn recorded(
        &self,
        connection: &ConnectionHandle,
        kind: IdentityKind,
        id: &str,
    ) -> Result<Option<Identity>, DfnsError> {
        let listing = self.listing(&connection.key, kind);
        {
            // Held across the list call, so concurrent reconciles wait for one list, not many.
            let mut listing = listing.lock().await;
            listing.served_by(connection.build);
            if listing
                .fetched_at
                .is_none_or(|at| at.elapsed() >= self.max_age)
            {
                listing.relist(connection, kind).await?;
            }
            if let Some(found) = listing.items.get(id) {
                return Ok(Some(found.clone()));
            }
        }
        let found = ignore_not_found(connection.client.get(kind, id).await)?;
        if let Some(found) = &found {
            self.remember(&connection.key, found.clone()).await;
        }
        Ok(found)
    }

    /// Lists `kind` afresh through `connection` (the drift watch's refresh, once per resync
    /// interval) and hands the listing to `compare` while it is held: the resources are compared
    /// with the one shared copy, not a second one.
    pub async fn refresh<T>(
        &self,
        connection: &ConnectionHandle,
        kind: IdentityKind,
        compare: impl FnOnce(&HashMap<String, Identity>) -> T,
    ) -> Result<T, DfnsError> {
        let listing = self.listing(&connection.key, kind);
        // Held across the list call, so reconciles wait for this list instead of sending theirs.
        let mut listing = listing.lock().await;
        listing.served_by(connection.build);
        listing.relist(connection, kind).await?;
        Ok(compare(&listing.items))
    }

    /// Everything that may stem from an interrupted create of this resource: objects with its
    /// `externalId` or its pending public key. Always a fresh list: this is the crash-recovery path.
    pub async fn candidates(
        &self,
        connection: &ConnectionHandle,
        kind: IdentityKind,
        external_id: &str,
        public_key_matches: impl Fn(&Identity) -> bool,
    ) -> Result<Vec<Identity>, DfnsError> {
        let listing = self.listing(&connection.key, kind);
        let mut listing = listing.lock().await;
        listing.served_by(connection.build);
        listing.relist(connection, kind).await?;
        let mut found: Vec<Identity> = listing
            .items
            .values()
            .filter(|c| c.external_id.as_deref() == Some(external_id) || public_key_matches(c))
            .cloned()
            .collect();
        // In the order Dfns created them, as its list shows them, whatever the map's order.
        found.sort_by(|a, b| (a.date_created, &a.id).cmp(&(b.date_created, &b.id)));
        Ok(found)
    }

    /// Record what a write returned, so the next reads need no list call.
    pub async fn remember(&self, key: &ConnectionKey, credential: Identity) {
        let listing = self.listing(key, credential.kind);
        listing
            .lock()
            .await
            .items
            .insert(credential.id.clone(), credential.fingerprinted());
    }

    /// Record that a credential was archived, or that a write to it may have changed it unseen:
    /// either way the next read of it asks Dfns.
    pub async fn forget(&self, key: &ConnectionKey, kind: IdentityKind, id: &str) {
        self.listing(key, kind).lock().await.items.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_read_through_another_client_is_never_served() {
        let mut listing = Listing {
            build: 1,
            fetched_at: Some(Instant::now()),
            items: HashMap::from([(
                "us-old-org".to_owned(),
                Identity {
                    kind: IdentityKind::ServiceAccount,
                    id: "us-old-org".into(),
                    token_id: None,
                    cred_id: None,
                    is_active: true,
                    name: None,
                    external_id: None,
                    public_key: None,
                    linked_user_id: None,
                    org_id: None,
                    date_created: None,
                    permission_assignments: vec![],
                },
            )]),
        };
        listing.served_by(1);
        assert!(listing.fetched_at.is_some() && listing.items.contains_key("us-old-org"));
        listing.served_by(2);
        assert!(listing.fetched_at.is_none() && listing.items.is_empty());
        assert_eq!(listing.build, 2);
    }
}
