//! The pools only this implementation needs: a blocking thread pool whose
//! threads are named apart from the event loops, and each thread's pool of
//! pipes that bodies are spliced through.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use compio::driver::op::Splice;
use compio::driver::{SharedFd, ToSharedFd};
use compio::net::TcpStream;
use ferry_engine::body::SEND_WINDOW;
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

/// Runs `work` on the blocking pool and waits for it. The pool is bounded
/// (500 threads, `BLOCKING_MAX_THREADS`); a task on it that has started
/// always ends, and its panic is the caller's.
///
/// The pool is the `blocking` crate's (smol's, runtime-agnostic), not
/// compio's `spawn_blocking`: compio starts a pool thread from the loop
/// thread that found none idle, so the new thread carries that loop's name
/// ("compio-loop-1") until it runs a task, and when another thread frees up
/// first and takes the task, the new one waits its minute idle under the
/// loop's name, with no hook to rename it. These threads are named
/// `blocking-N` from their start, so `strace -f` and `top -H` always tell
/// them from the event loops.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    blocking::unblock(work).await
}

/// The pipe a body passes through on its way from the file to the socket,
/// taken from a pool of [`PIPES_PER_THREAD`] on each thread and given back
/// once a body is sent whole. Their descriptors are set aside when the
/// server fits its connections under the open-file limit
/// ([`crate::Compio`]'s `reserved_descriptors`), so a connection costs two
/// (its socket and its file), not four; and a client that stops reading
/// holds one pipe at most until its idle timeout, after which the pool
/// copies rather than waits.
///
/// Every operation on the pipe holds both ends ([`Ends`]), so they close
/// only when the last operation is over, whoever drops the `Pipe` and when:
/// closing the write end while a splice out of the pipe waits for a stalled
/// socket would block this thread until the socket moved (the kernel's
/// worker holds the pipe meanwhile), and at shutdown it never would.
pub(crate) struct Pipe {
    ends: SharedFd<Ends>,
    pub(crate) size: usize,
    /// Whether this thread's driver is io_uring.
    pub(crate) ring: bool,
}

/// Both ends of a pipe, owned together.
struct Ends {
    read: OwnedFd,
    write: OwnedFd,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // Not given back: one fewer in this thread's pool. (At the thread's
        // end the pool itself is going, and there is nothing to count.)
        let _ = POOL.try_with(|pool| pool.try_borrow_mut().map(|mut pool| pool.open -= 1));
    }
}

impl AsFd for Ends {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// The read end of a pipe, holding both ends open.
struct ReadEnd(SharedFd<Ends>);

impl AsFd for ReadEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.read.as_fd()
    }
}

/// The write end of a pipe, holding both ends open.
struct WriteEnd(SharedFd<Ends>);

impl AsFd for WriteEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.write.as_fd()
    }
}

/// Pipes each thread keeps for bodies in flight; beyond them, bodies are
/// copied ([`Connection::send_copied`]). Their descriptors are set aside
/// from the open-file limit, so the pool stays small.
pub const PIPES_PER_THREAD: usize = 64;

/// This thread's pool: the pipes free to take, and how many exist.
#[derive(Default)]
struct Pool {
    free: Vec<Pipe>,
    open: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::default();
}

impl Pipe {
    /// A pipe of this thread's pool, opened if there are fewer than
    /// [`PIPES_PER_THREAD`]; `None` when all are in use.
    pub(crate) fn take() -> io::Result<Option<Pipe>> {
        let (free, room) = POOL.with_borrow_mut(|pool| (pool.free.pop(), pool.open < PIPES_PER_THREAD));
        match free {
            Some(pipe) => Ok(Some(pipe)),
            None if room => {
                // Counted once it exists: its `Drop` uncounts it.
                let pipe = Pipe::open()?;
                POOL.with_borrow_mut(|pool| pool.open += 1);
                Ok(Some(pipe))
            }
            None => Ok(None),
        }
    }

    /// Puts back a pipe that is empty and that no operation uses.
    pub(crate) fn give_back(self) {
        POOL.with_borrow_mut(|pool| pool.free.push(self));
    }

    fn open() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        // A pipe holds 64 KiB by default; a window's worth means fewer
        // splices. Unprivileged users may be held to less: keep what the
        // kernel allows.
        let size = rustix::pipe::fcntl_setpipe_size(&write, SEND_WINDOW as usize)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?;
        let ring = compio::runtime::Runtime::with_current(|runtime| runtime.driver_type().is_iouring());
        Ok(Pipe { ends: SharedFd::new(Ends { read, write }), size, ring })
    }

    /// Moves up to `len` bytes from the pipe into `socket`.
    pub(crate) async fn drain(&self, socket: &TcpStream, len: usize) -> io::Result<usize> {
        let (from, to) = (ReadEnd(self.ends.to_shared_fd()), socket.to_shared_fd());
        compio::runtime::submit(Splice::new(from, -1, to, -1, len, SpliceFlags::MOVE)).await.0
    }

    /// Moves up to `want` bytes of `file`, from offset `at`, into the empty
    /// pipe. On io_uring it is a ring operation, which the kernel completes
    /// off this thread when the disk must be read; it has no deadline (the
    /// client is not involved, and the disk's read cannot be cut short).
    /// The polling driver cannot wait for a regular file (epoll refuses
    /// them), so there it is a plain `splice(2)` on the thread, as
    /// `sendfile` is on the other runtimes: immediate for a file in memory,
    /// a wait for the disk otherwise. The pipe is empty, so it never waits
    /// for the pipe.
    pub(crate) async fn fill(&self, file: &SharedFd<File>, at: u64, want: usize) -> io::Result<usize> {
        if !self.ring {
            loop {
                let mut offset = at;
                match rustix::pipe::splice(file, Some(&mut offset), &self.ends.write, None, want, SpliceFlags::MOVE) {
                    // A signal (SIGTERM, say) arrived first: nothing moved.
                    Err(Errno::INTR) => continue,
                    filled => return filled.map_err(io::Error::from),
                }
            }
        }
        let at = i64::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let to = WriteEnd(self.ends.to_shared_fd());
        compio::runtime::submit(Splice::new(file.to_shared_fd(), at, to, -1, want, SpliceFlags::MOVE)).await.0
    }
}
