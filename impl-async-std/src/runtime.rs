//! Plugs this runtime into the shared command line.
//!
//! async-std runs every task on its global executor, a thread a core
//! (`ASYNC_STD_THREAD_COUNT` changes it), started the first time it is
//! needed; `task::block_on` runs the server's accept loop, or a client's
//! one connection, on the calling thread.

use anyhow::Context;
use async_std::net::TcpListener;
use async_std::task::block_on;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::WirePath;
use ferry_engine::client::{ClientConfig, ClientError, Outcomes, Session};

use crate::client::Client;
use crate::connection::Connection;
use crate::server;
use crate::shutdown::Shutdown;

/// The async-std implementation of ferry.
#[derive(Debug)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    const NAME: &'static str = "async-std";
    const BINARY: &'static str = "ferry-async-std";
    // A body in flight holds a third: the socket's duplicate that drives
    // `sendfile` (see `Connection::send_body`).
    const DESCRIPTORS_PER_CONNECTION: u64 = 3;

    fn serve(config: ServeConfig) -> anyhow::Result<()> {
        block_on(async {
            let listener = ferry_app::net::listen(config.listen)
                .map(TcpListener::from)
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let shutdown = Shutdown::new();
            let switch = shutdown.clone();
            ferry_app::signals::on_signals(move || switch.trigger()).context("cannot install signal handlers")?;
            ferry_app::net::announce(listener.local_addr()?);
            server::run(listener, config, shutdown).await?;
            anyhow::Ok(())
        })
    }

    fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        block_on(async {
            Session::get(&plan.items, plan.verify, config)
                .run_async(&mut connect(config).await?, report)
                .await
                .map(drop)
        })
    }

    fn ls(config: &ClientConfig, path: &WirePath, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        block_on(async {
            let mut client = connect(config).await?;
            Session::list(path, config).run_async(&mut client, out).await.map(drop)
        })
    }
}

/// A client connected to `config.addr`.
async fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
    Ok(Client { connection: Connection::connect(&config.addr, config.timeout).await?, timeout: config.timeout })
}
