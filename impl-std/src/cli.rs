//! Plugs this runtime into the shared command line.

use anyhow::Context;
use ferry_cli::{ClientConfig, ClientError, Plan, Report, Runtime, ServeConfig};
use ferry_proto::{Entry, WirePath};

use crate::shutdown::Shutdown;
use crate::{client, server};

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
        shutdown.on_signals().context("cannot install signal handlers")?;
        ferry_cli::announce(listener.local_addr()?);
        server::run(listener, config, shutdown)?;
        Ok(())
    }

    fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
        client::get(config, plan, report)
    }

    fn ls(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError> {
        client::list(config, path)
    }
}
