use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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
    owned.wrote(&secret("app", "10"));
    owned.wrote(&secret("app", "11"));
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "10"))).is_empty());
    assert!(woken(&owned, watcher::Event::Apply(meta("app", "11"))).is_empty());
    owned.wrote(&secret("app", "20"));
    owned.wrote(&secret("app", "21"));
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
    owned.wrote(&secret("app", "10"));
    owned.wrote(&secret("app", "11"));
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
    owned.wrote(&secret("app", "5"));
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
