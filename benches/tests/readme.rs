//! benches/README.md's tables are what `benches/report --markdown` makes of
//! the runs recorded in `benches/results/`: a figure there is always one
//! that a run measured, and that run's record is beside it. After new runs,
//! `benches/report --readme` updates both.

use std::path::Path;
use std::process::Command;

#[test]
fn readme_tables_are_made_from_the_recorded_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .arg(root.join("benches/report"))
        .arg("--markdown")
        .arg(root.join("benches/results"))
        .output()
        .expect("python3 runs benches/report");
    assert!(out.status.success(), "benches/report --markdown: {}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let readme = std::fs::read_to_string(root.join("benches/README.md")).expect("benches/README.md");
    // README.md shows one summary table of the same run.
    let front = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut blocks = 0;
    for block in generated.split_inclusive("-->\n\n").map(str::trim_end).filter(|block| !block.is_empty()) {
        let name = block.split(':').nth(1).expect("<!-- table:NAME:start -->");
        assert!(block.ends_with(&format!("<!-- table:{name}:end -->")), "a block of one table: {block}");
        let page = if name == "summary" { &front } else { &readme };
        assert!(
            page.contains(block),
            "the {name} table is not what benches/results/ says; run `benches/report --readme benches/results`"
        );
        blocks += 1;
    }
    assert_eq!(
        blocks, 5,
        "compare (and README's summary of it), scale, cost and slowdisk are recorded in benches/results/"
    );
}
