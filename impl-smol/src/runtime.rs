//! Plugs this runtime into the shared command line.
//!
//! The server runs on an `Executor` driven by one thread a core, the way
//! smol's documentation builds a multi-threaded runtime: smol has no
//! runtime object, just an executor and threads that run it. A client has
//! one connection to drive, so it runs on the calling thread with
//! `block_on`.

use std::sync::Arc;
use std::thread;

use anyhow::Context;
use ferry_app::dial::Remote;
use ferry_app::link::Client;
use ferry_app::switch::Trigger;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::Request;
use ferry_engine::client::{ClientError, Outcomes};

use smol::{Async, Executor, block_on};

use crate::connection::Connection;
use crate::server;
use crate::shutdown::Shutdown;

/// The smol implementation of ferry.
#[derive(Debug)]
pub struct Smol;

impl Runtime for Smol {
    const NAME: &'static str = "smol";
    const BINARY: &'static str = "ferry-smol";

    fn serve(config: ServeConfig) -> anyhow::Result<()> {
        let executor = Arc::new(Executor::new());
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        let (stop, stopped) = smol::channel::unbounded::<()>();
        thread::scope(|scope| {
            // Every thread but this one runs tasks until `stop` is dropped.
            for n in 1..threads {
                let (executor, stopped) = (Arc::clone(&executor), stopped.clone());
                thread::Builder::new()
                    .name(format!("smol-loop-{n}"))
                    .spawn_scoped(scope, move || block_on(executor.run(stopped.recv())))
                    .context("cannot start an executor thread")?;
            }
            let served = block_on(executor.run(async {
                let listener = ferry_app::net::listen(config.listen)
                    .and_then(Async::new)
                    .with_context(|| format!("cannot listen on {}", config.listen))?;
                let shutdown = Shutdown::new();
                ferry_app::net::ready(&config, listener.get_ref().local_addr()?, shutdown.trigger_fn())?;
                server::run(&executor, listener, config, shutdown).await?;
                anyhow::Ok(())
            }));
            drop(stop);
            served
        })
    }

    fn get(remote: &Remote, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        let config = &remote.config;
        block_on(async {
            let connection = Connection::connect(remote).await?;
            Client::new(connection, config).get_async(config, plan, report).await
        })
    }

    fn ls(remote: &Remote, request: &Request, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        let config = &remote.config;
        block_on(async {
            let connection = Connection::connect(remote).await?;
            Client::new(connection, config).ls_async(config, request, out).await
        })
    }
}
