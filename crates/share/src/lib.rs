//! The folder a FERRY/1 server shares, and the replies it gives.
//!
//! **Layer:** the share on disk, above the engine (`ferry-engine`, whose
//! requests and answers it uses) and below the application and the drivers.
//! It depends on no other ferry crate.
//!
//! Every server turns a parsed `Request` into a [`Reply`] the same way, and
//! pipelined requests into a [`Batch`] of writes, so that logic lives here
//! once. It is blocking file-system code with no sockets: `ferry-std` calls
//! [`Root::batch`] directly on its connection thread, the async drivers on
//! their blocking pools (`ferry_app::serve` decides which batch goes where).
//!
//! - [`root`](Root): the folder, and the answer to each request;
//!   `batch.rs`: pipelined requests answered together;
//!   `reply.rs`: one answer; `body.rs`: a file's bytes on their way out;
//!   `heavy.rs`: the bounds on SUM, LIST and TREE; `tree.rs`: a TREE walked;
//!   `digest.rs`: the SUM cache's key.
//!
//! The key decision: every path is opened through a [`cap_std::fs::Dir`] for
//! the root, never through an absolute path. `cap-std` resolves each
//! component itself (with `openat2(RESOLVE_BENEATH)` where the kernel has
//! it), so a symlink or `..` that leads out of the root fails to open rather
//! than depending on string checks made before opening. The protocol core
//! already refuses `..` components; this is the second, stronger wall. An
//! absolute symlink is never followed, even one whose target is inside the
//! root: under `RESOLVE_BENEATH` it names a place from outside, and SPEC.md
//! §5 says so.
//!
//! The second decision: no client can make the server do unbounded work.
//! `SUM`, `LIST` and `TREE` requests are **heavy**: their cost grows
//! with the file or folder, not with the request. The rule every driver
//! follows, each with its own runtime's semaphore:
//!
//! - at most [`heavy_permits`] heavy requests run at once server-wide; the
//!   rest wait for a permit (asynchronously on the async runtimes, so a
//!   flood of SUMs never fills a blocking pool and a GET is still answered);
//! - a heavy request must be answered by its [`Work::deadline`] (the
//!   driver's idle timeout, counted from when the request was read, its
//!   wait for a permit included), or it is answered `ERR TIMEOUT` and the
//!   connection closes;
//! - it stops within one chunk when [`Work::stop`] says the client has left
//!   or the server is shutting down, and the connection closes unanswered;
//! - a SUM of a file unchanged since the last one (same device, inode,
//!   size, modification and change times) is answered from a cache.
//!
//! The third: a GET of a file the kernel already has in memory can be
//! answered without blocking at all ([`Root::batch_cached`]), so the async
//! drivers answer hot files on their event loop and send only the rest to
//! the pool. `openat2(RESOLVE_BENEATH | RESOLVE_CACHED)` resolves the path
//! from the kernel's caches or fails with `EAGAIN` rather than go to disk
//! (and confines it exactly as cap-std does, with the kernel's own
//! `RESOLVE_BENEATH`); an inline body is read with `preadv2(RWF_NOWAIT)`,
//! which fails rather than wait for a page not in the cache. Anything else
//! (a would-block, an error other than "does not exist", a kernel or file
//! system without these flags) falls back to the pool, where cap-std gives
//! the answer: the two paths never disagree on what a client is told. Only
//! file systems whose open and stat are answered from memory take this path
//! at all ([`Root::open`] checks the shared folder's; `RESOLVE_NO_XDEV`
//! sends a path that crosses into another mount to the pool): on FUSE or
//! NFS, opening a file asks a daemon or a server, however warm the caches.
//!
//! The fourth: a large body is sent from the event loop only where the
//! kernel has its pages ([`FileBody::resident`]); a window that is not goes
//! through the pool in reads of [`COLD_READ`] bytes ([`FileBody::read_cold`]),
//! so a slow disk holds up a pool thread, never an event loop.

mod batch;
mod body;
mod digest;
mod heavy;
mod reply;
mod root;
mod spool;
#[cfg(test)]
mod tests;
mod tree;

pub use batch::{BATCH_BYTES, BATCH_REQUESTS, Batch, Part};
pub use body::{COLD_READ, FileBody, INLINE_BODY, PROBE_STRIDE, resident};
use digest::*;
use heavy::*;
pub use heavy::{Work, heavy_permits};
pub use reply::Reply;
pub use root::{Root, RootError};
pub use spool::{LISTINGS_IN_FLIGHT, Spooled};
pub use tree::{TREE_DEPTH, TREE_ENTRIES};
