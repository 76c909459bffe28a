//! A file rewritten through a shared mapping, in a page that was already
//! dirty when its digest was cached, is answered with the digest of its new
//! bytes (the SUM cache's rule, SPEC.md §4). The mapping is Python's `mmap`:
//! this workspace denies `unsafe`, which a mapping needs.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_engine::{Parsed, parse_request};
use ferry_share::{Reply, Root, Work};

/// Writes to the file through one mapping held open: `first` and `second`
/// each put five bytes at its start; `second` then flushes and syncs.
const MAPPER: &str = r#"
import mmap, os, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    for line in sys.stdin:
        if line.strip() == "first":
            m[0:5] = b"FIRST"
        else:
            m[0:5] = b"SECND"
            m.flush()
            os.sync()
        print("done", flush=True)
"#;

fn sum(root: &Root, name: &str) -> String {
    let Parsed::Complete { value: Ok(request), .. } = parse_request(format!("SUM {name}\n").as_bytes()) else {
        panic!("a valid request")
    };
    let Reply::Bytes { bytes, .. } = root.reply(&request, &Work::unbounded()) else { panic!("an answer in memory") };
    String::from_utf8(bytes).expect("ASCII")
}

fn expected(start: &[u8], len: usize) -> String {
    let mut bytes = vec![0u8; len];
    bytes[..start.len()].copy_from_slice(start);
    format!("OK 64\n{}", blake3::hash(&bytes).to_hex())
}

#[test]
fn a_write_through_a_mapping_after_a_cached_sum_is_seen() {
    // In the build's own folder: a file system that dates mapped writes
    // (tmpfs, which /tmp may be, does not, and is never cached).
    let top = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let len = 2 << 20;
    let path = top.path().join("mapped.bin");
    std::fs::write(&path, vec![0u8; len]).expect("write");
    let root = Root::open(top.path()).expect("root");

    let mut mapper = Command::new("python3")
        .args(["-c", MAPPER])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut to = mapper.stdin.take().expect("stdin");
    let mut from = BufReader::new(mapper.stdout.take().expect("stdout"));
    let mut write = |what: &str| {
        writeln!(to, "{what}").expect("to the mapper");
        let mut done = String::new();
        from.read_line(&mut done).expect("from the mapper");
        assert_eq!(done.trim(), "done");
    };

    write("first");
    // The file's times must be settled before its digest may be cached
    // (SETTLED, 2 s): a condition on the clock, not on another process.
    let settled = Instant::now() + Duration::from_millis(2200);
    while Instant::now() < settled {
        std::thread::sleep(settled - Instant::now());
    }
    assert_eq!(sum(&root, "mapped.bin"), expected(b"FIRST", len));
    assert_eq!(sum(&root, "mapped.bin"), expected(b"FIRST", len), "answered again, from the cache");
    write("second");
    assert_eq!(sum(&root, "mapped.bin"), expected(b"SECND", len), "the cached digest was stale");
    drop(to);
    mapper.wait().expect("python3 ends");
}
