//! The two-way chat that ferry grew out of, on async-std (discontinued
//! upstream; `diff` this file with `impl-smol/examples/chat.rs` for the
//! move): the server greets, then client and server take turns, one line
//! each, until one of them says "bye". The smallest honest program on this
//! runtime; the full driver in `src/` makes the same moves with a protocol
//! in between.
//!
//! ```sh
//! cargo run -p ferry-async-std --example chat-async-std -- server 127.0.0.1:7879
//! cargo run -p ferry-async-std --example chat-async-std -- client 127.0.0.1:7879
//! ```
//!
//! Each side types its turns on stdin; the end of stdin says "bye". What
//! the two sides say, and when they stop, is `ferry_app::chat`'s.

use std::net::SocketAddr;

use anyhow::Context;
use async_std::io::{self, BufReader, prelude::*};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use ferry_app::chat::{self, BYE, GREETING, MAX_LINE};

fn main() -> anyhow::Result<()> {
    // The global executor starts on first use; `block_on` waits on it here.
    task::block_on(async {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [role, addr] = args.as_slice() else {
            anyhow::bail!("usage: chat-async-std server|client ADDR (for example 127.0.0.1:7879)");
        };
        let addr: SocketAddr = addr.parse().with_context(|| format!("{addr} is not an address"))?;
        let stream = match role.as_str() {
            "server" => {
                let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
                println!("listening on {}", listener.local_addr()?);
                let (mut stream, peer) = listener.accept().await?;
                println!("{peer} joined");
                stream.write_all(GREETING).await?;
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
    // async-std's stdin reads on its blocking pool.
    let mut stdin = BufReader::new(io::stdin());
    let mut theirs = true;
    loop {
        let mut line = Vec::new();
        if theirs {
            if (&mut peer).take(MAX_LINE).read_until(b'\n', &mut line).await? == 0 {
                println!("the peer left");
                return Ok(());
            }
            println!("{}", chat::shown(&line));
        } else {
            if stdin.read_until(b'\n', &mut line).await? == 0 {
                line = BYE.to_vec();
            }
            to_peer.write_all(&line).await?;
        }
        if chat::is_bye(&line) {
            return Ok(());
        }
        theirs = !theirs;
    }
}
