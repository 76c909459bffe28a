//! The two-way chat that ferry grew out of, on compio: the server greets,
//! then client and server take turns, one line each, until one of them
//! says "bye". The smallest honest program on this runtime; the full driver
//! in `src/` makes the same moves with a protocol in between.
//!
//! ```sh
//! cargo run -p ferry-compio --example chat-compio -- server 127.0.0.1:7879
//! cargo run -p ferry-compio --example chat-compio -- client 127.0.0.1:7879
//! ```
//!
//! Each side types its turns on stdin; the end of stdin says "bye". What
//! the two sides say, and when they stop, is `ferry_app::chat`'s.

use std::net::SocketAddr;

use anyhow::Context;
use compio::io::{AsyncBufRead, AsyncWriteExt, BufReader};
use compio::net::{TcpListener, TcpStream};
use ferry_app::chat::{self, BYE, GREETING, MAX_LINE};

fn main() -> anyhow::Result<()> {
    // A runtime is built and driven on this thread: compio has no global
    // one, and a chat needs one thread.
    compio::runtime::Runtime::new()?.block_on(async {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [role, addr] = args.as_slice() else {
            anyhow::bail!("usage: chat-compio server|client ADDR (for example 127.0.0.1:7879)");
        };
        let addr: SocketAddr = addr.parse().with_context(|| format!("{addr} is not an address"))?;
        let stream = match role.as_str() {
            "server" => {
                let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
                println!("listening on {}", listener.local_addr()?);
                let (stream, peer) = listener.accept().await?;
                println!("{peer} joined");
                // The write owns its buffer until the kernel is done with
                // it, and hands it back with the result.
                (&stream).write_all(GREETING).await.0?;
                stream
            }
            "client" => TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?,
            _ => anyhow::bail!("{role}: say server or client"),
        };
        talk(stream).await
    })
}

/// Turns, starting with the peer's: the server has just greeted, and the
/// client's first turn is to read that greeting.
async fn talk(stream: TcpStream) -> anyhow::Result<()> {
    // `&TcpStream` reads and writes too: no split, no clone.
    let mut peer = BufReader::new(&stream);
    let mut to_peer = &stream;
    let mut theirs = true;
    loop {
        let mut line = Vec::new();
        if theirs {
            // compio's readers have no `read_until`: take from the buffer
            // that `fill_buf` lends up to a newline, and `consume` it.
            while !line.ends_with(b"\n") && (line.len() as u64) < MAX_LINE {
                let buffered = peer.fill_buf().await?;
                if buffered.is_empty() {
                    break;
                }
                let room = usize::try_from(MAX_LINE).unwrap_or(usize::MAX) - line.len();
                let end = buffered.iter().position(|&b| b == b'\n').map_or(buffered.len(), |at| at + 1).min(room);
                line.extend_from_slice(&buffered[..end]);
                peer.consume(end);
            }
            if line.is_empty() {
                println!("the peer left");
                return Ok(());
            }
            println!("{}", chat::shown(&line));
        } else {
            // std's stdin blocks; compio's blocking pool reads it.
            let typed = compio::runtime::spawn_blocking(|| {
                let mut typed = String::new();
                std::io::stdin().read_line(&mut typed).map(|_| typed)
            });
            line = typed.await.map_err(|_| anyhow::anyhow!("reading stdin failed"))??.into_bytes();
            if line.is_empty() {
                line = BYE.to_vec();
            }
            let (written, back) = to_peer.write_all(line).await.into();
            written?;
            line = back;
        }
        if chat::is_bye(&line) {
            return Ok(());
        }
        theirs = !theirs;
    }
}
