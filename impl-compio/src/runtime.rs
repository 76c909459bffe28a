//! Plugs this runtime into the shared command line, starts a thread a core,
//! and picks the I/O driver.
//!
//! Thread per core: the server starts one thread a core, each with its own
//! compio `Runtime` (its own ring) and its own listening socket on the one
//! port (`SO_REUSEPORT`, [`ferry_app::net::listen_group`]): the kernel spreads
//! new connections over the threads' accept queues, and a connection stays
//! on the thread that accepted it. Nothing moves between threads but the
//! shared limits and the shutdown switch. (The alternative, one acceptor
//! handing sockets to workers, costs a hop per connection and makes the
//! acceptor's core the busiest.) A client has one connection to drive, so
//! it runs on the calling thread.

use std::sync::Arc;
use std::thread;

use anyhow::Context;
use compio::driver::op::OpCodeFlag;
use compio::driver::{DriverType, ProactorBuilder};
use compio::net::TcpListener;
use ferry_app::dial::Remote;
use ferry_app::link::Client;
use ferry_app::switch::Trigger;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::Request;
use ferry_engine::client::{ClientConfig, ClientError, Outcomes};

use crate::connection::Connection;
use crate::server::{self, Limits};
use crate::shutdown::Shutdown;

/// The compio implementation of ferry.
#[derive(Debug)]
pub struct Compio;

impl Runtime for Compio {
    const NAME: &'static str = "compio";
    const BINARY: &'static str = "ferry-compio";
    /// Each thread's pool of pipes that bodies are spliced through.
    fn reserved_descriptors() -> u64 {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        (2 * crate::pool::PIPES_PER_THREAD * threads) as u64
    }

    fn serve(config: ServeConfig) -> anyhow::Result<()> {
        let driver = Driver::from_env()?;
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        let listeners = ferry_app::net::listen_group(config.listen, threads)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listeners[0].local_addr()?;
        let (limits, shutdown) = (Limits::new(&config), Shutdown::new());
        let config = Arc::new(config);
        // This thread's runtime first: if the driver cannot start, say so
        // before any thread has started.
        let runtime = driver.runtime()?;
        tracing::info!(driver = Driver::name(runtime.driver_type()), threads, "compio: a thread a core");
        thread::scope(|scope| {
            let mut listeners = listeners.into_iter();
            let first = listeners.next().context("no listening socket")?;
            let mut others = Vec::new();
            for (n, listener) in listeners.enumerate() {
                let (config, limits, shutdown) = (Arc::clone(&config), limits.clone(), shutdown.clone());
                let thread =
                    thread::Builder::new().name(format!("compio-loop-{}", n + 1)).spawn_scoped(scope, move || {
                        let served = driver
                            .runtime()
                            .and_then(|runtime| runtime.block_on(serve_on(listener, config, limits, shutdown.clone())));
                        // One thread failing stops them all.
                        if served.is_err() {
                            shutdown.trigger();
                        }
                        served
                    });
                others.push(thread.context("cannot start a server thread")?);
            }
            ferry_app::net::ready(&config, addr, shutdown.trigger_fn())?;
            let served = runtime.block_on(serve_on(first, config, limits, shutdown.clone()));
            shutdown.trigger();
            for other in others {
                other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            }
            served
        })
    }

    fn get(remote: &Remote, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        let config = &remote.config;
        client_runtime(config)?.block_on(async {
            let connected = Connection::connect(remote).await?;
            Client::new(connected, config).get_async(config, plan, report).await
        })
    }

    fn ls(remote: &Remote, request: &Request, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        let config = &remote.config;
        client_runtime(config)?.block_on(async {
            let connected = Connection::connect(remote).await?;
            Client::new(connected, config).ls_async(config, request, out).await
        })
    }
}

/// One thread's server: its listener, adopted by this thread's runtime,
/// served until shutdown.
async fn serve_on(
    listener: std::net::TcpListener,
    config: Arc<ServeConfig>,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    Ok(server::run(listener, config, limits, shutdown).await?)
}

/// The client's runtime, on the driver `FERRY_COMPIO_DRIVER` asks for.
fn client_runtime(config: &ClientConfig) -> Result<compio::runtime::Runtime, ClientError> {
    let fail = |e: anyhow::Error| ClientError::Io {
        addr: config.addr.clone(),
        source: std::io::Error::other(format!("{e:#}")),
    };
    Driver::from_env().and_then(Driver::runtime).map_err(fail)
}

/// Which of compio's drivers does the I/O, from the environment variable
/// `FERRY_COMPIO_DRIVER`:
///
/// - unset or `auto`: io_uring where the kernel allows it and supports
///   every operation used here, else the polling driver (epoll), with a
///   line in the log that says which;
/// - `io_uring`: io_uring or a clear error at start, never the fallback;
/// - `poll`: the polling driver, as on a machine where io_uring is not
///   allowed (Docker's default seccomp profile, `kernel.io_uring_disabled`).
///   The tests run both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring if it works, else polling.
    Auto,
    /// io_uring only.
    IoUring,
    /// The polling driver only.
    Poll,
}

impl Driver {
    /// The variable that chooses.
    pub const VARIABLE: &'static str = "FERRY_COMPIO_DRIVER";

    /// The driver the environment asks for.
    pub fn from_env() -> anyhow::Result<Driver> {
        match std::env::var(Driver::VARIABLE) {
            Err(std::env::VarError::NotPresent) => Ok(Driver::Auto),
            Ok(value) => match value.as_str() {
                "" | "auto" => Ok(Driver::Auto),
                "io_uring" | "io-uring" | "uring" => Ok(Driver::IoUring),
                "poll" | "polling" | "epoll" => Ok(Driver::Poll),
                other => anyhow::bail!("{}={other:?}: expected io_uring, poll or auto", Driver::VARIABLE),
            },
            Err(std::env::VarError::NotUnicode(_)) => {
                anyhow::bail!("{} is not UTF-8: expected io_uring, poll or auto", Driver::VARIABLE)
            }
        }
    }

    /// A runtime for this thread on this driver.
    pub fn runtime(self) -> anyhow::Result<compio::runtime::Runtime> {
        let mut proactor = ProactorBuilder::new();
        // `splice` is the one operation beyond compio's basic set that
        // ferry needs; a kernel without it gets the polling driver.
        proactor.detect_opcode_support(OpCodeFlag::Splice);
        match self {
            Driver::Auto => {}
            Driver::IoUring => {
                proactor.driver_type(DriverType::IoUring);
            }
            Driver::Poll => {
                proactor.driver_type(DriverType::Poll);
            }
        }
        compio::runtime::RuntimeBuilder::new().with_proactor(proactor).build().with_context(|| match self {
            Driver::IoUring => format!(
                "cannot start io_uring (disabled by kernel.io_uring_disabled, or blocked by a seccomp \
                 profile?); {}=poll uses the polling driver",
                Driver::VARIABLE
            ),
            _ => "cannot start compio's runtime".to_owned(),
        })
    }

    /// How the log names a driver.
    pub fn name(driver: DriverType) -> &'static str {
        match driver {
            DriverType::IoUring => "io_uring",
            DriverType::Poll => "poll",
            DriverType::IOCP => "iocp",
        }
    }
}
