//! `get -r`: whole folders, copied the way `get` saves one file.
//!
//! The tree is listed first ([`gather`]: one TREE, every name checked),
//! so that nothing is written before the client knows what it will write
//! and how much. Then, all on the client's disk: each folder is made (or
//! found, a real folder and never a link), each file planned as `get`
//! plans one (its own locked `.part`, renamed when whole, never through a
//! link), or skipped when `--continue` finds it already there with the
//! server's size and time. The files are then fetched on `-j` connections
//! at once, each one pipelined ([`crate::Runtime::get`] per connection, on
//! a thread of its own: every runtime's client is blocking from outside),
//! under one progress bar; the folders get their times last, since writing
//! into a folder changes its time. The files are not flushed to disk one
//! by one as a single `get` flushes its file (two flushes a file were most
//! of the time a tree of small files took): the whole copy is flushed once
//! (`syncfs`) before the summary says it is done.
//!
//! Nothing is written outside DEST: every path is DEST, the name of the
//! folder asked for, and names the server listed that [`gather`] checked
//! one by one (no `..`, no `/` inside a name, nothing absolute), each
//! under a folder this run made or found to be a real folder.

mod gather;

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use ferry_engine::client::{ClientError, SaveError};
use ferry_engine::show::escaped;
use ferry_engine::{ErrorCode, TreeKind, WirePath};

use crate::args::GetArgs;
use crate::dial::Remote;
use crate::progress::{Progress, human_bytes};
use crate::runtime::Runtime;
use crate::save::{Dest, Item, Plan, Report, Resume, Target, destination, folder};
use crate::say;

pub use gather::{Gathered, gather};

/// Why `get -r` could not start: the user's words (exit status 2), or a
/// destination that is not there (1).
#[derive(Debug)]
pub enum Refused {
    /// The arguments do not make sense.
    Usage(String),
    /// DEST is missing or not a folder, or the user cancelled.
    Save(SaveError),
}

/// What one run did, for the summary.
#[derive(Debug, Default)]
struct Tally {
    /// Files already complete, not asked for.
    skipped: usize,
    /// Links to folders, not copied.
    links: usize,
    /// Entries or files that failed before any request: refused names,
    /// folders that could not be made, destinations in the way.
    failed: Vec<String>,
}

/// Copies each folder of `args.paths` from the server into DEST.
pub fn get_tree<R: Runtime>(args: &GetArgs, remote: &Remote, quiet: bool) -> Result<ExitCode, Refused> {
    let started = Instant::now();
    let mut paths = Vec::new();
    let mut names = HashSet::new();
    for text in &args.paths {
        let path = WirePath::new(text)
            .map_err(|refusal| Refused::Usage(format!("{}: {}", escaped(text), escaped(&refusal.to_string()))))?;
        if !names.insert(path.file_name().map(str::to_owned)) {
            return Err(Refused::Usage(format!(
                "{} would be copied into the same folder as another PATH; copy them separately",
                escaped(text)
            )));
        }
        paths.push(path);
    }
    let into = match &args.output {
        Some(output) if crate::save::is_stdout(output) => {
            return Err(Refused::Usage("-o - (stdout) cannot take a folder; give a folder with -o".to_owned()));
        }
        Some(output) => output.clone(),
        None if std::io::stdin().is_terminal() => ask_folder(&paths)?,
        None => PathBuf::from("."),
    };
    folder(&into, args.create_dirs).map_err(Refused::Save)?;

    let mut tally = Tally::default();
    let mut report = Report::new(0).quiet(true).with_hints(R::BINARY, &args.addr);
    let mut items = Vec::new();
    let mut folders = Vec::new();
    for path in &paths {
        let local = match path.file_name() {
            Some(name) => into.join(name),
            None => into.clone(),
        };
        match gather::<R>(remote, path, args.max_entries, args.max_depth) {
            Ok(tree) => plan_tree(args, path, &local, tree, &mut items, &mut folders, &mut tally),
            // `get -r` of a file: copied like `scp -r` does, into DEST.
            Err(ClientError::Refused { refusal, .. }) if refusal.code == ErrorCode::NotADirectory => {
                match destination(local.clone(), args.force, args.resume) {
                    Ok((dest, offset)) => items.push(item(path.clone(), dest, offset, None)),
                    Err(error) => fail(&mut tally, &local.to_string_lossy(), &error.to_string()),
                }
            }
            Err(error) => {
                report.failed(&error);
                tally.failed.push(path.as_str().to_owned());
            }
        }
    }

    let files = items.len();
    // What each file still has to bring: its size past where it starts.
    let sizes: Vec<u64> = items.iter().map(|planned| planned.size.saturating_sub(planned.item.offset)).collect();
    let bytes: u64 = sizes.iter().sum();
    let bar = Progress::tree(files, bytes, !args.no_progress && !quiet);
    let items: Vec<Item> = items
        .into_iter()
        .map(|mut planned| {
            planned.item.tree = Some(bar.clone());
            planned.item
        })
        .collect();
    let plan = Plan { items, verify: args.verify || args.resume, refused: Vec::new() };
    let complete = plan.items.iter().filter(|item| matches!(item.dest, Dest::Complete(_))).count();
    let resume = Resume::new(R::BINARY, &plan);
    let last_words = resume.clone();
    crate::signals::on_interrupt(move || last_words.tell())
        .map_err(|e| Refused::Save(SaveError::io("signal handlers", std::io::Error::other(e))))?;
    let cut = fetch::<R>(remote, plan, &sizes, args.jobs, &args.addr, &mut report);
    bar.finish();
    if cut {
        resume.tell();
    }
    for folder in folders.iter().rev() {
        set_time(folder);
    }
    // Each file was renamed into place whole, but not flushed: the copy is
    // flushed to disk here, once, before it is said to be done.
    if let Err(error) = std::fs::File::open(&into).and_then(|dest| rustix::fs::syncfs(&dest).map_err(Into::into)) {
        say!("error: {}: cannot flush the copy to disk: {error}", escaped(&into.to_string_lossy()));
        tally.failed.push(into.to_string_lossy().into_owned());
    }

    let (saved, failed) = report.counts();
    let failed_total = failed + tally.failed.len();
    let mut summary = format!(
        "{} fetched ({} in {:.1} s)",
        saved.saturating_sub(complete),
        human_bytes(bytes),
        started.elapsed().as_secs_f64()
    );
    if tally.skipped + complete > 0 {
        summary.push_str(&format!(", {} already complete", tally.skipped + complete));
    }
    if tally.links > 0 {
        let links = if tally.links == 1 { "link" } else { "links" };
        summary.push_str(&format!(", {} {links} to folders not copied", tally.links));
    }
    summary.push_str(&format!(", {failed_total} failed"));
    if !quiet || failed_total > 0 {
        say!("{summary}");
    }
    let named: Vec<String> =
        tally.failed.iter().chain(&report.failures).map(|name| escaped(name).into_owned()).collect();
    if !named.is_empty() {
        const SHOWN: usize = 20;
        let more = named.len().saturating_sub(SHOWN);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        say!("failed: {}{tail}", named[..named.len().min(SHOWN)].join(", "));
    }
    Ok(if failed_total == 0 && saved == files { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A file to fetch, with its size as the server listed it.
struct Planned {
    item: Item,
    size: u64,
}

fn item(path: WirePath, dest: Dest, offset: u64, size: Option<u64>) -> Planned {
    Planned { size: size.unwrap_or(offset), item: Item { path, dest, offset, bar: false, tree: None } }
}

/// Said once, and counted for the summary: an entry that fails before
/// any request.
fn fail(tally: &mut Tally, name: &str, why: &str) {
    say!("error: {why}");
    tally.failed.push(name.to_owned());
}

/// Makes the folders of one listed tree under `local` and plans its files.
fn plan_tree(
    args: &GetArgs,
    path: &WirePath,
    local: &Path,
    tree: Gathered,
    items: &mut Vec<Planned>,
    folders: &mut Vec<(PathBuf, Option<SystemTime>)>,
    tally: &mut Tally,
) {
    for bad in &tree.refused {
        fail(tally, &bad.shown, &format!("{} (listed by the server under {path}): refused, {}", bad.shown, bad.reason));
    }
    if let Err(error) = make_folder(local) {
        fail(tally, &local.to_string_lossy(), &error.to_string());
        return;
    }
    // Folders that could not be made: nothing is planned under them.
    let mut lost: HashSet<&str> = HashSet::new();
    for entry in &tree.entries {
        let parent = entry.path.rsplit_once('/').map(|(parent, _)| parent);
        if parent.is_some_and(|parent| lost.contains(parent)) {
            if entry.kind == TreeKind::Directory {
                lost.insert(&entry.path);
            }
            continue;
        }
        let dest = local.join(&entry.path);
        let time = tree.timed.then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(entry.modified));
        let remote = if path.is_root() { entry.path.clone() } else { format!("{}/{}", path.as_str(), entry.path) };
        match entry.kind {
            TreeKind::Link => {
                say!("{}: a link to a folder; not copied", escaped(&remote));
                tally.links += 1;
            }
            TreeKind::Directory => match make_folder(&dest) {
                Ok(()) => folders.push((dest, time)),
                Err(error) => {
                    fail(tally, &remote, &error.to_string());
                    lost.insert(&entry.path);
                }
            },
            TreeKind::File => {
                let Ok(wire) = WirePath::new(&remote) else {
                    fail(tally, &remote, &format!("{}: not a path a request can name", escaped(&remote)));
                    continue;
                };
                match plan_file(args, &dest, entry.size, time) {
                    Ok(None) => tally.skipped += 1,
                    Ok(Some((mut dest, offset))) => {
                        if let Dest::File(target) = &mut dest {
                            target.modified = time;
                            target.flush = false;
                        }
                        items.push(item(wire, dest, offset, Some(entry.size)));
                    }
                    Err(error) => fail(tally, &remote, &error.to_string()),
                }
            }
        }
    }
}

/// Where one file of a tree goes, and from which byte: `None` when
/// `--continue` finds it already there with the server's size and time
/// (and `--verify` is not asking for its digest to be compared too).
fn plan_file(
    args: &GetArgs,
    dest: &Path,
    size: u64,
    time: Option<SystemTime>,
) -> Result<Option<(Dest, u64)>, SaveError> {
    match std::fs::symlink_metadata(dest) {
        Ok(found) if found.is_file() && args.resume && !args.force => {
            let same_time = time.is_none_or(|time| found.modified().is_ok_and(|mine| same_second(mine, time)));
            if found.len() == size && same_time {
                Target::new(dest.to_owned(), false).drop_committed_part();
                if args.verify {
                    return Ok(Some((Dest::Complete(dest.to_owned()), size)));
                }
                return Ok(None);
            }
            // Another file than the server's: not a prefix to resume.
            Err(SaveError::Exists { path: dest.to_owned() })
        }
        _ => destination(dest.to_owned(), args.force, args.resume).map(Some),
    }
}

fn same_second(a: SystemTime, b: SystemTime) -> bool {
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs(a) == secs(b)
}

/// Makes `path` a folder, or finds it one: never a link to one, which
/// could lead anywhere.
fn make_folder(path: &Path) -> Result<(), SaveError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match std::fs::symlink_metadata(path) {
            Ok(found) if found.is_dir() => Ok(()),
            Ok(found) if found.is_symlink() => Err(SaveError::Link { path: path.to_owned() }),
            Ok(_) => Err(SaveError::NotAFolder { path: path.to_owned() }),
            Err(e) => Err(SaveError::io(path, e)),
        },
        Err(e) => Err(SaveError::io(path, e)),
    }
}

/// Gives a folder the server's time, without following a link.
fn set_time((path, time): &(PathBuf, Option<SystemTime>)) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let Some(time) = time else { return };
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let at = Timespec { tv_sec: since.as_secs() as i64, tv_nsec: 0 };
    let times = Timestamps { last_access: at, last_modification: at };
    if let Err(error) = utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        tracing::debug!(path = %path.display(), %error, "cannot set the folder's time");
    }
}

/// Fetches the plan's files on up to `jobs` connections at once, the
/// largest files first spread over them; whether any connection was cut.
fn fetch<R: Runtime>(remote: &Remote, plan: Plan, sizes: &[u64], jobs: usize, addr: &str, report: &mut Report) -> bool {
    let Plan { items, verify, .. } = plan;
    let lanes = jobs.min(items.len()).max(1);
    let mut plans: Vec<(Plan, u64)> =
        (0..lanes).map(|_| (Plan { items: Vec::new(), verify, refused: Vec::new() }, 0)).collect();
    let mut items: Vec<(u64, Item)> = sizes.iter().copied().zip(items).collect();
    // Largest first, each to the connection with the fewest bytes so far
    // (a small file counts as 4 KiB: its request costs a round of work).
    items.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    for (size, item) in items {
        let lightest = plans.iter_mut().min_by_key(|(_, load)| *load).map(|(plan, load)| {
            *load += size.max(1 << 12);
            plan
        });
        if let Some(plan) = lightest {
            plan.items.push(item);
        }
    }
    let cut = std::sync::atomic::AtomicBool::new(false);
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .into_iter()
            .filter(|(plan, _)| !plan.items.is_empty())
            .map(|(plan, _)| {
                let cut = &cut;
                scope.spawn(move || {
                    let mut report = Report::new(plan.items.len()).quiet(true).with_hints(R::BINARY, addr);
                    if let Err(error) = R::get(remote, &plan, &mut report) {
                        report.connection_failed(&error);
                        plan.abandon(&error);
                        cut.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    report
                })
            })
            .collect();
        handles.into_iter().filter_map(|handle| handle.join().ok()).collect()
    });
    for lane in reports {
        report.merge(lane);
    }
    cut.into_inner()
}

/// Asks on the terminal which folder to copy into, offering the current one.
fn ask_folder(paths: &[WirePath]) -> Result<PathBuf, Refused> {
    let shown: Vec<String> = paths.iter().map(|path| escaped(path.as_str()).into_owned()).collect();
    crate::say::write(format!("Copy {} into folder [.]: ", shown.join(", ")).as_bytes());
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(0) => {
            say!();
            Err(Refused::Save(SaveError::Cancelled))
        }
        Ok(_) => {
            Ok(crate::save::expand_home(answer.trim_end_matches(['\r', '\n'])).unwrap_or_else(|| PathBuf::from(".")))
        }
        Err(e) => Err(Refused::Save(SaveError::io("stdin", e))),
    }
}
