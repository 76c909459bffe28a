//! conformance/README.md's walkthrough shows what the suite really prints:
//! its `tiny.py` is run as written, with the same command, and the output
//! must be the sample's, but for what changes from run to run (ports,
//! times, the order in which concurrent cases end).

use std::path::Path;
use std::process::Command;

/// The lines of the ```text block that follows `after` in `readme`, their
/// indentation taken off.
fn sample(readme: &str, after: &str) -> Vec<String> {
    let from = readme.find(after).unwrap_or_else(|| panic!("README: no {after:?}"));
    let block = &readme[from..];
    let start = block.find("```text\n").expect("a text block") + "```text\n".len();
    let end = start + block[start..].find("```").expect("the block's end");
    block[start..end].lines().map(|line| line.trim_start().to_owned()).filter(|line| !line.is_empty()).collect()
}

/// `text` without what differs between runs, its lines sorted.
fn normalised(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|line| line.trim_start().to_owned())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
            for (i, word) in words.clone().iter().enumerate() {
                let number = word.trim_end_matches(['.', ',']).parse::<f64>().is_ok();
                let unit = words.get(i + 1).map(String::as_str);
                let port = i > 0 && words[i - 1] == "127.0.0.1";
                if number && (port || matches!(unit, Some("ms" | "s" | "s."))) {
                    words[i] = "N".to_owned();
                }
            }
            words.join(" ")
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_walkthrough_prints_what_the_suite_prints() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is needed to run the walkthrough's tiny.py");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("conformance/README.md");
    let start = readme.find("```python\n").expect("tiny.py") + "```python\n".len();
    let tiny = &readme[start..start + readme[start..].find("```").expect("its end")];
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("tiny.py"), tiny).expect("tiny.py");
    let suite = env!("CARGO_BIN_EXE_ferry-conformance");
    let run = |args: &[&str]| Command::new(suite).args(args).current_dir(dir.path()).output().expect("the suite runs");

    let cases = ["--case", "get.missing", "--case", "path.traversal.dotdot", "--case", "get.size.1m"];
    let output = run(&[&["--server-cmd", "python3 tiny.py {root} {port}"][..], &cases].concat());
    assert_eq!(output.status.code(), Some(1), "tiny.py fails two cases");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        normalised(text(&output.stderr)),
        normalised(sample(&readme, "On stderr, each failure")),
        "conformance/README.md's stderr sample is not what the suite prints"
    );
    assert_eq!(
        normalised(text(&output.stdout)),
        normalised(sample(&readme, "On stdout, the report")),
        "conformance/README.md's stdout sample is not what the suite prints"
    );

    let output = run(&["--server-cmd", "python3 tiny.py {root} {port}", "--fuzz", "2000", "--seed", "1"]);
    assert_eq!(output.status.code(), Some(1), "tiny.py falls to the fuzzer");
    assert_eq!(
        normalised(text(&output.stderr)),
        normalised(sample(&readme, "falls at the first line that is not")),
        "conformance/README.md's fuzz sample is not what the fuzzer prints"
    );
}
