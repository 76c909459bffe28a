//! The share's answers, checked against a folder made for each test.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::fs::symlink;

use std::time::{Duration, Instant};

use ferry_engine::{ErrorCode, Refusal, Request};

use super::*;

fn request(line: &str) -> Request {
    match ferry_engine::parse_request(format!("{line}\n").as_bytes()) {
        ferry_engine::Parsed::Complete { value, .. } => value.expect("valid request"),
        ferry_engine::Parsed::Incomplete => unreachable!(),
    }
}

/// A root with a file, a folder and links in and out, beside an outside file.
fn fixture() -> (tempfile::TempDir, Root) {
    let top = tempfile::tempdir().expect("tempdir");
    let root = top.path().join("root");
    std::fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
    std::fs::write(root.join("hello.txt"), b"hello, world").expect("write");
    std::fs::write(root.join("sub/inner.bin"), [7u8; 10]).expect("write");
    std::fs::write(top.path().join("secret"), b"outside").expect("write");
    symlink("../hello.txt", root.join("sub/up-link")).expect("symlink");
    symlink("../secret", root.join("out-file")).expect("symlink");
    symlink(top.path(), root.join("out-dir")).expect("symlink");
    symlink("missing", root.join("dangling")).expect("symlink");
    let shared = Root::open(&root).expect("open root");
    (top, shared)
}

fn bytes(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Bytes { bytes, .. } => bytes,
        Reply::Abandon => b"(abandoned)".to_vec(),
        Reply::File { mut header, mut body } => {
            let mut rest = Vec::new();
            (&mut body.file).take(body.len).read_to_end(&mut rest).expect("read");
            header.extend(rest);
            header
        }
    }
}

fn answer(root: &Root, line: &str) -> String {
    String::from_utf8_lossy(&bytes(root.reply(&request(line), &Work::unbounded()))).into_owned()
}

#[test]
fn get_whole_and_ranges() {
    let (_top, root) = fixture();
    assert_eq!(answer(&root, "GET hello.txt"), "OK 12\nhello, world");
    assert_eq!(answer(&root, "GET /hello.txt 7"), "OK 5\nworld");
    assert_eq!(answer(&root, "GET hello.txt 7 2"), "OK 2\nwo");
    assert_eq!(answer(&root, "GET hello.txt 7 100"), "OK 5\nworld");
    assert_eq!(answer(&root, "GET hello.txt 12"), "OK 0\n");
    assert!(answer(&root, "GET hello.txt 13").starts_with("ERR RANGE "));
    assert_eq!(answer(&root, "GET sub/up-link"), "OK 12\nhello, world");
}

#[test]
fn large_bodies_come_from_the_file() {
    let (top, root) = fixture();
    let big = vec![3u8; INLINE_BODY as usize + 2];
    std::fs::write(top.path().join("root/big"), &big).expect("write");
    match root.reply(&request("GET big 1"), &Work::unbounded()) {
        Reply::File { header, body } => {
            assert_eq!(header, format!("OK {}\n", INLINE_BODY + 1).as_bytes());
            assert_eq!((body.offset, body.len), (1, INLINE_BODY + 1));
        }
        other => panic!("expected a file body, got {other:?}"),
    }
    assert!(matches!(root.reply(&request("GET big 2"), &Work::unbounded()), Reply::Bytes { .. }));
}

#[test]
fn the_cached_path_agrees_with_the_blocking_one_or_declines() {
    let (top, root) = fixture();
    let big = vec![5u8; INLINE_BODY as usize + 10];
    std::fs::write(top.path().join("root/big"), &big).expect("write");
    let lines = [
        "GET hello.txt",
        "GET hello.txt 7 2",
        "GET /hello.txt 12",
        "GET sub/up-link",
        "GET sub/inner.bin",
        "GET nope.txt",
        "GET sub/nope/x",
        "GET hello.txt/x",
        "GET big 3",
        "GET out-file",
        "GET out-dir/secret",
        "GET dangling",
        "GET sub",
        "GET hello.txt 13",
        "GET /",
    ];
    let mut answered = 0;
    for line in lines {
        let Request::Get { path, offset, length } = request(line) else { unreachable!() };
        // The blocking path first: it brings every name it looks up, found
        // or not, into the kernel's caches, where the cached path looks.
        let blocking = bytes(root.reply(&request(line), &Work::unbounded()));
        let cached = root.get_cached(&path, offset, length).or_else(|| root.get_cached(&path, offset, length));
        let Some(cached) = cached else { continue };
        answered += 1;
        assert_eq!(bytes(cached), blocking, "{line}");
    }
    assert!(answered >= 6, "the cached path answered only {answered} of the plain GETs");
    for declined in ["GET out-file", "GET out-dir/secret", "GET sub", "GET hello.txt 13", "GET /"] {
        let Request::Get { path, offset, length } = request(declined) else { unreachable!() };
        assert!(root.get_cached(&path, offset, length).is_none(), "{declined} must go to the blocking path");
    }
}

#[test]
fn a_batch_from_the_caches_stops_where_the_blocking_path_must_answer() {
    let (_top, root) = fixture();
    let mut pending = VecDeque::new();
    for line in ["GET hello.txt\n", "GET hello.txt\n", "SUM hello.txt\n", "GET hello.txt\n"] {
        let mut queued = VecDeque::new();
        ferry_engine::parse_pipelined(line.as_bytes(), &mut queued, BATCH_REQUESTS);
        pending.extend(queued);
    }
    root.batch_cached(&mut VecDeque::from(vec![Ok(request("GET hello.txt"))]));
    let batch = root.batch_cached(&mut pending);
    assert_eq!(batch.log.len(), 2);
    assert_eq!(pending.len(), 2, "SUM and what follows it wait for the pool");
}

#[test]
fn a_body_is_sent_in_windows() {
    let body = FileBody { file: tempfile::tempfile().expect("file"), offset: 2, len: 10, spooled: None };
    assert_eq!(body.windows(4).collect::<Vec<_>>(), [2..6, 6..10, 10..12]);
    assert_eq!(body.windows(100).collect::<Vec<_>>(), vec![2..12]);
    assert_eq!(FileBody { len: 0, ..body }.windows(4).count(), 0);
}

#[test]
fn refusals_name_the_path() {
    let (_top, root) = fixture();
    assert_eq!(answer(&root, "GET docs/x.pdf"), "ERR NOT_FOUND docs/x.pdf does not exist\n");
    assert_eq!(answer(&root, "GET /etc/passwd"), "ERR NOT_FOUND /etc/passwd does not exist\n");
    assert_eq!(answer(&root, "GET hello.txt/x"), "ERR NOT_FOUND hello.txt/x does not exist\n");
    assert_eq!(answer(&root, "GET dangling"), "ERR NOT_FOUND dangling does not exist\n");
    assert_eq!(answer(&root, "GET sub"), "ERR NOT_A_FILE sub is not a regular file\n");
    assert_eq!(answer(&root, "SUM /"), "ERR NOT_A_FILE / is not a regular file\n");
    assert_eq!(answer(&root, "LIST hello.txt"), "ERR NOT_A_DIRECTORY hello.txt is not a directory\n");
    let long = "a".repeat(300);
    assert!(answer(&root, &format!("GET {long}")).starts_with("ERR NOT_FOUND "));
}

#[test]
fn links_out_of_the_root_are_forbidden() {
    let (_top, root) = fixture();
    for line in ["GET out-file", "SUM out-file", "GET out-dir/secret", "LIST out-dir", "GET out-dir/root/hello.txt"] {
        let got = answer(&root, line);
        assert!(got.starts_with("ERR FORBIDDEN "), "{line}: {got}");
        assert!(!got.contains("outside\n") && !got.contains("OK"), "{line}: {got}");
    }
}

#[test]
fn listing_follows_links_inside_only() {
    let (_top, root) = fixture();
    let ok = |body: &str| format!("OK {}\n{body}", body.len());
    assert_eq!(answer(&root, "LIST /"), ok("f 12 hello.txt\nd 0 sub\n"));
    assert_eq!(answer(&root, "LIST sub"), ok("d 0 deeper\nf 10 inner.bin\nf 12 up-link\n"));
    assert_eq!(answer(&root, "LIST sub/deeper"), "OK 0\n");
}

#[test]
fn sum_is_blake3_of_the_bytes() {
    let (_top, root) = fixture();
    let expected = blake3::hash(b"hello, world").to_hex();
    assert_eq!(answer(&root, "SUM hello.txt"), format!("OK 64\n{expected}"));
}

#[test]
fn quit_and_parser_refusals_close_as_spec_says() {
    let (_top, root) = fixture();
    let bye = root.reply(&Request::Quit, &Work::unbounded());
    assert!(bye.closes());
    assert_eq!(bytes(bye), b"BYE\n");
    assert!(Reply::refuse(Refusal::new(ErrorCode::TooLong, "x")).closes());
    assert!(!Reply::refuse(Refusal::new(ErrorCode::BadRequest, "x")).closes());
}

#[test]
fn heavy_work_stops_when_told_and_times_out() {
    let (top, root) = fixture();
    // Sparse: 4 GiB that take no disk, and seconds to hash.
    let huge = std::fs::File::create(top.path().join("root/huge")).expect("create");
    huge.set_len(4 << 30).expect("truncate");
    let stopped = Work { stop: &|| true, ..Work::unbounded() };
    assert!(matches!(root.reply(&request("SUM huge"), &stopped), Reply::Abandon));
    assert!(matches!(root.reply(&request("LIST /"), &stopped), Reply::Abandon));
    let late = Work {
        deadline: Instant::now() + Duration::from_millis(50),
        limit: Duration::from_millis(50),
        stop: &|| false,
    };
    let started = Instant::now();
    let reply = root.reply(&request("SUM huge"), &late);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(reply.closes());
    assert!(String::from_utf8_lossy(&bytes(reply)).starts_with("ERR TIMEOUT SUM huge did not finish within 0.1 s"));
    // GET is not heavy: a past deadline does not touch it.
    let past = Work { deadline: Instant::now(), ..late };
    assert!(matches!(root.reply(&request("GET hello.txt"), &past), Reply::Bytes { closes: false, .. }));
}

#[test]
fn a_repeated_sum_of_an_unchanged_large_file_comes_from_the_cache() {
    let (top, mut root) = fixture();
    root.settled = Duration::ZERO;
    let big = vec![7u8; 2 << 20];
    std::fs::write(top.path().join("root/big"), &big).expect("write");
    let expected = format!("OK 64\n{}", blake3::hash(&big).to_hex());
    assert_eq!(answer(&root, "SUM big"), expected);
    assert_eq!(answer(&root, "SUM big"), expected);
    assert_eq!(root.digests.lock().expect("lock").len(), 1);
    std::fs::write(top.path().join("root/big"), b"changed!").expect("write");
    assert_eq!(answer(&root, "SUM big"), format!("OK 64\n{}", blake3::hash(b"changed!").to_hex()));
}

#[test]
fn small_files_are_never_cached_so_they_cannot_push_a_large_one_out() {
    let (top, mut root) = fixture();
    root.settled = Duration::ZERO;
    std::fs::write(top.path().join("root/big"), vec![1u8; 2 << 20]).expect("write");
    answer(&root, "SUM big");
    // None is kept, so a few hundred show it as well as the cache's 4,096.
    for n in 0..300 {
        std::fs::write(top.path().join(format!("root/small-{n}")), n.to_string()).expect("write");
        assert!(answer(&root, &format!("SUM small-{n}")).starts_with("OK 64\n"));
    }
    assert_eq!(root.digests.lock().expect("lock").len(), 1, "only the large file's digest is kept");
}

#[test]
fn a_file_written_moments_ago_is_hashed_every_time() {
    // Its times may not yet show a write in the same clock tick.
    let (top, root) = fixture();
    std::fs::write(top.path().join("root/fresh"), vec![2u8; 2 << 20]).expect("write");
    assert!(answer(&root, "SUM fresh").starts_with("OK 64\n"));
    assert_eq!(root.digests.lock().expect("lock").len(), 0);
}

#[test]
fn absolute_links_are_refused_even_inside() {
    let (top, root) = fixture();
    symlink(top.path().join("root/hello.txt"), top.path().join("root/abs-inside")).expect("symlink");
    assert!(answer(&root, "GET abs-inside").starts_with("ERR FORBIDDEN "));
    assert!(!answer(&root, "LIST /").contains("abs-inside"));
}

#[test]
fn a_fifo_is_not_a_file_and_does_not_block() {
    let (top, root) = fixture();
    let fifo = top.path().join("root/pipe");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
    assert_eq!(answer(&root, "GET pipe"), "ERR NOT_A_FILE pipe is not a regular file\n");
    assert!(!answer(&root, "LIST /").contains("pipe"));
}

#[test]
fn a_large_listing_is_spooled_to_a_file_and_a_small_one_is_not() {
    let (top, root) = fixture();
    let many = top.path().join("root/many");
    std::fs::create_dir(&many).expect("mkdir");
    let mut entries = Vec::new();
    for n in 0..1200 {
        let name = format!("{n:05}-{}", "x".repeat(60));
        std::fs::write(many.join(&name), b"").expect("write");
        entries.push(ferry_engine::Entry { kind: ferry_engine::Kind::File, size: 0, name });
    }
    let mut expected = Vec::new();
    ferry_engine::encode_listing(entries, &mut expected);
    assert!(expected.len() as u64 > INLINE_BODY);
    let Reply::File { header, mut body } = root.reply(&request("LIST many"), &Work::unbounded()) else {
        panic!("a large listing is sent from a file")
    };
    assert_eq!(header, format!("OK {}\n", expected.len()).into_bytes());
    assert!(body.spooled.is_some(), "counted against the budget for listings in flight");
    let mut got = Vec::new();
    body.file.read_to_end(&mut got).expect("read");
    assert_eq!(got, expected);
    assert!(matches!(root.reply(&request("LIST sub"), &Work::unbounded()), Reply::Bytes { .. }));
}

#[test]
fn a_tree_lists_every_entry_below_with_times_and_never_follows_a_link_out() {
    let (_top, root) = fixture();
    let folder = root.path().to_owned();
    symlink("sub", folder.join("sub-link")).expect("symlink");
    std::fs::create_dir(folder.join("sub-a")).expect("mkdir");
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let hello = std::fs::File::options().write(true).open(folder.join("hello.txt")).expect("open");
    hello.set_modified(when).expect("set time");
    let tree = answer(&root, "TREE /");
    let lines: Vec<&str> = tree.lines().collect();
    let shown: Vec<String> = lines[1..]
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            format!("{} {} {}", fields[0], fields[1], fields[3])
        })
        .collect();
    // Sorted name by name: a folder's entries right after it; the link to
    // a folder listed, not descended; links out of the root and dangling
    // ones left out, as in a LIST.
    assert_eq!(
        shown,
        [
            "f 12 hello.txt",
            "d 0 sub",
            "d 0 sub/deeper",
            "f 10 sub/inner.bin",
            "f 12 sub/up-link",
            "d 0 sub-a",
            "l 0 sub-link",
        ],
        "{tree}"
    );
    assert!(lines[1].starts_with("f 12 1600000000 "), "{}", lines[1]);
    let len: usize = lines[0].strip_prefix("OK ").and_then(|n| n.parse().ok()).expect("OK <n>");
    assert_eq!(len, tree.len() - lines[0].len() - 1, "the header counts the body");
    assert_eq!(
        answer(&root, "TREE sub").lines().nth(1),
        Some(format!("d 0 {} deeper", lines[3].split(' ').nth(2).unwrap_or("")).as_str())
    );
    assert!(answer(&root, "TREE hello.txt").starts_with("ERR NOT_A_DIRECTORY"));
    assert!(answer(&root, "TREE out-dir").starts_with("ERR FORBIDDEN"));
    assert!(answer(&root, "TREE nowhere").starts_with("ERR NOT_FOUND"));
}

#[test]
fn a_tree_too_deep_is_refused_with_its_own_code() {
    let top = tempfile::tempdir().expect("tempdir");
    let mut deep = top.path().to_owned();
    for _ in 0..TREE_DEPTH {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).expect("mkdir");
    let root = Root::open(top.path()).expect("open");
    let refused = answer(&root, "TREE /");
    assert!(refused.starts_with("ERR TOO_LARGE / holds folders more than 256 deep"), "{refused}");
    // One level up, the same tree fits.
    assert!(answer(&root, "TREE d").starts_with("OK "));
}
