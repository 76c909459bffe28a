//! The client: connect, check the greeting, pipeline requests, save bodies.
//!
//! `get` keeps up to [`ferry_cli::save::PIPELINE_WINDOW`] files' requests in
//! flight on one connection and reads the answers in order. Errors come in
//! two kinds, and the types say which: a refusal of one file (`ERR`, a
//! digest mismatch) leaves the connection in step and the next file goes
//! on; anything that leaves part of an answer unread ends the connection.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_cli::answers;
use ferry_cli::save::check_stdout;
use ferry_cli::{ClientConfig, ClientError, Dest, Item, Pipeline, Plan, Progress, Report, SaveError};
use ferry_proto::{Answer, Entry, Greeting, Request, WirePath};

use crate::connection::Connection;

/// A connection to a FERRY/1 server that has greeted us.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
    addr: String,
    timeout: Duration,
}

/// A file's outcome: `Err` inside for that file alone, outside for the
/// whole connection.
type Outcome<T> = Result<Result<T, ClientError>, ClientError>;

/// Fetches every item of `plan` over one connection.
pub fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
    let mut client = Client::connect(config)?;
    let mut pipeline = Pipeline::new();
    client.send(&pipeline.refill(plan, 0))?;
    for (done, item) in plan.items.iter().enumerate() {
        match client.fetch(item, plan.verify)? {
            Ok(()) => report.saved(),
            Err(error) => report.failed(&error),
        }
        client.send(&pipeline.refill(plan, done + 1))?;
    }
    client.finish();
    Ok(())
}

/// Lists a directory on the server.
pub fn list(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError> {
    let mut client = Client::connect(config)?;
    let mut requests = Vec::new();
    Request::List { path: path.clone() }.encode(&mut requests);
    Request::Quit.encode(&mut requests);
    client.send(&requests)?;
    let len = answers::list_body(client.answer()?, path, &client.addr)?;
    let body = client.small_body(len)?;
    let entries = answers::listing(&body, &client.addr)?;
    client.finish();
    Ok(entries)
}

impl Client {
    /// Connects to `config.addr` and reads the greeting.
    pub fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let addr = config.addr.clone();
        let stream = connect_stream(&addr, config.timeout)?;
        // Requests are written whole; do not hold them back.
        stream.set_nodelay(true).map_err(|source| ClientError::Io { addr: addr.clone(), source })?;
        let mut connection = Connection::new(stream);
        let greeting = connection
            .read_greeting(Instant::now() + config.timeout)
            .map_err(|e| e.into_client(&addr, config.timeout))?;
        match greeting {
            Greeting::Ferry { implementation } => {
                tracing::debug!(%addr, %implementation, "connected");
                Ok(Client { connection, addr, timeout: config.timeout })
            }
            Greeting::Busy { message } => Err(ClientError::Busy { addr, message }),
        }
    }

    /// Writes request lines.
    fn send(&mut self, requests: &[u8]) -> Result<(), ClientError> {
        if requests.is_empty() {
            return Ok(());
        }
        self.connection.write_all(requests).map_err(|e| ClientError::io(&self.addr, self.timeout, e))
    }

    /// Reads the next answer header.
    fn answer(&mut self) -> Result<Answer, ClientError> {
        self.connection.read_answer(Instant::now() + self.timeout).map_err(|e| e.into_client(&self.addr, self.timeout))
    }

    /// Reads the answers for one item (its GET, and its SUM when verifying)
    /// and saves the body.
    fn fetch(&mut self, item: &Item, verify: bool) -> Outcome<()> {
        let path = item.path.as_str();
        let len = match answers::get_body(self.answer()?, &item.path, &self.addr)? {
            Ok(len) => len,
            Err(refused) => {
                if verify {
                    self.skip_answer()?;
                }
                return Ok(Err(refused));
            }
        };
        let progress = Progress::new(path, item.offset + len, item.offset);
        let received = self.receive(item, len, verify, &progress);
        if received.is_err() {
            progress.abandon();
        }
        let received = received?;
        progress.finish();
        let digest = if verify {
            match self.digest(item)? {
                Ok(digest) => Some(digest),
                Err(error) => return Ok(Err(error)),
            }
        } else {
            None
        };
        let committed = match received {
            Received::Stdout(local) => match (local, digest) {
                (Some(local), Some(remote)) => check_stdout(&local, &remote),
                _ => Ok(()),
            },
            Received::File(file) => match &item.dest {
                Dest::File(target) => target.commit(file, digest.as_ref()),
                Dest::Stdout => unreachable!("a file was received for stdout"),
            },
        };
        Ok(committed.map_err(ClientError::from))
    }

    /// Receives a body of `len` bytes where `item` says it goes. Bytes sent
    /// to stdout cannot be read back, so when verifying they are hashed on
    /// the way.
    fn receive(&mut self, item: &Item, len: u64, verify: bool, progress: &Progress) -> Result<Received, ClientError> {
        let path = item.path.as_str();
        match &item.dest {
            Dest::Stdout => {
                let mut hasher = verify.then(blake3::Hasher::new);
                let mut out = io::stdout().lock();
                let on_chunk = |chunk: &[u8]| {
                    if let Some(hasher) = &mut hasher {
                        hasher.update(chunk);
                    }
                    progress.advance(chunk.len() as u64);
                };
                self.connection
                    .read_body(len, &mut out, on_chunk, self.timeout)
                    .map_err(|e| e.into_client(path, len, Path::new("stdout"), self.timeout))?;
                out.flush().map_err(|e| SaveError::io("stdout", e))?;
                Ok(Received::Stdout(hasher.map(|h| h.finalize())))
            }
            Dest::File(target) => {
                let mut file = target.open_part(item.offset)?;
                self.connection
                    .read_body(len, &mut file, |chunk| progress.advance(chunk.len() as u64), self.timeout)
                    .map_err(|e| e.into_client(path, len, &target.part, self.timeout))?;
                Ok(Received::File(file))
            }
        }
    }

    /// Reads the answer to a SUM.
    fn digest(&mut self, item: &Item) -> Outcome<[u8; 32]> {
        let len = match answers::sum_body(self.answer()?, &item.path, &self.addr)? {
            Ok(len) => len,
            Err(refused) => return Ok(Err(refused)),
        };
        let body = self.small_body(len)?;
        answers::digest(&body, &self.addr).map(Ok)
    }

    /// Reads and drops one answer, to stay in step after a refused GET.
    fn skip_answer(&mut self) -> Result<(), ClientError> {
        let len = answers::skipped_body(&self.answer()?);
        self.small_body(len)?;
        Ok(())
    }

    /// Reads a body that belongs in memory (LIST, SUM), bounded in size.
    fn small_body(&mut self, len: u64) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::with_capacity(answers::small_body(len, &self.addr)?);
        self.connection
            .read_body(len, &mut body, |_| {}, self.timeout)
            .map_err(|e| e.into_client(&self.addr, len, Path::new("memory"), self.timeout))?;
        Ok(body)
    }

    /// Reads the BYE that answers QUIT. Every file is already saved or
    /// reported, so a server that closes without it costs nothing.
    fn finish(mut self) {
        if let Err(error) = self.answer() {
            tracing::debug!(%error, "no BYE");
        }
    }
}

/// A body that arrived whole, before it is committed.
enum Received {
    /// Written to stdout; its digest, when verifying.
    Stdout(Option<blake3::Hash>),
    /// Written to the `.part`, still open.
    File(std::fs::File),
}

/// Connects to the first address `addr` resolves to that accepts.
fn connect_stream(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let fail = |source| ClientError::Connect { addr: addr.to_owned(), source };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for resolved in addr.to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&resolved, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(fail(last))
}
