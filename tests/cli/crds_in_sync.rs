//! `crds/` must hold exactly what `dfns-operator crds` prints, so that the chart, `kubectl apply`
//! and the types never disagree.

#[test]
fn committed_crds_match_the_generated_ones() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/dfns.io.yaml"))
            .expect("crds/dfns.io.yaml exists");
    let generated = dfns_operator::api::crds_yaml();
    assert!(
        committed == generated,
        "crds/dfns.io.yaml is out of date: run `make crds` and commit the result"
    );
}
