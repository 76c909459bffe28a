//! `--junit` writes XML that a JUnit consumer can read: checked with a real
//! XML parser, on outcomes that pass, fail with hostile text, and do not
//! apply.

use std::time::Duration;

use ferry_conformance::cases;
use ferry_conformance::report::junit;
use ferry_conformance::runner::{Outcome, Verdict};

#[test]
fn junit_output_parses_and_counts_what_happened() {
    let all = cases::all();
    let outcome = |index: usize, client: Option<&str>, verdict| Outcome {
        case: all[index],
        server: "std".to_owned(),
        client: client.map(str::to_owned),
        verdict,
        elapsed: Duration::from_millis(3),
        by_hand: None,
    };
    let outcomes = vec![
        outcome(0, None, Verdict::Pass),
        outcome(1, None, Verdict::Fail("expected \"OK 13\\n\"; got <\"ERR & \u{1b}[2J\"> 'quoted'".to_owned())),
        outcome(2, Some("tokio"), Verdict::NotApplicable("needs a ferry client".to_owned())),
    ];
    let xml = junit(&outcomes, "ferry-conformance --server-cmd 'x {root} {port}'");
    let document = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("not XML: {e}\n{xml}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("3"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("1"));
    let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 2, "one suite per subject");
    let cases: Vec<_> = document.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3);
    assert!(cases.iter().any(|case| case.attribute("name").is_some_and(|name| name.starts_with(all[0].id))));
    // Grouped by implementation: no case name twice under one class name.
    let classes: std::collections::BTreeSet<_> = cases.iter().filter_map(|case| case.attribute("classname")).collect();
    assert_eq!(classes.len(), 2, "the class is the subject: {classes:?}");
    let failure = document.descendants().find(|n| n.has_tag_name("failure")).expect("a failure");
    assert!(failure.attribute("message").expect("a message").contains("ERR &"));
    let rerun = format!("rerun: ferry-conformance --server-cmd 'x {{root}} {{port}}' --case {}", all[1].id);
    assert!(failure.text().expect("a text").contains(&rerun), "the failure says how to rerun it");
    assert!(document.descendants().any(|n| n.has_tag_name("skipped")));
}
