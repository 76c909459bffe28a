//! The implementations under test, and how to find their binaries.

use std::path::{Path, PathBuf};

/// One implementation of FERRY/1: a binary with `serve` and `get`.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Its name, as in its greeting (`std`, ...).
    pub name: String,
    /// The binary.
    pub binary: PathBuf,
}

/// The implementations in this repository: (name, package and binary).
pub const WORKSPACE: [(&str, &str); 3] = [("std", "ferry-std"), ("tokio", "ferry-tokio"), ("smol", "ferry-smol")];

impl Implementation {
    /// Builds (if needed) and locates one of this repository's binaries,
    /// in the same profile as the caller: a plain `cargo test` at the root
    /// works with no build step before it.
    pub fn workspace(name: &str, package: &str) -> Result<Implementation, String> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let run = escargot::CargoBuild::new()
            .manifest_path(manifest)
            .package(package)
            .bin(package)
            .current_release()
            .current_target()
            .run()
            .map_err(|e| format!("cannot build {package}: {e}"))?;
        Ok(Implementation { name: name.to_owned(), binary: run.path().to_owned() })
    }

    /// Every implementation in this repository.
    pub fn all() -> Result<Vec<Implementation>, String> {
        WORKSPACE.iter().map(|(name, package)| Implementation::workspace(name, package)).collect()
    }
}
