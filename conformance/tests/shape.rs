//! The implementations have the same shape: the same source files, and in
//! each file the functions they share in the same order, so that
//! `diff impl-std/src/server.rs impl-tokio/src/server.rs` reads as a lesson
//! in what the runtime changes. Helpers only one runtime needs (std's
//! registry of connections to wake at shutdown, smol's `until`) may sit
//! beside them. Each has the same `examples/chat.rs`. And README.md's
//! concept index names only functions that exist where it says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CRATES: [&str; 5] = ["impl-std", "impl-tokio", "impl-smol", "impl-async-std", "impl-compio"];

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src")
}

fn files(krate: &str) -> BTreeSet<String> {
    std::fs::read_dir(src(krate))
        .unwrap_or_else(|e| panic!("{krate}: {e}"))
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// The names of the functions defined in a file, in order.
fn functions(krate: &str, file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(src(krate).join(file)).unwrap_or_else(|e| panic!("{krate}/{file}: {e}"));
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().trim_start_matches("pub ").trim_start_matches("async ");
            let name = rest.strip_prefix("fn ")?;
            Some(name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        })
        .collect()
}

#[test]
fn implementations_have_the_same_files() {
    let reference = files(CRATES[0]);
    for krate in &CRATES[1..] {
        assert_eq!(files(krate), reference, "{krate}/src and {}/src differ in their files", CRATES[0]);
    }
}

#[test]
fn every_runtime_has_the_same_chat() {
    // `examples/chat.rs`, where README's reading starts, is one program five ways.
    for krate in CRATES {
        assert_eq!(functions(krate, "../examples/chat.rs"), ["main", "talk"], "{krate}/examples/chat.rs");
    }
}

#[test]
fn shared_functions_come_in_the_same_order() {
    for file in files(CRATES[0]) {
        let all: Vec<Vec<String>> = CRATES.iter().map(|krate| functions(krate, &file)).collect();
        let shared: Vec<&String> = all[0].iter().filter(|name| all.iter().all(|fns| fns.contains(name))).collect();
        for (krate, fns) in CRATES.iter().zip(&all) {
            let order: Vec<&String> = fns.iter().filter(|name| shared.contains(name)).collect();
            assert_eq!(order, shared, "{krate}/src/{file}: shared functions in another order");
        }
        // A client is a client on every runtime: no function may be missing.
        if file == "client.rs" {
            for (krate, fns) in CRATES.iter().zip(&all) {
                let missing: Vec<&String> = all[0].iter().filter(|name| !fns.contains(name)).collect();
                assert!(missing.is_empty(), "{krate}/src/{file} lacks {missing:?}");
            }
        }
    }
}

/// The cells of README.md's concept index, as (row, implementation, file,
/// function).
fn concept_cells() -> Vec<(String, &'static str, String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README.md");
    let table = readme
        .split_once("<!-- concepts:start -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- concepts:end -->"))
        .map(|(table, _)| table)
        .expect("README.md has the concepts:start and concepts:end markers");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split('|').map(str::trim).collect();
    assert_eq!(
        header[2..7],
        ["std", "tokio", "smol", "async-std", "compio"],
        "the columns are the implementations, in order"
    );
    let mut cells = Vec::new();
    for row in lines.skip(1).filter(|line| line.starts_with('|')) {
        let columns: Vec<&str> = row.split('|').map(str::trim).collect();
        for (krate, cell) in CRATES.iter().zip(&columns[2..7]) {
            let named = cell.strip_prefix('`').and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
            let (file, function) = named
                .and_then(|name| name.split_once(": "))
                .unwrap_or_else(|| panic!("{}: {cell:?} does not start with `file.rs: function`", columns[1]));
            cells.push((columns[1].to_owned(), *krate, file.to_owned(), function.to_owned()));
        }
    }
    cells
}

#[test]
fn the_concept_index_names_functions_that_exist() {
    let cells = concept_cells();
    assert!(cells.len() >= CRATES.len() * 10, "the concept index has {} cells", cells.len());
    for (row, krate, file, function) in cells {
        let fns = functions(krate, &file);
        assert!(fns.contains(&function), "README concept {row:?}: {krate}/src/{file} has no fn {function}");
    }
}
