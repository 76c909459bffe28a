//! `get -r` of a real tree: 2,000+ entries (six folders deep, spaces and
//! non-ASCII names, empty files and folders, a link to a file and one to a
//! folder) and a 200 MiB file, by every client from every server. Each
//! client's copy from the next implementation's server (std from tokio,
//! ..., compio from std) is killed while the large file arrives, then run
//! again with `--continue`, and no file that was complete when the client
//! was killed may have been asked for again (the server's access log says
//! what was); the other twenty pairs copy it whole. Every copy must then be
//! the tree (the link to a folder left out), with the server's times.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_conformance::cases::encode;
use ferry_conformance::implementation::{ClientLaunch, Implementation, Launch, WORKSPACE};

const BIG: &str = "big.bin";
const BIG_LEN: usize = 200 << 20;
const TIME: u64 = 1_650_000_000;

/// Builds the tree under `root`: what it holds, as paths below it, files
/// and folders apart.
fn build(root: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut files, mut folders) = (BTreeSet::new(), BTreeSet::new());
    let mut rng = fastrand::Rng::with_seed(26);
    let mut file = |path: String, len: usize, files: &mut BTreeSet<String>| {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        std::fs::write(root.join(&path), bytes).expect("write");
        files.insert(path);
    };
    let deep = "one/two/three/four/five/six";
    for n in 1..=6 {
        folders.insert(deep.split('/').take(n).collect::<Vec<_>>().join("/"));
    }
    for n in 0..40 {
        let folder = match n % 4 {
            0 => format!("dossier ü {n}"),
            1 => format!("{deep}/d{n}"),
            _ => format!("plain-{n:02}"),
        };
        folders.insert(folder.clone());
        std::fs::create_dir_all(root.join(&folder)).expect("mkdir");
        for k in 0..50 {
            let name = if k % 10 == 0 { format!("{folder}/fichier é {k}.txt") } else { format!("{folder}/f{k:02}") };
            file(name, if k % 7 == 0 { 0 } else { 1 + (k * 97) % 3000 }, &mut files);
        }
    }
    for empty in ["empty-a", "empty-b/inner", "one/two/empty"] {
        std::fs::create_dir_all(root.join(empty)).expect("mkdir");
        let mut path = String::new();
        for part in empty.split('/') {
            path = if path.is_empty() { part.to_owned() } else { format!("{path}/{part}") };
            folders.insert(path.clone());
        }
    }
    file(BIG.to_owned(), BIG_LEN, &mut files);
    std::os::unix::fs::symlink("plain-02/f01", root.join("link-file")).expect("symlink");
    std::os::unix::fs::symlink("plain-02", root.join("link-dir")).expect("symlink");
    files.insert("link-file".to_owned());
    let time = UNIX_EPOCH + Duration::from_secs(TIME);
    for path in files.iter().chain(folders.iter().rev()) {
        std::fs::File::open(root.join(path)).and_then(|f| f.set_modified(time)).expect("set time");
    }
    (files, folders)
}

/// The binaries, in WORKSPACE's order.
fn binaries() -> Vec<(&'static str, PathBuf)> {
    WORKSPACE
        .iter()
        .map(|(name, package)| match Implementation::workspace(name, package).expect("build") {
            Implementation { server: Some(Launch::Ferry(binary)), client: Some(ClientLaunch::Ferry(_)), .. } => {
                (*name, binary)
            }
            _ => panic!("{name}: one binary"),
        })
        .collect()
}

/// Every regular file under `dir`, as paths below it.
fn complete_files(dir: &Path, below: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let name = entry.file_name().into_string().expect("UTF-8");
        let path = if below.is_empty() { name.clone() } else { format!("{below}/{name}") };
        let kind = entry.file_type().expect("type");
        if kind.is_dir() {
            complete_files(&entry.path(), &path, out);
        } else if kind.is_file() && !name.ends_with(".part") {
            out.insert(path);
        }
    }
}

/// A server of the test's, with its access log.
struct Served {
    name: &'static str,
    addr: String,
    log: PathBuf,
    process: std::process::Child,
}

impl Served {
    fn start(name: &'static str, binary: &Path, share: &Path, logs: &Path) -> Served {
        let log = logs.join(format!("{name}.log"));
        let mut process = Command::new(binary)
            .args(["serve"])
            .arg(share)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("server");
        let mut line = String::new();
        BufReader::new(process.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
        let addr = line.trim().strip_prefix("listening on ").expect("listening on").to_owned();
        Served { name, addr, log, process }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn every_client_copies_the_tree_from_every_server_and_a_cut_copy_is_finished_by_continue() {
    let top = tempfile::tempdir().expect("tempdir");
    let share = top.path().join("share");
    let source = share.join("tree");
    std::fs::create_dir_all(&source).expect("mkdir");
    let (files, folders) = build(&source);
    assert!(files.len() + folders.len() >= 2_000, "the tree holds {} entries", files.len() + folders.len());
    let binaries = binaries();
    // What each file must hold, read once for the 25 copies.
    let digests: Vec<(&String, blake3::Hash)> =
        files.iter().map(|path| (path, blake3::hash(&std::fs::read(source.join(path)).expect("source")))).collect();
    let servers: Vec<Served> =
        binaries.iter().map(|(name, binary)| Served::start(name, binary, &share, top.path())).collect();
    for (n, (client_name, client)) in binaries.iter().enumerate() {
        for (m, server) in servers.iter().enumerate() {
            let pair = format!("{client_name} client, {} server", server.name);
            let dest = top.path().join(format!("dest-{client_name}-{}", server.name));
            std::fs::create_dir(&dest).expect("mkdir");
            let copy = |more: &[&str]| {
                let mut command = Command::new(client);
                command.args(["get", "-r", &server.addr, "tree", "-o"]).arg(&dest).args(["--no-progress"]).args(more);
                command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
                command
            };
            if m == (n + 1) % servers.len() {
                cut_and_continue(&pair, &dest, server, copy);
            } else {
                let whole = copy(&[]).output().expect("client");
                let stderr = String::from_utf8_lossy(&whole.stderr);
                assert!(whole.status.success(), "{pair}: the copy failed: {stderr}");
                assert!(stderr.contains("link-dir"), "{pair}: the link to a folder is not said: {stderr}");
            }
            same_tree(&pair, &dest.join("tree"), &digests, &folders);
            std::fs::remove_dir_all(&dest).expect("clean");
        }
    }
}

/// Kills the client `copy` makes while the large file arrives, then runs
/// it again with `--continue`: it must succeed without asking `server` for
/// any file that was complete.
fn cut_and_continue(pair: &str, dest: &Path, server: &Served, copy: impl Fn(&[&str]) -> Command) {
    let mut first = copy(&[]).spawn().expect("client");
    let big_part = dest.join("tree").join(format!("{BIG}.part"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::metadata(&big_part).is_ok_and(|m| m.len() >= 4 << 20) {
            break;
        }
        assert!(first.try_wait().expect("wait").is_none(), "{pair}: the copy ended before it could be cut");
        assert!(Instant::now() < deadline, "{pair}: {BIG}.part never reached 4 MiB");
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().expect("kill");
    first.wait().expect("reap");
    let mut done = BTreeSet::new();
    complete_files(&dest.join("tree"), "", &mut done);
    assert!(!done.contains(BIG), "{pair}: {BIG} complete although cut");
    let logged_before = std::fs::read_to_string(&server.log).expect("log").len();

    let second = copy(&["--continue"]).output().expect("client");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{pair}: --continue failed: {stderr}");
    assert!(stderr.contains("link-dir"), "{pair}: the link to a folder is not said: {stderr}");
    let log_text = std::fs::read_to_string(&server.log).expect("log");
    let again = &log_text[logged_before..];
    for path in &done {
        // Asked for whole (`GET p"`) or from an offset (`GET p 123"`).
        let request = format!("request=\"GET tree/{}", encode(path));
        let (whole, from) = (format!("{request}\""), format!("{request} "));
        assert!(
            !again.contains(&whole) && !again.contains(&from),
            "{pair}: {path} was complete when the client was cut, and was asked for again"
        );
    }
    assert!(again.contains(&format!("request=\"GET tree/{BIG} ")), "{pair}: {BIG} was not resumed from its .part");
}

/// Checks that `copied` is the tree whose files have `digests`: every file
/// byte for byte with the server's time and no `.part` left, every folder,
/// the link to a file as a file, the link to a folder left out.
fn same_tree(pair: &str, copied: &Path, digests: &[(&String, blake3::Hash)], folders: &BTreeSet<String>) {
    for &(path, want) in digests {
        let got = copied.join(path);
        let same = std::fs::read(&got).is_ok_and(|bytes| blake3::hash(&bytes) == want);
        assert!(same, "{pair}: {path} differs from the server's");
        let time: SystemTime = std::fs::metadata(&got).and_then(|m| m.modified()).expect("time");
        assert_eq!(time, UNIX_EPOCH + Duration::from_secs(TIME), "{pair}: {path} has another time");
        assert!(!copied.join(format!("{path}.part")).exists(), "{pair}: {path}.part left behind");
    }
    for folder in folders {
        assert!(copied.join(folder).is_dir(), "{pair}: folder {folder} missing");
    }
    assert!(std::fs::symlink_metadata(copied.join("link-file")).is_ok_and(|m| m.is_file()), "{pair}: link-file");
    assert!(!copied.join("link-dir").exists(), "{pair}: the link to a folder was copied");
}
