//! The client: connect, check the greeting, pipeline requests, save bodies.
//!
//! `get` keeps up to [`ferry_cli::save::PIPELINE_WINDOW`] files' requests in
//! flight on one connection and reads the answers in order. Errors come in
//! two kinds, and the types say which: a refusal of one file (`ERR`, a
//! digest mismatch) leaves the connection in step and the next file goes
//! on; anything that leaves part of an answer unread ends the connection.
//!
//! Files are written through `smol::Unblock`, which hands the blocking
//! writes to a thread pool and keeps the task async; opening the `.part`,
//! syncing and renaming it go to `smol::unblock`.

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_cli::answers;
use ferry_cli::{ClientConfig, ClientError, Dest, Item, Pipeline, Plan, Progress, Report, SaveError, Stream, Target};
use ferry_proto::{Answer, Entry, Greeting, Request, WirePath};
use smol::io::AsyncWriteExt;
use smol::{Async, Unblock, unblock};

use crate::connection::{Connection, until};

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
pub async fn get(config: &ClientConfig, plan: &Plan, report: &mut Report) -> Result<(), ClientError> {
    let mut client = Client::connect(config).await?;
    let mut pipeline = Pipeline::new();
    client.send(&pipeline.refill(plan, 0)).await?;
    for (done, item) in plan.items.iter().enumerate() {
        match client.fetch(item, plan.verify).await? {
            Ok(digest) => report.saved(item, digest.as_ref()),
            Err(error) => report.failed(&error),
        }
        client.send(&pipeline.refill(plan, done + 1)).await?;
    }
    client.finish().await;
    Ok(())
}

/// Lists a directory on the server.
pub async fn list(config: &ClientConfig, path: &WirePath) -> Result<Vec<Entry>, ClientError> {
    let mut client = Client::connect(config).await?;
    let mut requests = Vec::new();
    Request::List { path: path.clone() }.encode(&mut requests);
    Request::Quit.encode(&mut requests);
    client.send(&requests).await?;
    let len = answers::list_body(client.answer().await?, path, &client.addr)?;
    let body = client.small_body(len).await?;
    let entries = answers::listing(&body, &client.addr)?;
    client.finish().await;
    Ok(entries)
}

impl Client {
    /// Connects to `config.addr` and reads the greeting.
    pub async fn connect(config: &ClientConfig) -> Result<Client, ClientError> {
        let addr = config.addr.clone();
        let stream = connect_stream(&addr, config.timeout).await?;
        // Requests are written whole; do not hold them back.
        stream.get_ref().set_nodelay(true).map_err(|source| ClientError::Io { addr: addr.clone(), source })?;
        let mut connection = Connection::new(stream);
        let greeting = connection
            .read_greeting(Instant::now() + config.timeout)
            .await
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
    async fn send(&mut self, requests: &[u8]) -> Result<(), ClientError> {
        if requests.is_empty() {
            return Ok(());
        }
        let written = until(Instant::now() + self.timeout, self.connection.write_all(requests))
            .await
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "the server stopped reading")));
        written.map_err(|e| ClientError::io(&self.addr, self.timeout, e))
    }

    /// Reads the next answer header.
    async fn answer(&mut self) -> Result<Answer, ClientError> {
        self.connection
            .read_answer(Instant::now() + self.timeout)
            .await
            .map_err(|e| e.into_client(&self.addr, self.timeout))
    }

    /// Reads the answers for one item (its GET, and its SUM when verifying)
    /// and saves the body; returns the server's digest when verified.
    async fn fetch(&mut self, item: &Item, verify: bool) -> Outcome<Option<[u8; 32]>> {
        let len = match answers::get_body(self.answer().await?, &item.path, &self.addr)? {
            Ok(len) => len,
            Err(refused) => {
                if verify {
                    self.skip_answer().await?;
                }
                return Ok(Err(refused));
            }
        };
        let sink = match open_sink(&item.dest, item.offset).await {
            Ok(sink) => sink,
            Err(error) => {
                // The file fails alone; its answers are read and dropped so
                // the connection stays in step for the next one.
                self.discard(len).await?;
                if verify {
                    self.skip_answer().await?;
                }
                return Ok(Err(error.into()));
            }
        };
        let progress = item.progress(len);
        let received = self.receive(item, sink, len, verify, &progress).await;
        if received.is_err() {
            progress.abandon();
        }
        let received = received?;
        progress.finish();
        let digest = if verify {
            match self.digest(item).await? {
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
            Received::File(target, file) => {
                let (committing, file) = (target.clone(), file.into_inner().await);
                unblock(move || committing.commit(file, digest.as_ref())).await
            }
        };
        Ok(committed.map(|()| digest).map_err(ClientError::from))
    }

    /// Receives a body of `len` bytes into `sink`. Bytes streamed to stdout
    /// or a device cannot be read back, so when verifying they are hashed
    /// on the way.
    async fn receive<'a>(
        &mut self,
        item: &'a Item,
        mut sink: Unblock<std::fs::File>,
        len: u64,
        verify: bool,
        progress: &Progress,
    ) -> Result<Received<'a>, ClientError> {
        let path = item.path.as_str();
        let mut hasher = (verify && matches!(item.dest, Dest::Stream(_))).then(blake3::Hasher::new);
        let on_chunk = |chunk: &[u8]| {
            if let Some(hasher) = &mut hasher {
                hasher.update(chunk);
            }
            progress.advance(chunk.len() as u64);
        };
        let read = self.connection.read_body(len, &mut sink, on_chunk, self.timeout).await;
        // Waits for writes still in flight on the blocking pool, even when
        // the body was cut short: every byte that arrived belongs in the
        // .part, which `--continue` resumes from its length.
        let flushed = sink.flush().await;
        match &item.dest {
            Dest::Stream(stream) => {
                read.map_err(|e| e.into_client(path, len, stream.name(), self.timeout))?;
                flushed.map_err(|e| SaveError::io(stream.name(), e))?;
                Ok(Received::Stream(stream, hasher.map(|h| h.finalize())))
            }
            Dest::File(target) => {
                read.map_err(|e| e.into_client(path, len, &target.part, self.timeout))?;
                flushed.map_err(|e| SaveError::io(&target.part, e))?;
                Ok(Received::File(target, sink))
            }
        }
    }

    /// Reads and drops a body of `len` bytes.
    async fn discard(&mut self, len: u64) -> Result<(), ClientError> {
        self.connection
            .read_body(len, &mut smol::io::sink(), |_| {}, self.timeout)
            .await
            .map_err(|e| e.into_client(&self.addr, len, Path::new("nowhere"), self.timeout))
    }

    /// Reads the answer to a SUM.
    async fn digest(&mut self, item: &Item) -> Outcome<[u8; 32]> {
        let len = match answers::sum_body(self.answer().await?, &item.path, &self.addr)? {
            Ok(len) => len,
            Err(refused) => return Ok(Err(refused)),
        };
        let body = self.small_body(len).await?;
        answers::digest(&body, &self.addr).map(Ok)
    }

    /// Reads and drops one answer, to stay in step after a refused GET.
    async fn skip_answer(&mut self) -> Result<(), ClientError> {
        let len = answers::skipped_body(&self.answer().await?);
        self.small_body(len).await?;
        Ok(())
    }

    /// Reads a body that belongs in memory (LIST, SUM), bounded in size.
    async fn small_body(&mut self, len: u64) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::with_capacity(answers::small_body(len, &self.addr)?);
        self.connection
            .read_body(len, &mut body, |_| {}, self.timeout)
            .await
            .map_err(|e| e.into_client(&self.addr, len, Path::new("memory"), self.timeout))?;
        Ok(body)
    }

    /// Reads the BYE that answers QUIT. Every file is already saved or
    /// reported, so a server that closes without it costs nothing.
    async fn finish(mut self) {
        if let Err(error) = self.answer().await {
            tracing::debug!(%error, "no BYE");
        }
    }
}

/// A body that arrived whole, before it is committed.
enum Received<'a> {
    /// Written to stdout or a device; its digest, when verifying.
    Stream(&'a Stream, Option<blake3::Hash>),
    /// Written to the target's `.part`, still open and locked.
    File(&'a Target, Unblock<std::fs::File>),
}

/// Opens where a body goes, the stream or the `.part` (locked), on the
/// blocking pool: opening a FIFO waits for its reader.
async fn open_sink(dest: &Dest, offset: u64) -> Result<Unblock<std::fs::File>, SaveError> {
    let file = match dest {
        Dest::Stream(stream) => {
            let stream = stream.clone();
            unblock(move || stream.open()).await
        }
        Dest::File(target) => {
            let target = target.clone();
            unblock(move || target.open_part(offset)).await
        }
    };
    Ok(Unblock::new(file?))
}

/// Connects to the first address `addr` resolves to that accepts.
async fn connect_stream(addr: &str, limit: Duration) -> Result<Async<TcpStream>, ClientError> {
    let fail = |source| ClientError::Connect { addr: addr.to_owned(), source };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for resolved in smol::net::resolve(addr).await.map_err(fail)? {
        match until(Instant::now() + limit, Async::<TcpStream>::connect(resolved)).await {
            Some(Ok(stream)) => return Ok(stream),
            Some(Err(error)) => last = error,
            None => last = io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"),
        }
    }
    Err(fail(last))
}
