//! The folder every server under test shares, built fresh for each run,
//! with a secret beside it that must never be sent.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Bytes of the file outside the root; no answer may ever contain them.
pub const SECRET: &[u8] = b"ferry-conformance: this file lies outside the shared root\n";

/// Sizes of the random files, by name.
pub const SIZED: [(&str, usize); 5] =
    [("empty", 0), ("one-byte", 1), ("eight-k.bin", 8 << 10), ("one-m.bin", 1 << 20), ("sixty-four-m.bin", 64 << 20)];

/// A sparse file under the root: 1 TiB that takes no disk, and many
/// minutes to hash, for the cases that hold SUM to its bounds.
pub const HUGE: &str = "big/huge.sparse";

/// Its length.
pub const HUGE_LEN: u64 = 1 << 40;

/// A folder of many files with long names, whose listing (3 MB) is larger
/// than a server sends with its header, and than a slow client reads in one
/// idle timeout.
pub const MANY: &str = "big/many";

/// How many files [`MANY`] holds.
pub const MANY_COUNT: usize = 12_000;

/// The name of the `n`th file in [`MANY`], in listing order: ASCII, so its
/// listing line needs no encoding, and 246 bytes long.
pub fn many_name(n: usize) -> String {
    format!("{n:05}-{}", "long-name-".repeat(24))
}

/// A folder to copy whole (`get -r`, `TREE`): nested six deep, names with
/// spaces and non-ASCII letters, an empty file and an empty folder, a link
/// to a file and one to a folder inside it, and one that leads outside.
pub const TREE: &str = "tree";

/// The files under [`TREE`], by path below it.
pub const TREE_FILES: [&str; 4] = ["a/b/c/d/e/deep.txt", "docs/q3 report.txt", "empty", "ü/naïve café.txt"];

/// The modification time every entry under [`TREE`] is given, in seconds
/// since 1970, so that a copy's times can be checked.
pub const TREE_TIME: u64 = 1_600_000_000;

/// Files with names that test path encoding.
pub const ODD_NAMES: [&str; 3] = ["with space/naïve café.txt", "a/b/c/nested.txt", "sub/é.txt"];

/// The shared folder and what it holds.
#[derive(Debug)]
pub struct Fixture {
    _dir: TempDir,
    /// The folder servers share.
    pub root: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    /// Builds the fixture in a new temporary folder.
    pub fn build() -> std::io::Result<Fixture> {
        let dir = tempfile::Builder::new().prefix("ferry-conformance-").tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root)?;
        Fixture::fill(dir, root)
    }

    /// Builds the fixture into `root`, an empty folder that a server which
    /// is already running shares; the file outside it goes to a temporary
    /// folder elsewhere.
    pub fn build_at(root: &Path) -> std::io::Result<Fixture> {
        if std::fs::read_dir(root)?.next().is_some() {
            return Err(std::io::Error::other(format!("{} is not empty", root.display())));
        }
        let dir = tempfile::Builder::new().prefix("ferry-conformance-").tempdir()?;
        Fixture::fill(dir, std::path::absolute(root)?)
    }

    fn fill(dir: TempDir, root: PathBuf) -> std::io::Result<Fixture> {
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside)?;
        std::fs::write(outside.join("secret.txt"), SECRET)?;

        let mut rng = fastrand::Rng::with_seed(0xfe11);
        let mut files = BTreeMap::new();
        for (name, size) in SIZED {
            let mut bytes = vec![0u8; size];
            rng.fill(&mut bytes);
            files.insert(name.to_owned(), bytes);
        }
        for name in ODD_NAMES {
            files.insert(name.to_owned(), format!("contents of {name}\n").into_bytes());
        }
        files.insert("sub/Z.txt".to_owned(), b"capital Z sorts before lower case\n".to_vec());
        for name in TREE_FILES {
            let bytes = if name == "empty" { Vec::new() } else { format!("{name} under the tree\n").into_bytes() };
            files.insert(format!("{TREE}/{name}"), bytes);
        }
        files.insert("sub/x.txt".to_owned(), b"x\n".to_vec());
        for (name, bytes) in &files {
            let path = root.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        std::fs::create_dir_all(root.join("sub/dir"))?;
        symlink("../one-byte", root.join("sub/link-in"))?;
        symlink(relative_from(&root.join("sub"), &outside.join("secret.txt")), root.join("sub/link-out"))?;
        symlink(outside.join("secret.txt"), root.join("out-file"))?;
        symlink(&outside, root.join("out-dir"))?;
        // An absolute link to a file inside the root: never followed (§5).
        symlink(root.join("one-byte"), root.join("sub/abs-in"))?;
        let tree = root.join(TREE);
        std::fs::create_dir_all(tree.join("docs/old"))?;
        symlink("docs/q3 report.txt", tree.join("link-file"))?;
        symlink("docs", tree.join("link-dir"))?;
        symlink(relative_from(&tree, &outside.join("secret.txt")), tree.join("link-out"))?;
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(TREE_TIME);
        for entry in walk(&tree)? {
            // Folders last, deepest first: making an entry changes its
            // folder's time.
            let file = std::fs::File::open(&entry)?;
            file.set_modified(time)?;
        }
        std::fs::create_dir_all(root.join("big"))?;
        std::fs::File::create(root.join(HUGE))?.set_len(HUGE_LEN)?;
        std::fs::create_dir_all(root.join(MANY))?;
        for n in 0..MANY_COUNT {
            std::fs::File::create(root.join(MANY).join(many_name(n)))?;
        }
        Ok(Fixture { _dir: dir, root, files })
    }

    /// The bytes of a file under the root.
    pub fn bytes(&self, name: &str) -> &[u8] {
        self.files.get(name).map_or_else(|| panic!("no fixture file {name}"), Vec::as_slice)
    }

    /// The root, as a path.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Every file and folder under `folder` (links left out), each folder
/// after what it holds.
fn walk(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            found.extend(walk(&entry.path())?);
        }
        if !kind.is_symlink() {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// A relative path from folder `from` to `to` (both absolute), so that a
/// relative symlink can lead outside the root.
fn relative_from(from: &Path, to: &Path) -> PathBuf {
    let up = from.components().count().saturating_sub(1);
    let mut path: PathBuf = std::iter::repeat_n("..", up).collect();
    path.push(to.strip_prefix("/").unwrap_or(to));
    path
}
