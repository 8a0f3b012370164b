use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use futures::FutureExt;

use super::*;

fn meta(name: &str, version: &str) -> PartialObjectMeta<Secret> {
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("team".into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        },
        _phantom: Default::default(),
    }
}

fn secret(name: &str, version: &str) -> Secret {
    Secret {
        metadata: meta(name, version).metadata,
        ..Secret::default()
    }
}

fn listed(names: &[(&str, &str)]) -> OwnedSecrets {
    let owned = OwnedSecrets::default();
    owned.apply(watcher::Event::Init);
    for (name, version) in names {
        assert!(
            owned
                .apply(watcher::Event::InitApply(meta(name, version)))
                .is_empty(),
            "the first list wakes nobody"
        );
    }
    owned.apply(watcher::Event::InitDone);
    owned
}

/// The operator wrote `name` and the API server answered with `version`.
fn wrote(owned: &OwnedSecrets, name: &str, version: &str) {
    owned.writing("team", name).wrote(&secret(name, version));
}

/// The owners woken outside a watch event (when a write was answered), so far.
fn woken_since(
    changed: &mut (impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Unpin),
) -> Vec<String> {
    let mut versions = Vec::new();
    while let Some(Some(Ok(meta))) = changed.next().now_or_never() {
        versions.push(meta.metadata.resource_version.unwrap_or_default());
    }
    versions
}

fn woken(owned: &OwnedSecrets, event: watcher::Event<PartialObjectMeta<Secret>>) -> Vec<String> {
    owned
        .apply(event)
        .into_iter()
        .map(|m| m.metadata.resource_version.unwrap_or_default())
        .collect()
}

#[test]
fn the_operators_own_writes_wake_nobody_and_other_changes_wake_the_owner() {
    let owned = listed(&[]);
    // A create writes the key, then the token; the watch reports both, or only the last.
    wrote(&owned, "app", "10");
    wrote(&owned, "app", "11");
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "10"))).is_empty());
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "11"))).is_empty());
    wrote(&owned, "app", "20");
    wrote(&owned, "app", "21");
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "21"))).is_empty());
    // Someone else edits it, then deletes it.
    assert_eq!(
        woken(&owned, watcher::Event::Apply(meta("app", "30"))),
        ["30"]
    );
    assert_eq!(
        woken(&owned, watcher::Event::Delete(meta("app", "31"))),
        ["31"]
    );
}

#[test]
fn nothing_written_is_remembered_once_the_watch_reported_it() {
    let owned = listed(&[]);
    wrote(&owned, "app", "10");
    wrote(&owned, "app", "11");
    owned.apply(watcher::Event::Apply(meta("app", "11")));
    let state = owned.state.lock().unwrap();
    let known = &state.secrets[&key("team", "app")];
    assert!(known.written.is_empty());
    assert_eq!(&*known.version, "11");
}

#[test]
fn a_secret_is_known_absent_only_once_listed_and_not_seen_or_written() {
    let owned = OwnedSecrets::default();
    assert!(
        !owned.known_absent("team", "app"),
        "not listed yet: read it"
    );
    let owned = listed(&[("other", "1")]);
    assert!(owned.known_absent("team", "app"));
    assert!(!owned.known_absent("team", "other"));
    wrote(&owned, "app", "5");
    assert!(
        !owned.known_absent("team", "app"),
        "written, not yet reported"
    );
    owned.apply(watcher::Event::Delete(meta("app", "6")));
    assert!(owned.known_absent("team", "app"));
    owned.exists("team", "app");
    assert!(!owned.known_absent("team", "app"), "a create met it");
}

#[test]
fn a_relist_wakes_the_owners_of_new_and_changed_secrets_and_drops_the_gone() {
    let owned = listed(&[("same", "1"), ("edited", "2"), ("gone", "3")]);
    owned.apply(watcher::Event::Init);
    assert!(woken(&owned, watcher::Event::InitApply(meta("same", "1"))).is_empty());
    assert_eq!(
        woken(&owned, watcher::Event::InitApply(meta("edited", "7"))),
        ["7"]
    );
    assert_eq!(
        woken(&owned, watcher::Event::InitApply(meta("new", "8"))),
        ["8"]
    );
    owned.apply(watcher::Event::InitDone);
    assert!(owned.known_absent("team", "gone"));
    assert!(!owned.known_absent("team", "new"));
}

#[test]
fn the_watch_reporting_a_write_before_its_answer_wakes_nobody() {
    let owned = listed(&[]);
    let mut changed = owned.changed();
    let writing = owned.writing("team", "app");
    // The API server's watch can be faster than its answer to the writer.
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "10"))).is_empty());
    writing.wrote(&secret("app", "10"));
    assert!(woken_since(&mut changed).is_empty());
    let state = owned.state.lock().unwrap();
    let known = &state.secrets[&key("team", "app")];
    assert!(known.held.is_empty() && known.written.is_empty() && known.in_flight == 0);
}

#[test]
fn another_change_during_a_write_wakes_the_owner_once_the_write_is_answered() {
    let owned = listed(&[("app", "5")]);
    let mut changed = owned.changed();
    let writing = owned.writing("team", "app");
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "9"))).is_empty());
    assert!(
        woken_since(&mut changed).is_empty(),
        "held while the write is in flight"
    );
    writing.wrote(&secret("app", "10"));
    assert_eq!(woken_since(&mut changed), ["9"]);
    // The write's own event, after its answer, wakes nobody.
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "10"))).is_empty());
}

#[test]
fn a_failed_write_releases_what_it_held() {
    let owned = listed(&[("app", "5")]);
    let mut changed = owned.changed();
    let writing = owned.writing("team", "app");
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "9"))).is_empty());
    drop(writing);
    assert_eq!(woken_since(&mut changed), ["9"]);
}

#[test]
fn a_create_that_met_a_secret_the_watch_does_not_show_leaves_it_to_be_read() {
    let owned = listed(&[]);
    // A Secret of that name without the operator's label: the create is refused.
    let failed_create = owned.writing("team", "foreign");
    owned.exists("team", "foreign");
    drop(failed_create);
    assert!(!owned.known_absent("team", "foreign"));
}

#[test]
fn a_deletion_during_a_write_wakes_the_owner_at_once() {
    let owned = listed(&[("app", "5")]);
    let _writing = owned.writing("team", "app");
    assert_eq!(
        woken(&owned, watcher::Event::Delete(meta("app", "6"))),
        ["6"]
    );
}
