//! `FileBody::resident` tells the truth about the page cache, and
//! `FileBody::read_cold` reads what the window holds.
//!
//! The file lives in Cargo's target folder, not in `/tmp`, which may be a
//! tmpfs: there the kernel cannot drop a file's pages, and the test checks
//! that instead.

use std::io::Write;

use ferry_share::{COLD_READ, FileBody};

const TMPFS_MAGIC: u64 = 0x0102_1994;

#[test]
fn a_dropped_window_is_not_resident_and_a_read_brings_it_back() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a folder in the target dir");
    let path = dir.path().join("body.bin");
    let bytes: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(&bytes).expect("write");
    file.sync_all().expect("sync");
    drop(file);

    let body =
        FileBody { file: std::fs::File::open(&path).expect("open"), offset: 0, len: bytes.len() as u64, spooled: None };
    let window = (1 << 20)..(2 << 20);
    assert!(body.resident(&window), "a file just written is in the page cache");

    // Written back by sync_all, so clean: DONTNEED drops its pages.
    rustix::fs::fadvise(&body.file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
    let in_memory = rustix::fs::fstatfs(&body.file).expect("statfs").f_type as u64 == TMPFS_MAGIC;
    assert_eq!(body.resident(&window), in_memory, "after DONTNEED (tmpfs keeps its pages)");

    // The pool's read waits for the disk and returns the window's bytes.
    let mut at = window.start;
    while at < window.end {
        let chunk = body.read_cold(at, window.end).expect("read");
        assert!(!chunk.is_empty() && chunk.len() as u64 <= COLD_READ);
        assert_eq!(chunk, bytes[at as usize..at as usize + chunk.len()]);
        at += chunk.len() as u64;
    }
    assert!(body.resident(&window), "the window was read, so it is in memory again");
}

#[test]
fn a_file_that_shrank_is_neither_resident_nor_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("body.bin");
    std::fs::write(&path, vec![7u8; 200_000]).expect("write");
    let body = FileBody { file: std::fs::File::open(&path).expect("open"), offset: 0, len: 200_000, spooled: None };
    std::fs::File::options().write(true).open(&path).expect("open").set_len(100_000).expect("truncate");
    assert!(body.resident(&(0..100_000)));
    assert!(!body.resident(&(0..200_000)), "the last byte is gone");
    let error = body.read_cold(150_000, 200_000).expect_err("past the end");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(error.to_string().contains("150000 of 200000"), "{error}");
}
