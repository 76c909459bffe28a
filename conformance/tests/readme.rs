//! README.md's commands work as a newcomer types them: every `ferry …` line
//! of its shell blocks runs, exit status 0, against `ferry-std` sharing
//! the `demo/` folder the first command shares; the other lines are
//! cargo's and CI's own (which CI runs), or the block is marked
//! `<!-- illustrative -->`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferry_conformance::implementation::{Implementation, Launch};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The lines of each ```sh block, unless the block is marked illustrative.
fn shell_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().peekable();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" && previous.trim() != "<!-- illustrative -->" {
            let mut block = Vec::new();
            for inner in lines.by_ref() {
                if inner.trim() == "```" {
                    break;
                }
                block.push(inner.to_owned());
            }
            blocks.push(block);
        }
        previous = line;
    }
    blocks
}

/// A shell line's words: split at spaces, single quotes kept together, a
/// trailing `# comment` dropped.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            '#' if !quoted && !any => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[test]
fn every_command_in_readme_runs_as_shown() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    let std = Implementation::workspace("std", "ferry-std").expect("ferry-std builds");
    let Some(Launch::Ferry(binary)) = &std.server else { unreachable!() };
    let mut server = Command::new(binary)
        .args(["serve", "demo", "--listen", "127.0.0.1:0", "-q"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry-std serves demo/");
    let mut ready = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut ready).expect("ready line");
    let addr = ready.trim().strip_prefix("listening on ").expect("listening on ADDR").to_owned();
    let scratch = tempfile::tempdir().expect("scratch");
    let mut ran = 0;
    for block in shell_blocks(&readme) {
        for line in block {
            let words = words(&line);
            let Some(first) = words.first() else { continue };
            match first.as_str() {
                "alias" => assert!(line.contains("-p ferry-std"), "the alias is ferry-std's: {line}"),
                "ferry" => {
                    // As typed, with the server's real port, and /tmp/ in a
                    // folder of the test's own.
                    let scratch_path = format!("{}/", scratch.path().display());
                    let args: Vec<String> = words[1..]
                        .iter()
                        .map(|w| w.replace("127.0.0.1:7878", &addr).replace("/tmp/", &scratch_path))
                        .collect();
                    let output = Command::new(binary)
                        .args(&args)
                        .current_dir(scratch.path())
                        .stdin(Stdio::null())
                        .output()
                        .expect("ferry runs");
                    assert!(
                        output.status.success(),
                        "README: `{line}` exited {:?}: {}",
                        output.status.code(),
                        String::from_utf8_lossy(&output.stderr)
                    );
                    ran += 1;
                }
                "cargo" if words.get(1).is_some_and(|w| w == "test") => {
                    assert!(ci.contains(line.trim()), "CI runs `{line}`")
                }
                "cargo" if words.iter().any(|w| w == "serve") => {
                    let shared = words.last().expect("a folder");
                    assert!(root().join(shared).is_dir(), "README shares {shared}, which must be in the repository");
                }
                "cargo" if words.get(1).is_some_and(|w| w == "install") => {
                    assert!(line.contains("--locked"), "an install pins the lock file: {line}");
                    let path = words.iter().skip_while(|w| *w != "--path").nth(1).expect("--path DIR");
                    assert!(root().join(path).join("Cargo.toml").exists(), "{path} is a crate");
                }
                "cargo" | ".ci/run" | "benches/compare" | "benches/report" => {}
                other => panic!("README: `{line}`: {other} is neither run by this test nor marked illustrative"),
            }
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(ran >= 5, "README's fetching examples ran ({ran})");
}
