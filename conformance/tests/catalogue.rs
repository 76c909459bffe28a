//! `conformance/README.md` lists every case, exactly as the code defines
//! them; and ids are unique.

use std::collections::BTreeSet;

use ferry_conformance::cases;

#[test]
fn readme_lists_every_case() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let listed = readme
        .split_once("<!-- cases:start -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- cases:end -->"))
        .map(|(table, _)| table)
        .expect("README.md has the cases:start and cases:end markers");
    assert!(
        listed == cases::catalogue(),
        "conformance/README.md's case table is out of date; replace it with the output of \
         `cargo run -p ferry-conformance -- --list`"
    );
}

#[test]
fn ids_are_unique_and_well_formed() {
    let mut seen = BTreeSet::new();
    for case in cases::all() {
        assert!(seen.insert(case.id), "{} is used twice", case.id);
        assert!(
            case.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)),
            "{}",
            case.id
        );
        assert!(case.spec.starts_with('§'), "{}: spec {:?}", case.id, case.spec);
    }
}
