//! `make bench-cache`: heap bytes per object the operator keeps in its watch caches, measured
//! without a cluster by a counting global allocator.
//!
//! The objects are real ones, captured from a benchmark run (`fixtures/`): a Ready
//! `DfnsServiceAccount` as the API server sends it (managedFields included), stripped as the
//! operator strips it (`controller::cache::strip_for_cache`), and the metadata of a credential
//! Secret as a metadata-only watch delivers it. Each is stored `COPIES` times under distinct names
//! in a kube-runtime reflector store, as the controllers store them; the live heap growth divided
//! by `COPIES` is the cost per object, store overhead (hash map slots, `Arc`, key) included.
//! Results go to the `cache` section of target/bench/results.json.

#[path = "../operator_scale/report.rs"]
mod report;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use dfns_operator::api::DfnsServiceAccount;
use dfns_operator::controller::cache::strip_for_cache;
use dfns_operator::controller::event_series::{self, SeriesCache, SeriesKey};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::json;

/// Bytes currently allocated through the global allocator.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const COPIES: usize = 10_000;

const SERVICE_ACCOUNT: &str = include_str!("fixtures/dfnsserviceaccount.json");
const SECRET_METADATA: &str = include_str!("fixtures/secret-metadata.json");

fn main() {
    let service_account: DfnsServiceAccount =
        serde_json::from_str(SERVICE_ACCOUNT).expect("fixture is a DfnsServiceAccount");
    let secret: PartialObjectMeta<Secret> =
        serde_json::from_str(SECRET_METADATA).expect("fixture is a Secret's metadata");
    let json_bytes = SERVICE_ACCOUNT.len();
    let managed_fields_bytes =
        serde_json::to_string(&service_account.metadata.managed_fields).map_or(0, |s| s.len());

    let (unstripped, _) = bytes_per_object(&service_account, |_| {});
    let (stripped, stripped_json) =
        bytes_per_object(&service_account, strip_for_cache::<DfnsServiceAccount>);
    let (secret_bytes, secret_json) = bytes_per_object(&secret, |_| {});

    let (recorder_entry, series_entry) = event_cache_entry_bytes();
    let (listed_pem, listed) = listed_identity_bytes();
    let status_as_json = status_as_json_bytes(&service_account);

    let section = json!({
        "dfns_service_account_bytes": stripped,
        "dfns_service_account_unstripped_bytes": unstripped,
        "dfns_service_account_json_bytes": json_bytes,
        "dfns_service_account_stripped_json_bytes": stripped_json,
        "dfns_service_account_managed_fields_json_bytes": managed_fields_bytes,
        "inline_bytes": {
            "dfns_service_account": std::mem::size_of::<DfnsServiceAccount>(),
            "object_meta": std::mem::size_of::<ObjectMeta>(),
            "credential_spec": std::mem::size_of::<dfns_operator::api::CredentialSpec>(),
            "credential_status": std::mem::size_of::<dfns_operator::api::CredentialStatus>(),
        },
        "listed_identity_bytes": listed,
        "listed_identity_with_pem_bytes": listed_pem,
        "dfns_service_account_status_as_json_bytes": status_as_json,
        "metadata_only_secret_bytes": secret_bytes,
        "metadata_only_secret_json_bytes": secret_json,
        "event_cache": {
            "kube_recorder_entry_bytes": recorder_entry,
            "kube_recorder_entries_after_10k_creates": 10_000,
            "kube_recorder_mib_after_10k_creates": (recorder_entry as f64 * 10_000.0 / 1_048_576.0 * 10.0).round() / 10.0,
            "bounded_entry_bytes": series_entry,
            "bounded_capacity": event_series::CAPACITY,
            "bounded_mib_at_capacity": (series_entry as f64 * event_series::CAPACITY as f64 / 1_048_576.0 * 100.0).round() / 100.0,
            "what": "kube-runtime's Recorder keeps every Event it published for 6 minutes (one Created Event per create, so 10,000 entries after 10,000 creates), each a whole events.k8s.io/v1 Event and its key; the operator's cache (controller/event_series.rs) keeps at most CAPACITY entries of a key and the Event's name. Recorder's types are private: its entry is measured as a HashMap with the same key fields and value",
        },
        "parameters": { "copies": COPIES, "fixtures": "benches/cache_bytes/fixtures/" },
        "units": {
            "dfns_service_account_bytes": "heap bytes per object in a reflector store (stripped, as the operator caches it)",
            "dfns_service_account_unstripped_bytes": "heap bytes per object, as received",
            "metadata_only_secret_bytes": "heap bytes per PartialObjectMeta<Secret> in a reflector store",
            "listed_identity_bytes": "heap bytes per entry of the shared Dfns listing (controller/inventory.rs: id -> Identity, key kept as its SHA256: fingerprint), from a service account as the emulator lists it",
            "listed_identity_with_pem_bytes": "the same entry with the key kept as PEM (before the fingerprint)",
            "dfns_service_account_status_as_json_bytes": "heap bytes per object if a cache kept metadata and spec as types and the status as its JSON text (not what the operator does; the size of a possible next step)",
            "dfns_service_account_json_bytes": "bytes of the object's JSON as received",
            "inline_bytes": "size_of the Rust type: what one object takes before any of its fields' heap allocations",
        },
    });
    println!("{}", serde_json::to_string_pretty(&section).expect("JSON"));
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let path = dir.join("results.json");
    let all = report::merge(&path, &[("cache", section)], false);
    std::fs::write(&path, serde_json::to_string_pretty(&all).expect("JSON"))
        .expect("write results.json");
    std::fs::write(dir.join("results.md"), report::markdown(&all)).expect("write results.md");
    eprintln!("cache_bytes: saved to {}", path.display());
}

/// Live heap bytes per object for `COPIES` copies of `template` (renamed, then `prepare`d) in a
/// reflector store; and the JSON size of one prepared copy.
fn bytes_per_object<K>(template: &K, prepare: impl Fn(&mut K)) -> (u64, usize)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::Serialize + 'static,
{
    let mut sample = template.clone();
    prepare(&mut sample);
    let json = serde_json::to_string(&sample).map_or(0, |s| s.len());
    drop(sample);

    let mut writer: Writer<K> = Writer::default();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..COPIES {
        let mut obj = template.clone();
        obj.meta_mut().name = Some(format!("sa-{i}"));
        obj.meta_mut().uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
        prepare(&mut obj);
        writer.apply_watcher_event(&watcher::Event::Apply(obj));
    }
    let after = LIVE.load(Ordering::Relaxed);
    let per_object = (after - before).max(0) as u64 / COPIES as u64;
    drop(writer);
    (per_object, json)
}

/// Heap bytes per entry: kube-runtime's `Recorder` cache (a `Created` Event, as it builds one)
/// and the operator's bounded cache.
fn event_cache_entry_bytes() -> (u64, u64) {
    const ENTRIES: usize = 1_000;
    let regarding = |i: usize| ObjectReference {
        api_version: Some("dfns.io/v1alpha1".into()),
        kind: Some("DfnsServiceAccount".into()),
        name: Some(format!("sa-{i}")),
        namespace: Some("bench-throughput-1a2b3c".into()),
        resource_version: Some("123456".into()),
        uid: Some(format!("00000000-0000-0000-0000-{i:012}")),
        field_path: None,
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "Created".into(),
        note: Some("created Dfns service account us-3k5qq-l2nn8-9b2bmrblqb6l2kll with token to-6ii1u-vq7oh-8ibi1jmfl9kl8jq1".into()),
        action: "Created".into(),
        secondary: None,
    };

    type RecorderKey = (
        EventType,
        String,
        String,
        String,
        Option<String>,
        ObjectReference,
        Option<ObjectReference>,
    );
    // `ObjectReference` has no `Hash` (kube-runtime wraps it); the key is kept whole beside the
    // Event, under its index, which costs the same memory.
    let mut recorder: std::collections::HashMap<usize, (RecorderKey, K8sEvent)> =
        Default::default();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..ENTRIES {
        let reference = regarding(i);
        let k8s_event = K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            regarding: Some(reference.clone()),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!("sa-{i}.18a2b3c4d5e6f708")),
                ..ObjectMeta::default()
            },
            reporting_controller: Some("dfns-operator".into()),
            reporting_instance: Some("dfns-operator-7d9f8b6c5-x2k4p".into()),
            type_: Some("Normal".into()),
            ..K8sEvent::default()
        };
        let key = (
            event.type_,
            event.action.clone(),
            event.reason.clone(),
            "dfns-operator".to_owned(),
            Some("dfns-operator-7d9f8b6c5-x2k4p".to_owned()),
            reference,
            None,
        );
        recorder.insert(i, (key, k8s_event));
    }
    let recorder_entry = (LIVE.load(Ordering::Relaxed) - before).max(0) as u64 / ENTRIES as u64;
    drop(recorder);

    let mut series = SeriesCache::default();
    let now = std::time::Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..ENTRIES {
        let reference = regarding(i);
        let namespace = reference.namespace.clone().unwrap_or_default();
        series.remember(
            SeriesKey::of(&event, &reference),
            namespace,
            format!("sa-{i}.18a2b3c4d5e6f708"),
            now,
        );
    }
    let series_entry = (LIVE.load(Ordering::Relaxed) - before).max(0) as u64 / ENTRIES as u64;
    (recorder_entry, series_entry)
}

/// Heap bytes per entry of the shared Dfns listing: with the key as PEM, and as the operator keeps
/// it (fingerprinted). The service account is built as the emulator lists one.
fn listed_identity_bytes() -> (u64, u64) {
    use dfns_client::Identity;
    use dfns_client::types::service_account::ServiceAccount;
    const ENTRIES: usize = 2_000;
    let key = dfns_client::generate_p256().expect("P-256 key");
    let listed = |i: usize| -> Identity {
        let account: ServiceAccount = serde_json::from_value(json!({
            "userInfo": {
                "username": format!("sa-{i}"), "name": format!("sa-{i}"),
                "userId": format!("us-58un8-1kf31-{i:016}"), "kind": "CustomerEmployee",
                "credentialUuid": format!("cr-4ax90-1zi1a-{i:016}"),
                "orgId": "or-mambw-sl0r0-4ax901zi1au2jne9", "permissions": [],
                "isActive": true, "isServiceAccount": true, "isRegistered": true,
                "permissionAssignments": [],
                "externalId": format!("00000000-0000-0000-0000-{i:012}"),
            },
            "accessTokens": [{
                "dateCreated": "2026-12-07T18:20:13.123Z",
                "credId": "wWoNtid4ioylN31FseSQ-vZ2fg5_nC23Wb_LKwKc7BI",
                "isActive": true, "kind": "ServiceAccount",
                "linkedUserId": format!("us-58un8-1kf31-{i:016}"),
                "linkedAppId": "ap-2k3l4-5m6n7-8o9p0q1r2s3t4u5v",
                "name": format!("sa-{i}"), "orgId": "or-mambw-sl0r0-4ax901zi1au2jne9",
                "permissionAssignments": [], "publicKey": key.public_key_pem,
                "tokenId": format!("to-fqxga-jf64w-{i:016}"),
                "externalId": format!("00000000-0000-0000-0000-{i:012}"),
            }],
        }))
        .expect("a listed service account");
        account.into()
    };
    let per_entry = |prepare: fn(Identity) -> Identity| {
        let mut items = std::collections::HashMap::new();
        let before = LIVE.load(Ordering::Relaxed);
        for i in 0..ENTRIES {
            let identity = prepare(listed(i));
            items.insert(identity.id.clone(), identity);
        }
        let bytes = (LIVE.load(Ordering::Relaxed) - before).max(0) as u64 / ENTRIES as u64;
        drop(items);
        bytes
    };
    (per_entry(|i| i), per_entry(Identity::fingerprinted))
}

/// Heap bytes per object of a cache that kept metadata and spec as types and the status as its
/// JSON text, in the same kind of map a reflector store is.
fn status_as_json_bytes(template: &DfnsServiceAccount) -> u64 {
    struct StatusAsJson {
        _metadata: ObjectMeta,
        _spec: dfns_operator::api::DfnsServiceAccountSpec,
        _status: Option<Box<str>>,
    }
    let mut store = std::collections::HashMap::new();
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..COPIES {
        let mut obj = template.clone();
        strip_for_cache(&mut obj);
        obj.metadata.name = Some(format!("sa-{i}"));
        obj.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
        let key = kube::runtime::reflector::ObjectRef::from_obj(&obj);
        let lite = StatusAsJson {
            _status: obj
                .status
                .as_ref()
                .map(|s| serde_json::to_string(s).expect("JSON").into_boxed_str()),
            _metadata: obj.metadata,
            _spec: obj.spec,
        };
        store.insert(key, std::sync::Arc::new(lite));
    }
    let per_object = (LIVE.load(Ordering::Relaxed) - before).max(0) as u64 / COPIES as u64;
    drop(store);
    per_object
}
