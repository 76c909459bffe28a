//! The client: connect, check the greeting, pipeline requests, save bodies.
//!
//! `get` keeps up to [`ferry_cli::save::PIPELINE_WINDOW`] files' requests in
//! flight on one connection and reads the answers in order. Errors come in
//! two kinds, and the types say which: a refusal of one file (`ERR`, a
//! digest mismatch) leaves the connection in step and the next file goes
//! on; anything that leaves part of an answer unread ends the connection.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_cli::answers;
use ferry_cli::{ClientConfig, ClientError, Dest, Item, Pipeline, Plan, Progress, Report, SaveError, Stream, Target};
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
            Ok(digest) => report.saved(item, digest.as_ref()),
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
    /// and saves the body; returns the server's digest when verified.
    fn fetch(&mut self, item: &Item, verify: bool) -> Outcome<Option<[u8; 32]>> {
        let len = match answers::get_body(self.answer()?, &item.path, &self.addr)? {
            Ok(len) => len,
            Err(refused) => {
                if verify {
                    self.skip_answer()?;
                }
                return Ok(Err(refused));
            }
        };
        let sink = match open_sink(&item.dest, item.offset) {
            Ok(sink) => sink,
            Err(error) => {
                // The file fails alone; its answers are read and dropped so
                // the connection stays in step for the next one.
                self.discard(len)?;
                if verify {
                    self.skip_answer()?;
                }
                return Ok(Err(error.into()));
            }
        };
        let progress = item.progress(len);
        let received = self.receive(item, sink, len, verify, &progress);
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
            Received::Stream(stream, Some(local)) => {
                digest.as_ref().map_or(Ok(()), |remote| stream.check(&local, remote))
            }
            Received::Stream(_, None) => Ok(()),
            Received::File(target, file) => target.commit(file, digest.as_ref()),
        };
        Ok(committed.map(|()| digest).map_err(ClientError::from))
    }

    /// Receives a body of `len` bytes into `sink`. Bytes streamed to stdout
    /// or a device cannot be read back, so when verifying they are hashed
    /// on the way.
    fn receive<'a>(
        &mut self,
        item: &'a Item,
        mut sink: std::fs::File,
        len: u64,
        verify: bool,
        progress: &Progress,
    ) -> Result<Received<'a>, ClientError> {
        let path = item.path.as_str();
        match &item.dest {
            Dest::Stream(stream) => {
                let mut hasher = verify.then(blake3::Hasher::new);
                let on_chunk = |chunk: &[u8]| {
                    if let Some(hasher) = &mut hasher {
                        hasher.update(chunk);
                    }
                    progress.advance(chunk.len() as u64);
                };
                self.connection
                    .read_body(len, &mut sink, on_chunk, self.timeout)
                    .map_err(|e| e.into_client(path, len, stream.name(), self.timeout))?;
                Ok(Received::Stream(stream, hasher.map(|h| h.finalize())))
            }
            Dest::File(target) => {
                self.connection
                    .read_body(len, &mut sink, |chunk| progress.advance(chunk.len() as u64), self.timeout)
                    .map_err(|e| e.into_client(path, len, &target.part, self.timeout))?;
                Ok(Received::File(target, sink))
            }
        }
    }

    /// Reads and drops a body of `len` bytes.
    fn discard(&mut self, len: u64) -> Result<(), ClientError> {
        self.connection
            .read_body(len, &mut io::sink(), |_| {}, self.timeout)
            .map_err(|e| e.into_client(&self.addr, len, Path::new("nowhere"), self.timeout))
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
enum Received<'a> {
    /// Written to stdout or a device; its digest, when verifying.
    Stream(&'a Stream, Option<blake3::Hash>),
    /// Written to the target's `.part`, still open and locked.
    File(&'a Target, std::fs::File),
}

/// Opens where a body goes: the stream, or the `.part` (locked).
fn open_sink(dest: &Dest, offset: u64) -> Result<std::fs::File, SaveError> {
    match dest {
        Dest::Stream(stream) => stream.open(),
        Dest::File(target) => target.open_part(offset),
    }
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
