//! The shutdown switch: compio has no cancellation token that crosses
//! threads, so it is `ferry_app::switch::Switch`, a channel that nobody
//! sends on (smol and async-std use the same), with what compio's threads
//! add: a local switch per thread.
//! Ctrl-C and SIGTERM turn it on ([`ferry_app::signals`]: compio's own
//! signal wait wakes a task from inside the signal handler, which is not
//! safe there).

pub use ferry_app::switch::Switch as Shutdown;
use ferry_app::switch::Trigger;

/// A switch for this thread's tasks alone, turned on by a task of this
/// thread when `shutdown` is. compio queues a wake-up from another thread
/// in a bounded queue, and the thread that turns a shared switch on waits
/// while that queue is full; thousands of connections woken at once from
/// the signal's thread would fill it, and deadlock if the other thread is
/// itself waiting on the channel's lock. Through a local switch, one
/// wake-up crosses threads per thread, and the rest are local.
pub fn local(shutdown: &Shutdown) -> Shutdown {
    let local = Shutdown::new();
    let (global, turning) = (shutdown.clone(), local.clone());
    compio::runtime::spawn(async move {
        global.wait().await;
        turning.trigger();
    })
    .detach();
    local
}
