//! What a tree holds, from the server: one TREE, or on a server without it
//! a walk with LIST, every name checked and every bound kept, before
//! anything is written.

use std::collections::HashSet;

use ferry_engine::client::{ClientError, Outcomes};
use ferry_engine::{BadName, Entry, ErrorCode, Kind, Request, TreeEntry, TreeKind, WirePath, check_name};

use crate::dial::Remote;
use crate::runtime::Runtime;
use crate::save::Item;

/// A tree as listed: its entries in order (a folder before what it holds),
/// the names refused, and whether the times are the server's.
#[derive(Debug, Default)]
pub struct Gathered {
    /// The entries to copy, each path below the folder asked for.
    pub entries: Vec<TreeEntry>,
    /// Entries refused, each with why: shown, never used.
    pub refused: Vec<BadName>,
    /// Whether `entries` carry modification times (TREE), or not (LIST).
    pub timed: bool,
    seen: HashSet<String>,
    /// Folders listed so far: an entry must be in one of them.
    folders: HashSet<String>,
    max_entries: usize,
    max_depth: usize,
}

impl Gathered {
    fn new(max_entries: usize, max_depth: usize, timed: bool) -> Gathered {
        Gathered { max_entries, max_depth, timed, ..Gathered::default() }
    }

    /// Takes an entry in, or refuses it; `Err` once the tree is past the
    /// entry bound, which stops the listing.
    fn take(&mut self, entry: Result<TreeEntry, BadName>) -> Result<(), String> {
        let entry = match entry {
            Ok(entry) => entry,
            Err(bad) => {
                self.refused.push(bad);
                return self.bounded();
            }
        };
        let refuse = |reason| BadName { shown: ferry_engine::show::escaped(&entry.path).into_owned(), reason };
        let parent = entry.path.rsplit_once('/').map(|(parent, _)| parent);
        let refusal = if entry.depth() > self.max_depth {
            Some(refuse("deeper than --max-depth"))
        } else if parent.is_some_and(|parent| !self.folders.contains(parent)) {
            // Listed in a folder that was not listed as one (a file, a
            // refused name, a link): nowhere to put it.
            Some(refuse("in a folder that is not in the listing"))
        } else if !self.seen.insert(entry.path.clone()) {
            Some(refuse("listed twice"))
        } else {
            None
        };
        match refusal {
            Some(bad) => self.refused.push(bad),
            None => {
                if entry.kind == TreeKind::Directory {
                    self.folders.insert(entry.path.clone());
                }
                self.entries.push(entry);
            }
        }
        self.bounded()
    }

    fn bounded(&self) -> Result<(), String> {
        if self.entries.len() + self.refused.len() > self.max_entries {
            return Err(format!(
                "the server listed more than {} entries; stopped (raise --max-entries to copy a tree this large)",
                self.max_entries
            ));
        }
        Ok(())
    }
}

impl Outcomes<Item> for Gathered {
    fn record(&mut self, _: &Item, _: Result<Option<[u8; 32]>, ClientError>) {}

    fn found(&mut self, entry: Result<TreeEntry, BadName>) -> Result<(), String> {
        self.take(entry)
    }
}

/// Lists the tree under `path`: one TREE; on a server that does not know
/// it (`BAD_REQUEST`), a LIST of each folder in turn, without times.
pub fn gather<R: Runtime>(
    remote: &Remote,
    path: &WirePath,
    max_entries: usize,
    max_depth: usize,
) -> Result<Gathered, ClientError> {
    let mut tree = Gathered::new(max_entries, max_depth, true);
    match R::ls(remote, &Request::Tree { path: path.clone() }, &mut tree) {
        Err(ClientError::Refused { refusal, .. }) if refusal.code == ErrorCode::BadRequest => {
            tracing::info!(%path, "the server has no TREE; listing folder by folder");
            walk::<R>(remote, path, Gathered::new(max_entries, max_depth, false))
        }
        Err(error) => Err(error),
        Ok(()) => Ok(tree),
    }
}

/// The tree under `path` from one LIST a folder, breadth first. A LIST
/// shows a link to a folder as a folder, so the bounds on depth and
/// entries are what end a walk through a link loop.
fn walk<R: Runtime>(remote: &Remote, path: &WirePath, mut tree: Gathered) -> Result<Gathered, ClientError> {
    let mut pending = std::collections::VecDeque::from([String::new()]);
    while let Some(folder) = pending.pop_front() {
        let listed = if folder.is_empty() { path.as_str().to_owned() } else { format!("{}/{folder}", path.as_str()) };
        let wire = WirePath::new(&listed).map_err(|refusal| ClientError::Refused { path: listed.clone(), refusal })?;
        // Held to the bound on entries: past it, the rest of the listing is
        // read and dropped (a LIST cannot be stopped), then the walk ends.
        let mut names = Listed { entries: Vec::new(), most: tree.max_entries.saturating_sub(tree.entries.len()) + 1 };
        R::ls(remote, &Request::List { path: wire }, &mut names)?;
        for Entry { kind, size, name } in names.entries {
            let below = if folder.is_empty() { name.clone() } else { format!("{folder}/{name}") };
            let entry = match check_name(&name) {
                Err(reason) => Err(BadName { shown: ferry_engine::show::escaped(&below).into_owned(), reason }),
                Ok(()) => {
                    let kind = if kind == Kind::Directory { TreeKind::Directory } else { TreeKind::File };
                    Ok(TreeEntry { kind, size, modified: 0, path: below.clone() })
                }
            };
            let folder_depth = entry.as_ref().ok().filter(|e| e.kind == TreeKind::Directory).map(TreeEntry::depth);
            let stop = tree.take(entry);
            // Only a folder the tree took in is descended into.
            match folder_depth.filter(|_| tree.folders.contains(&below)) {
                Some(depth) if depth < tree.max_depth => pending.push_back(below),
                // What a LIST shows as a folder may be a link to one above
                // it: the walk ends here, and says so.
                Some(_) => tree.refused.push(BadName {
                    shown: ferry_engine::show::escaped(&below).into_owned(),
                    reason: "a folder at --max-depth: what it holds is not copied (raise --max-depth)",
                }),
                None => {}
            }
            if let Err(reason) = stop {
                return Err(ClientError::Stopped { path: path.as_str().to_owned(), reason });
            }
        }
    }
    // Breadth first gives a folder's entries after every folder of its
    // level; a copy wants each folder before what it holds, which this
    // order already is, and the order of files does not matter.
    Ok(tree)
}

/// A LIST's entries, kept up to `most`.
struct Listed {
    entries: Vec<Entry>,
    most: usize,
}

impl Outcomes<Item> for Listed {
    fn record(&mut self, _: &Item, _: Result<Option<[u8; 32]>, ClientError>) {}

    fn listed(&mut self, entry: Entry) {
        if self.entries.len() < self.most {
            self.entries.push(entry);
        }
    }
}
