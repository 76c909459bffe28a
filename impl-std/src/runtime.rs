//! Plugs this runtime into the shared command line.

use anyhow::Context;
use ferry_cli::{ClientConfig, ClientError, Plan, Report, Runtime, ServeConfig, Session};
use ferry_proto::{Entry, WirePath};

use crate::client::Client;
use crate::connection::Connection;
use crate::server;
use crate::shutdown::Shutdown;

/// The std implementation of ferry.
#[derive(Debug)]
pub struct Std;

impl Runtime for Std {
    const NAME: &'static str = "std";
    const BINARY: &'static str = "ferry-std";

    fn serve(config: ServeConfig) -> anyhow::Result<()> {
        let listener =
            ferry_cli::listen(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let shutdown = Shutdown::new();
        let switch = shutdown.clone();
        ferry_cli::signals::on_signals(move || switch.trigger()).context("cannot install signal handlers")?;
        ferry_cli::announce(listener.local_addr()?);
        server::run(listener, config, shutdown)?;
        Ok(())
    }

    fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        Session::get(plan, config).run(&mut connect(config)?, report).map(drop)
    }

    fn ls(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError> {
        let listed = Session::list(path, config).run(&mut connect(config)?, &mut Report::new(0));
        listed.map(Session::into_entries)
    }
}

/// A client connected to `config.addr`.
fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
    Ok(Client { connection: Connection::connect(&config.addr, config.timeout)?, timeout: config.timeout })
}
