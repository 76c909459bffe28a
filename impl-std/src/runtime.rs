//! Plugs this runtime into the shared command line.

use anyhow::Context;
use ferry_app::dial::Remote;
use ferry_app::link::Client;
use ferry_app::switch::Trigger;
use ferry_app::{Item, Plan, Report, Runtime, ServeConfig};
use ferry_engine::Request;
use ferry_engine::client::{ClientError, Outcomes};

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
        ferry_app::net::ready(&config, listener.local_addr()?, shutdown.trigger_fn())?;
        server::run(listener, config, shutdown)?;
        Ok(())
    }

    fn get(remote: &Remote, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        let config = &remote.config;
        Client::new(Connection::connect(remote)?, config).get(config, plan, report)
    }

    fn ls(remote: &Remote, request: &Request, out: &mut impl Outcomes<Item>) -> Result<(), ClientError> {
        let config = &remote.config;
        Client::new(Connection::connect(remote)?, config).ls(config, request, out)
    }
}
