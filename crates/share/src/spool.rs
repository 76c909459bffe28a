//! LIST and TREE answers of any size in bounded memory.
//!
//! A listing is sorted by name, and a folder may hold millions of entries:
//! sorting them all in memory would cost tens of megabytes a LIST, kept by
//! the allocator long after. So entries are gathered in runs of at most
//! [`RUN_BYTES`] of names, each run sorted and written to an unnamed
//! temporary file, and the runs merged, a record at a time, into the answer
//! (an external merge sort, as `sort(1)` does). A listing that fits with its
//! header ([`INLINE_BODY`]) is answered from memory; a larger one is sent
//! from its temporary file like a file's body, in windows, under the same
//! progress deadline as any body (SPEC.md §6). What a connection holds while
//! its client reads is then a file, not a buffer; and the bytes all spooled
//! listings hold together are bounded, server-wide, by [`LISTINGS_IN_FLIGHT`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_engine::{Answer, Entry, ErrorCode, Refusal, WirePath, encode_entry};

use crate::{FileBody, Halt, INLINE_BODY, LIST_CHUNK, Reply, Work};

/// How many bytes of spooled listings may be waiting for their clients at
/// once, server-wide; a LIST that would pass it is answered `ERR BUSY`.
pub const LISTINGS_IN_FLIGHT: u64 = 1 << 30;

/// How many bytes of names a LIST sorts in memory at once.
pub(crate) const RUN_BYTES: usize = 2 << 20;

/// A spooled listing's share of [`LISTINGS_IN_FLIGHT`], given back when
/// its body is dropped (sent, or abandoned with its connection).
#[derive(Debug)]
pub struct Spooled {
    budget: Arc<AtomicU64>,
    len: u64,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.len, Ordering::AcqRel);
    }
}

/// The bytes of spooled listings in flight, shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Budget(Arc<AtomicU64>);

impl Budget {
    /// Takes `len` bytes of the budget, or says how much is left.
    fn take(&self, len: u64) -> Result<Spooled, u64> {
        let taken = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(len).filter(|&total| total <= LISTINGS_IN_FLIGHT)
        });
        match taken {
            Ok(_) => Ok(Spooled { budget: Arc::clone(&self.0), len }),
            Err(held) => Err(LISTINGS_IN_FLIGHT.saturating_sub(held)),
        }
    }
}

/// A listing being gathered: the run in memory, the sorted runs on disk,
/// and the length of the whole answer's body so far. Each record is a sort
/// key (a LIST's name; a TREE's [`ferry_engine::tree_key`]) and its line.
pub(crate) struct Listing<'a> {
    verb: &'static str,
    path: &'a WirePath,
    run: Vec<(String, Vec<u8>)>,
    run_bytes: usize,
    runs: Vec<File>,
    len: u64,
}

impl<'a> Listing<'a> {
    /// A listing for the answer to `verb` (`LIST`, `TREE`) of `path`.
    pub(crate) fn new(verb: &'static str, path: &'a WirePath) -> Listing<'a> {
        Listing { verb, path, run: Vec::new(), run_bytes: 0, runs: Vec::new(), len: 0 }
    }

    /// Adds a LIST entry.
    pub(crate) fn push_entry(&mut self, entry: Entry) -> Result<(), Halt> {
        let mut line = Vec::with_capacity(entry.name.len() + 16);
        encode_entry(&entry, &mut line);
        self.push(entry.name, line)
    }

    /// Adds a line under its sort key; a full run is sorted and written out.
    pub(crate) fn push(&mut self, key: String, line: Vec<u8>) -> Result<(), Halt> {
        self.len += line.len() as u64;
        self.run_bytes += key.len() + line.len();
        self.run.push((key, line));
        if self.run_bytes >= RUN_BYTES { self.write_run() } else { Ok(()) }
    }

    fn sort_run(&mut self) {
        self.run.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }

    /// Sorts the run in memory and writes it to a file of its own, each
    /// record as its key and its line, both length-prefixed.
    fn write_run(&mut self) -> Result<(), Halt> {
        self.sort_run();
        let mut out = BufWriter::with_capacity(64 << 10, tempfile::tempfile().map_err(|e| self.failed(e))?);
        let written: io::Result<()> = self.run.drain(..).try_for_each(|(key, line)| {
            for field in [key.as_bytes(), &line] {
                out.write_all(&(field.len() as u32).to_le_bytes())?;
                out.write_all(field)?;
            }
            Ok(())
        });
        written.map_err(|e| self.failed(e))?;
        let mut file = out.into_inner().map_err(|e| self.failed(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| self.failed(e))?;
        self.runs.push(file);
        self.run_bytes = 0;
        // The next run reuses the memory; a large folder's last run frees it.
        Ok(())
    }

    fn failed(&self, error: io::Error) -> Halt {
        Refusal::new(ErrorCode::Internal, format!("{} {}: {error}", self.verb, self.path)).into()
    }

    /// The answer: in memory when small, else merged into a spooled file.
    pub(crate) fn answer(mut self, budget: &Budget, work: &Work<'_>) -> Result<Reply, Halt> {
        let len = self.len;
        let mut header = Vec::with_capacity(24);
        Answer::Ok { len }.encode(&mut header);
        if self.runs.is_empty() && len <= INLINE_BODY {
            self.sort_run();
            self.run.iter().for_each(|(_, line)| header.extend_from_slice(line));
            return Ok(Reply::Bytes { bytes: header, closes: false });
        }
        let spooled = budget.take(len).map_err(|left| {
            Refusal::new(
                ErrorCode::Busy,
                format!(
                    "the {} of {} ({len} bytes) does not fit in what the server holds for listings in \
                     flight ({left} of {LISTINGS_IN_FLIGHT} bytes free); try again later",
                    if self.verb == "TREE" { "tree" } else { "listing" },
                    self.path
                ),
            )
        })?;
        if !self.run.is_empty() {
            self.write_run()?;
        }
        let file = self.merge(work)?;
        Ok(Reply::File { header, body: FileBody { file, offset: 0, len, spooled: Some(spooled) } })
    }

    /// Merges the sorted runs into one file of listing lines.
    fn merge(&mut self, work: &Work<'_>) -> Result<File, Halt> {
        let mut runs: Vec<BufReader<File>> =
            self.runs.drain(..).map(|run| BufReader::with_capacity(16 << 10, run)).collect();
        let mut heads = BinaryHeap::new();
        for (index, run) in runs.iter_mut().enumerate() {
            if let Some(record) = next_record(run).map_err(|e| self.failed(e))? {
                heads.push(Reverse((record, index)));
            }
        }
        let mut out = BufWriter::with_capacity(64 << 10, tempfile::tempfile().map_err(|e| self.failed(e))?);
        let mut written = 0usize;
        while let Some(Reverse(((_, line), index))) = heads.pop() {
            written += 1;
            if written.is_multiple_of(LIST_CHUNK) {
                work.check(self.verb, self.path)?;
            }
            out.write_all(&line).map_err(|e| self.failed(e))?;
            if let Some(record) = next_record(&mut runs[index]).map_err(|e| self.failed(e))? {
                heads.push(Reverse((record, index)));
            }
        }
        let mut file = out.into_inner().map_err(|e| self.failed(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| self.failed(e))?;
        Ok(file)
    }
}

/// The next (name, line) of a run, or `None` at its end.
fn next_record(run: &mut BufReader<File>) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut field = || -> io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        match run.read_exact(&mut len) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            read => read?,
        }
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        run.read_exact(&mut bytes)?;
        Ok(Some(bytes))
    };
    let Some(name) = field()? else { return Ok(None) };
    let line = field()?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    Ok(Some((name, line)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_engine::{Kind, encode_listing};

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = Budget::default();
        let most = budget.take(LISTINGS_IN_FLIGHT - 10).expect("fits");
        assert_eq!(budget.take(11).expect_err("does not fit"), 10);
        let rest = budget.take(10).expect("fits exactly");
        drop(most);
        assert!(budget.take(LISTINGS_IN_FLIGHT - 10).is_ok(), "given back when dropped");
        drop(rest);
    }

    #[test]
    fn runs_merge_into_the_order_of_one_sort_whatever_the_names() {
        // Names whose encoded lines sort differently from the names (%, a
        // space, non-ASCII), in more runs than one, in a scrambled order.
        let path = WirePath::new("x").expect("path");
        let mut entries = Vec::new();
        for n in 0..60_000u32 {
            let n = n.wrapping_mul(2_654_435_761) % 60_000;
            let name = format!("{}{n:05}{}", ["%", " ", "é", "a", "Z"][n as usize % 5], "-".repeat(n as usize % 40));
            entries.push(Entry { kind: Kind::File, size: u64::from(n), name });
        }
        let mut expected = Vec::new();
        encode_listing(entries.clone(), &mut expected);
        let mut listing = Listing::new("LIST", &path);
        for entry in entries {
            listing.push_entry(entry).expect("push");
        }
        let runs = listing.runs.len() + usize::from(!listing.run.is_empty());
        assert!(runs > 1, "the test needs several runs to merge, got {runs}");
        let Reply::File { mut body, .. } = listing.answer(&Budget::default(), &Work::unbounded()).expect("answer")
        else {
            panic!("a spooled listing")
        };
        let mut got = Vec::new();
        body.file.read_to_end(&mut got).expect("read");
        assert_eq!(body.len, expected.len() as u64);
        assert!(got == expected, "the merged listing differs from one sort");
    }
}
