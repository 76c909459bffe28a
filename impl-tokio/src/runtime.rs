//! Plugs this runtime into the shared command line.
//!
//! The server runs on tokio's multi-threaded runtime, one worker a core; a
//! client has one connection to drive, so it runs on a current-thread
//! runtime and spends no threads it cannot use.

use anyhow::Context;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::WirePath;
use ferry_engine::client::{ClientConfig, ClientError, Outcomes, Session};
use tokio::net::TcpListener;
use tokio::runtime::Builder;

use crate::client::Client;
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
            let switch = shutdown.clone();
            ferry_app::signals::on_signals(move || switch.trigger()).context("cannot install signal handlers")?;
            ferry_app::net::announce(listener.local_addr()?);
            server::run(listener, config, shutdown).await?;
            anyhow::Ok(())
        });
        // Dropping a runtime waits for every blocking task to end. Heavy work
        // stops at shutdown between chunks, but a read stuck on a slow disk
        // would not: the grace period is over, so do not wait for it.
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        served
    }

    fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        client_runtime(config)?.block_on(async {
            Session::get(&plan.items, plan.verify, config)
                .run_async(&mut connect(config).await?, report)
                .await
                .map(drop)
        })
    }

    fn ls(config: &ClientConfig, path: &WirePath, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        client_runtime(config)?.block_on(async {
            let mut client = connect(config).await?;
            Session::list(path, config).run_async(&mut client, out).await.map(drop)
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

/// A client connected to `config.addr`.
async fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
    Ok(Client { connection: Connection::connect(&config.addr, config.timeout).await?, timeout: config.timeout })
}
