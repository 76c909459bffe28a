//! Plugs this runtime into the shared command line.
//!
//! async-std runs every task on its global executor, a thread a core
//! (`ASYNC_STD_THREAD_COUNT` changes it), started the first time it is
//! needed; `task::block_on` runs the server's accept loop, or a client's
//! one connection, on the calling thread.

use anyhow::Context;
use async_std::net::TcpListener;
use async_std::task;
use ferry_app::dial::Remote;
use ferry_app::link::Client;
use ferry_app::switch::Trigger;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::Request;
use ferry_engine::client::{ClientError, Outcomes};

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
        task::block_on(async {
            let listener = ferry_app::net::listen(config.listen)
                .map(TcpListener::from)
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let shutdown = Shutdown::new();
            ferry_app::net::ready(&config, listener.local_addr()?, shutdown.trigger_fn())?;
            server::run(listener, config, shutdown).await?;
            anyhow::Ok(())
        })
    }

    fn get(remote: &Remote, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        let config = &remote.config;
        task::block_on(async {
            let client = Client::new(Connection::connect(remote).await?, config);
            client.get_async(config, plan, report).await
        })
    }

    fn ls(remote: &Remote, request: &Request, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        let config = &remote.config;
        task::block_on(async {
            let client = Client::new(Connection::connect(remote).await?, config);
            client.ls_async(config, request, out).await
        })
    }
}
