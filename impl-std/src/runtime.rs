//! Plugs this runtime into the shared command line.

use anyhow::Context;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::WirePath;
use ferry_engine::client::{ClientConfig, ClientError, Outcomes, Session};

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
            ferry_app::net::listen(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let shutdown = Shutdown::new();
        let switch = shutdown.clone();
        ferry_app::signals::on_signals(move || switch.trigger()).context("cannot install signal handlers")?;
        ferry_app::net::announce(listener.local_addr()?);
        server::run(listener, config, shutdown)?;
        Ok(())
    }

    fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        Session::get(&plan.items, plan.verify, config).run(&mut connect(config)?, report).map(drop)
    }

    fn ls(config: &ClientConfig, path: &WirePath, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        Session::list(path, config).run(&mut connect(config)?, out).map(drop)
    }
}

/// A client connected to `config.addr`.
fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
    Ok(Client { connection: Connection::connect(&config.addr, config.timeout)?, timeout: config.timeout })
}
