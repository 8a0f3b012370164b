use super::*;

const DEBOUNCE: Duration = Duration::from_secs(10);

/// `second` seconds and `millis` milliseconds after the epoch.
fn at(second: i64, millis: i64) -> Timestamp {
    Timestamp::from_millisecond(second * 1_000 + millis).unwrap()
}

fn text(second: i64) -> String {
    at(second, 0).to_string()
}

fn found(restarted_at: Option<&str>, created_at: Option<Timestamp>) -> Target<'_> {
    Target::Found {
        restarted_at,
        created_at,
    }
}

#[test]
fn a_switch_is_due_when_its_debounce_window_ends_counted_from_the_stored_second() {
    let switched = at(1_000, 700);
    let cases = [
        (at(1_000, 700), Due::At(at(1_010, 0))),
        (at(1_009, 999), Due::At(at(1_010, 0))),
        (at(1_010, 0), Due::Now),
        (at(2_000, 0), Due::Now),
    ];
    for (now, expected) in cases {
        assert_eq!(due(switched, now, DEBOUNCE), expected, "now {now}");
    }
}

#[test]
fn a_window_shorter_than_a_second_is_a_second() {
    let switched = at(1_000, 0);
    assert_eq!(
        due(switched, at(1_000, 500), Duration::ZERO),
        Due::At(at(1_001, 0))
    );
    assert_eq!(due(switched, at(1_001, 0), Duration::ZERO), Due::Now);
}

#[test]
fn which_targets_need_a_restart() {
    let switched = at(1_000, 0);
    let now = at(1_010, 250);
    let restart = Decision::Restart {
        restarted_at: text(1_010),
    };
    let (before, same_second, after) = (text(999), text(1_000), text(1_001));
    let cases: [(&str, Target<'_>, Decision); 9] = [
        ("never restarted", found(None, None), restart.clone()),
        (
            "restarted before the switch",
            found(Some(&before), None),
            restart.clone(),
        ),
        (
            // The stored switch second may hide a switch later in that second.
            "restarted in the switch's second",
            found(Some(&same_second), None),
            restart.clone(),
        ),
        (
            "restarted after the switch",
            found(Some(&after), None),
            Decision::Covered,
        ),
        (
            "an annotation that is no time",
            found(Some("yesterday"), None),
            restart.clone(),
        ),
        (
            "created before the switch",
            found(None, Some(at(900, 0))),
            restart.clone(),
        ),
        (
            "created after the switch",
            found(None, Some(at(1_001, 0))),
            Decision::Covered,
        ),
        (
            "restarted before, created after",
            found(Some(&before), Some(at(1_005, 0))),
            Decision::Covered,
        ),
        ("missing", Target::Missing, Decision::Missing),
    ];
    for (case, target, expected) in cases {
        assert_eq!(decide(switched, now, &target), expected, "{case}");
    }
}

/// The value a restart writes always covers the switch it was made for, so the next reconcile
/// (or a restarted operator) finds nothing to do: never two restarts for one switch.
#[test]
fn a_restart_covers_its_switch_so_it_is_never_repeated() {
    for debounce in [Duration::ZERO, Duration::from_millis(1_500), DEBOUNCE] {
        let switched = at(1_000, 999);
        let Due::At(end) = due(switched, switched, debounce) else {
            panic!("due later");
        };
        let Decision::Restart { restarted_at } = decide(switched, end, &found(None, None)) else {
            panic!("a restart");
        };
        assert_eq!(
            decide(switched, end, &found(Some(&restarted_at), None)),
            Decision::Covered,
            "debounce {debounce:?}"
        );
    }
}

/// Three resources naming one Deployment switch within the window: the first one's restart
/// covers the other two (one restart), and a later switch gets a new, later value.
#[test]
fn switches_within_the_window_share_one_restart_and_a_later_one_gets_a_new_value() {
    let switches = [at(1_000, 100), at(1_002, 900), at(1_008, 0)];
    let first_due = at(1_010, 0);
    let Decision::Restart { restarted_at } = decide(switches[0], first_due, &found(None, None))
    else {
        panic!("the first switch restarts");
    };
    for switched in &switches[1..] {
        let Due::At(end) = due(*switched, first_due, DEBOUNCE) else {
            panic!("due later");
        };
        assert_eq!(
            decide(*switched, end, &found(Some(&restarted_at), None)),
            Decision::Covered,
            "switch at {switched}"
        );
    }
    let later = at(1_030, 0);
    assert_eq!(
        decide(later, at(1_040, 0), &found(Some(&restarted_at), None)),
        Decision::Restart {
            restarted_at: text(1_040)
        },
        "a later switch restarts again, with another value"
    );
}
