//! The shutdown switch: async-std has no cancellation token, so it is
//! `ferry_app::switch::Switch`, a channel that nobody sends on, which any
//! task can test and await (smol and compio use the same). Ctrl-C and
//! SIGTERM turn it on ([`ferry_app::signals`]).

pub use ferry_app::switch::Switch as Shutdown;
