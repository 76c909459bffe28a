//! A round trip through one implementation, in process, for each
//! implementation's own tests (`cargo test -p ferry-smol` in seconds,
//! without building the others). Behind the `testing` feature.
//!
//! The client side is the same for every runtime, since it goes through
//! [`Runtime::get`] and [`Runtime::ls`]; each implementation's test only
//! starts its `server::run` on port 0 its own way, calls
//! [`Share::round_trip`], and stops the server.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_fs::Root;
use ferry_proto::{Kind, WirePath};

use crate::args::{Cli, Command};
use crate::{ClientConfig, Plan, Report, Runtime, ServeConfig};

/// A shared folder with files of known bytes, and a folder to save into.
#[derive(Debug)]
pub struct Share {
    dir: tempfile::TempDir,
}

/// The files in a [`Share`]: a small one, one of several reads, one with a
/// name to encode, one in a subfolder.
const FILES: [(&str, usize); 4] =
    [("hello.txt", 13), ("two-m.bin", 2 << 20), ("with space/naïve café.txt", 100), ("sub/x.txt", 1)];

impl Share {
    /// Makes the folders.
    pub fn new() -> Share {
        let dir = tempfile::Builder::new().prefix("ferry-roundtrip-").tempdir().expect("temp dir");
        for (name, len) in FILES {
            let path = dir.path().join("share").join(name);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, Share::bytes(name, len)).expect("write");
        }
        std::fs::create_dir(dir.path().join("saved")).expect("mkdir");
        Share { dir }
    }

    fn bytes(name: &str, len: usize) -> Vec<u8> {
        name.bytes().cycle().zip(0u8..=250).map(|(a, b)| a ^ b).take(len).collect()
    }

    /// A server configuration sharing the folder on `listen`, with short
    /// timeouts so that nothing in a test waits long.
    pub fn config(&self, listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            root: Root::open(&self.dir.path().join("share")).expect("root"),
            listen,
            max_connections: 16,
            idle_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(1),
        }
    }

    /// Fetches every file with `R`'s client from the server at `addr`, with
    /// `--verify`, and lists the folder; panics unless every byte is right.
    pub fn round_trip<R: Runtime>(&self, addr: SocketAddr) {
        let saved = self.dir.path().join("saved");
        let config = ClientConfig { addr: addr.to_string(), timeout: Duration::from_secs(10) };
        let mut args = vec!["ferry".to_owned(), "get".to_owned(), config.addr.clone()];
        args.extend(FILES.iter().map(|(name, _)| (*name).to_owned()));
        args.extend(["-o".to_owned(), saved.display().to_string(), "--verify".to_owned()]);
        let Command::Get(get) = Cli::try_parse_from(&args).expect("arguments").command else { panic!("not get") };
        let plan = Plan::new(&get).unwrap_or_else(|_| panic!("no plan"));
        let mut report = Report::new(plan.items.len());
        R::get(&config, &plan, &mut report).expect("the connection");
        assert_eq!(report.exit_code(), ExitCode::SUCCESS, "{}: not every file was saved", R::NAME);
        for (name, len) in FILES {
            let file = Path::new(name).file_name().expect("a name");
            let got = std::fs::read(saved.join(file)).expect("saved");
            assert!(got == Share::bytes(name, len), "{}: {name} was saved with other bytes", R::NAME);
        }
        let entries = R::ls(&config, &WirePath::new("/").expect("valid")).expect("ls");
        let names: Vec<(Kind, &str)> = entries.iter().map(|entry| (entry.kind, entry.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::File, "hello.txt"),
                (Kind::Directory, "sub"),
                (Kind::File, "two-m.bin"),
                (Kind::Directory, "with space")
            ],
            "{}: LIST /",
            R::NAME
        );
    }
}

impl Default for Share {
    fn default() -> Self {
        Share::new()
    }
}
