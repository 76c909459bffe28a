//! The implementations under test, and how to start them.
//!
//! An implementation of this repository is one binary with ferry's command
//! line. One from elsewhere is described by command templates (the runner's
//! `--server-cmd` and `--client-cmd`), or is a server already running
//! (`--addr`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One implementation of FERRY/1, as a server, a client, or both.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Its name, for reports.
    pub name: String,
    /// The token its server's greeting must carry, when known (this
    /// repository's servers greet with their name).
    pub greets_as: Option<String>,
    /// How to get a server, if it has one.
    pub server: Option<Launch>,
    /// How to run its client, if it has one.
    pub client: Option<ClientLaunch>,
}

/// How to get a server.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A binary with ferry's command line: `BIN serve ROOT --listen ADDR
    /// [OPTIONS]`, ready when it prints `listening on <addr>`.
    Ferry(PathBuf),
    /// A shell command with `{root}` and `{port}` (and, for the cases that
    /// need server options, `{options}`, given in ferry's form such as
    /// `--idle-timeout 1`). Ready when it prints `listening on <addr>` or
    /// accepts connections on the port.
    Template(String),
    /// A server that is already running, sharing the fixture's folder.
    Running(SocketAddr),
}

/// How to run a client.
#[derive(Debug, Clone)]
pub enum ClientLaunch {
    /// A binary with ferry's command line (`BIN get ADDR PATH... -o DEST
    /// [--force] [--continue] [--verify] [--timeout SECS]`).
    Ferry(PathBuf),
    /// A shell command with `{addr}`, `{path}` and `{dest}`, which saves one
    /// file and exits 0 on success.
    Template(String),
}

impl Launch {
    /// Whether the server can be started with options of a case's own.
    pub fn takes_options(&self) -> bool {
        match self {
            Launch::Ferry(_) => true,
            Launch::Template(template) => template.contains("{options}"),
            Launch::Running(_) => false,
        }
    }
}

/// The implementations in this repository: (name, package and binary).
pub const WORKSPACE: [(&str, &str); 5] = [
    ("std", "ferry-std"),
    ("tokio", "ferry-tokio"),
    ("smol", "ferry-smol"),
    ("async-std", "ferry-async-std"),
    ("compio", "ferry-compio"),
];

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
        let binary = run.path().to_owned();
        Ok(Implementation {
            name: name.to_owned(),
            greets_as: Some(name.to_owned()),
            server: Some(Launch::Ferry(binary.clone())),
            client: Some(ClientLaunch::Ferry(binary)),
        })
    }

    /// Every implementation in this repository, built as `cargo build
    /// --release` builds them (the same profile and target folder, so a
    /// current build is reused as it is, and this build is reused by it);
    /// with how long the build took, to report apart from the cases.
    pub fn release_build() -> Result<(Vec<Implementation>, Duration), String> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let started = Instant::now();
        let mut build = Command::new(&cargo);
        build.args(["build", "--release", "--bins", "--manifest-path"]).arg(&manifest);
        for (_, package) in WORKSPACE {
            build.args(["-p", package]);
        }
        let status = build.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --release failed ({status})"));
        }
        let built = started.elapsed();
        let metadata = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
            .arg(&manifest)
            .output()
            .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
        let metadata: serde_json::Value =
            serde_json::from_slice(&metadata.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
        let target = metadata["target_directory"].as_str().ok_or("cargo metadata names no target directory")?;
        let implementations = WORKSPACE
            .iter()
            .map(|(name, package)| {
                let binary = Path::new(target).join("release").join(package);
                Implementation {
                    name: (*name).to_owned(),
                    greets_as: Some((*name).to_owned()),
                    server: Some(Launch::Ferry(binary.clone())),
                    client: Some(ClientLaunch::Ferry(binary)),
                }
            })
            .collect();
        Ok((implementations, built))
    }

    /// Every implementation in this repository.
    pub fn all() -> Result<Vec<Implementation>, String> {
        WORKSPACE.iter().map(|(name, package)| Implementation::workspace(name, package)).collect()
    }
}
