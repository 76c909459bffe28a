//! Plugs this runtime into the shared command line.
//!
//! The server runs on tokio's multi-threaded runtime, one worker a core; a
//! client has one connection to drive, so it runs on a current-thread
//! runtime and spends no threads it cannot use.

use anyhow::Context;
use ferry_app::dial::Remote;
use ferry_app::link::Client;
use ferry_app::switch::Trigger;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::Request;
use ferry_engine::client::{ClientConfig, ClientError, Outcomes};
use tokio::net::TcpListener;
use tokio::runtime::Builder;

use crate::connection::Connection;
use crate::server;
use crate::shutdown::Shutdown;

/// The tokio implementation of ferry.
#[derive(Debug)]
pub struct Tokio;

impl Runtime for Tokio {
    const NAME: &'static str = "tokio";
    const BINARY: &'static str = "ferry-tokio";

    fn serve(config: ServeConfig) -> anyhow::Result<()> {
        // tokio gives its workers and its blocking pool one thread name. A
        // worker is the thread that parks when idle, so it renames itself
        // then, once: `strace -f` and `top -H` can tell the event loops
        // ("tokio-loop") from the pool ("tokio-pool"), whose waits on a
        // disk are allowed.
        let runtime = Builder::new_multi_thread()
            .thread_name("tokio-pool")
            .on_thread_park(|| ferry_app::net::name_this_thread("tokio-loop"))
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?;
        let served = runtime.block_on(async {
            let listener = ferry_app::net::listen(config.listen)
                .and_then(|listener| {
                    listener.set_nonblocking(true)?;
                    TcpListener::from_std(listener)
                })
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let shutdown = Shutdown::new();
            ferry_app::net::ready(&config, listener.local_addr()?, shutdown.trigger_fn())?;
            server::run(listener, config, shutdown).await?;
            anyhow::Ok(())
        });
        // Dropping a runtime waits for every blocking task to end. Heavy work
        // stops at shutdown between chunks, but a read stuck on a slow disk
        // would not: the grace period is over, so do not wait for it.
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        served
    }

    fn get(remote: &Remote, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        let config = &remote.config;
        client_runtime(config)?.block_on(async {
            let client = Client::new(Connection::connect(remote).await?, config);
            client.get_async(config, plan, report).await
        })
    }

    fn ls(remote: &Remote, request: &Request, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        let config = &remote.config;
        client_runtime(config)?.block_on(async {
            let client = Client::new(Connection::connect(remote).await?, config);
            client.ls_async(config, request, out).await
        })
    }
}

/// A current-thread runtime for one client connection.
fn client_runtime(config: &ClientConfig) -> Result<tokio::runtime::Runtime, ClientError> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ClientError::Io { addr: config.addr.clone(), source })
}
