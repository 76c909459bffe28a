//! The implementations have the same shape: the same source files, and in
//! each file the functions they share in the same order, so that
//! `diff impl-std/src/server.rs impl-tokio/src/server.rs` reads as a lesson
//! in what the runtime changes. Helpers only one runtime needs (std's
//! registry of connections to wake at shutdown, smol's `until`) may sit
//! beside them. Each has the same `examples/chat.rs`. And docs/runtimes.md's
//! concept index names only functions that exist where it says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CRATES: [&str; 5] = ["impl-std", "impl-tokio", "impl-smol", "impl-async-std", "impl-compio"];

/// The implementations whose streams are futures-io's, which share what
/// they do alike in `ferry_app::futures`.
const FUTURES_IO: [&str; 2] = ["impl-smol", "impl-async-std"];

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
    functions_in(&src(krate).join(file))
}

/// The names of the functions defined in the file at `path`, in order.
fn functions_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|line| {
            let rest = line
                .trim_start()
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .trim_start_matches("async ");
            let name = rest.strip_prefix("fn ")?;
            Some(name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        })
        .collect()
}

/// Files that only one runtime needs, beside the shared ones: what std
/// lacks for a server (a registry of connections, a semaphore), and
/// compio's pools (its named blocking pool, each thread's pipes).
const ONLY: [(&str, &str); 2] = [("impl-std", "sync.rs"), ("impl-compio", "pool.rs")];

/// A crate's files less the ones only it needs.
fn shared_files(krate: &str) -> BTreeSet<String> {
    let mut files = files(krate);
    for (owner, file) in ONLY {
        if owner == krate {
            assert!(files.remove(file), "{krate}/src/{file} is listed as its own but does not exist");
        }
    }
    files
}

#[test]
fn implementations_have_the_same_files() {
    let reference = shared_files(CRATES[0]);
    for krate in &CRATES[1..] {
        assert_eq!(shared_files(krate), reference, "{krate}/src and {}/src differ in their files", CRATES[0]);
    }
}

/// How long a source file may grow: past it, a file holds more than one
/// concept, and a driver's `client.rs` or `server.rs` more than its
/// runtime's part of one (the rest belongs in the shared crates).
const MOST_LINES: [(&str, usize); 3] = [("client.rs", 130), ("server.rs", 150), ("", 500)];

#[test]
fn files_stay_small_enough_to_hold_one_concept() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = CRATES.iter().map(|krate| root.join(krate).join("src")).collect();
    for shared in ["engine", "share", "app"] {
        dirs.push(root.join("crates").join(shared).join("src"));
    }
    dirs.push(root.join("conformance/src"));
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    for path in files {
        // The conformance suite's case catalogues are lists, not concepts.
        if path.parent().is_some_and(|dir| dir.ends_with("conformance/src/cases")) {
            continue;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let driver = path.components().any(|c| c.as_os_str().to_string_lossy().starts_with("impl-"));
        let most = MOST_LINES
            .iter()
            .find(|(file, _)| file.is_empty() || (driver && *file == name))
            .map_or(500, |(_, most)| *most);
        let lines = std::fs::read_to_string(&path).expect("source").lines().count();
        assert!(lines <= most, "{}: {lines} lines, more than {most}", path.display());
    }
}

#[test]
fn every_runtime_has_the_same_chat() {
    // `examples/chat.rs`, where docs/runtimes.md's reading starts, is one program five ways.
    for krate in CRATES {
        assert_eq!(functions(krate, "../examples/chat.rs"), ["main", "talk"], "{krate}/examples/chat.rs");
    }
}

#[test]
fn shared_functions_come_in_the_same_order() {
    for file in shared_files(CRATES[0]) {
        let all: Vec<Vec<String>> = CRATES.iter().map(|krate| functions(krate, &file)).collect();
        let shared: Vec<&String> = all[0].iter().filter(|name| all.iter().all(|fns| fns.contains(name))).collect();
        for (krate, fns) in CRATES.iter().zip(&all) {
            let order: Vec<&String> = fns.iter().filter(|name| shared.contains(name)).collect();
            assert_eq!(order, shared, "{krate}/src/{file}: shared functions in another order");
        }
        // A client is a client on every runtime: no function may be missing,
        // unless smol and async-std have it written once for futures-io
        // (`ferry_app::futures`), where both find it.
        if file == "client.rs" {
            let futures_io = functions_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/app/src/futures.rs"));
            for (krate, fns) in CRATES.iter().zip(&all) {
                let shared_for_it = |name: &&String| FUTURES_IO.contains(krate) && futures_io.contains(*name);
                let missing: Vec<&String> =
                    all[0].iter().filter(|name| !fns.contains(name) && !shared_for_it(name)).collect();
                assert!(missing.is_empty(), "{krate}/src/{file} lacks {missing:?}");
            }
        }
    }
}

/// The rows of docs/runtimes.md's concept index, each cell split by implementation.
fn concept_rows() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/runtimes.md"))
        .expect("docs/runtimes.md");
    let table = readme
        .split_once("<!-- concepts:start -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- concepts:end -->"))
        .map(|(table, _)| table)
        .expect("docs/runtimes.md has the concepts:start and concepts:end markers");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split('|').map(str::trim).collect();
    assert_eq!(
        header[2..7],
        ["std", "tokio", "smol", "async-std", "compio"],
        "the columns are the implementations, in order"
    );
    lines
        .skip(1)
        .filter(|line| line.starts_with('|'))
        .map(|row| {
            let columns: Vec<&str> = row.split('|').map(str::trim).collect();
            (columns[1].to_owned(), columns[2..7].iter().map(|cell| (*cell).to_owned()).collect())
        })
        .collect()
}

/// The cells of docs/runtimes.md's concept index, as (row, implementation, file,
/// function).
fn concept_cells() -> Vec<(String, &'static str, String, String)> {
    let mut cells = Vec::new();
    for (row, columns) in concept_rows() {
        for (krate, cell) in CRATES.iter().zip(&columns) {
            let named = cell.strip_prefix('`').and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
            let (file, function) = named
                .and_then(|name| name.split_once(": "))
                .unwrap_or_else(|| panic!("{row}: {cell:?} does not start with `file.rs: function`"));
            cells.push((row.clone(), *krate, file.to_owned(), function.to_owned()));
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
        assert!(fns.contains(&function), "docs/runtimes.md concept {row:?}: {krate}/src/{file} has no fn {function}");
    }
}

/// Every Rust source file's text under `dir`.
fn sources(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            text.push_str(&sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            text.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
    text
}

#[test]
fn every_name_in_a_concept_cell_is_in_the_code() {
    // Not only the function a cell starts with: every name it puts in
    // backticks (a runtime's call, a type, a helper) is a word of that
    // implementation's code or of the shared crates', so a cell cannot keep
    // naming something the code stopped using.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shared = sources(&root.join("crates"));
    for (row, cells) in concept_rows() {
        for (krate, cell) in CRATES.iter().zip(&cells) {
            let code = sources(&root.join(krate)) + &shared;
            let words: BTreeSet<&str> =
                code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
            let quoted = cell.split('`').skip(1).step_by(2);
            for name in quoted.flat_map(|span| span.split(|c: char| !(c.is_alphanumeric() || c == '_'))) {
                if name.len() < 2 || name.ends_with("rs") && cell.contains(&format!("{name}:")) {
                    continue;
                }
                assert!(words.contains(name), "docs/runtimes.md concept {row:?}, {krate}: `{name}` is not in its code");
            }
        }
    }
}
