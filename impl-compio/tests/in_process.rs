//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-compio`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_app::link::{AsyncLink, AsyncSave};
use ferry_app::testing::Share;
use ferry_compio::connection::Connection;
use ferry_compio::server::{self, Limits};
use ferry_compio::shutdown::Shutdown;
use ferry_compio::{Compio, Driver};
use ferry_engine::{Answer, parse_answer};

/// Its own client against its own server, plain and over TLS (the client
/// pinning the server's fingerprint, with the token the server requires).
#[test]
fn its_own_client_fetches_from_its_own_server() {
    Share::round_trips::<Compio, _>(Shutdown::new, |listener, config, shutdown| {
        let server = thread::spawn(move || {
            let runtime = Driver::Auto.runtime().expect("a runtime");
            runtime.block_on(async move {
                let listener = compio::net::TcpListener::from_std(listener).expect("adopt");
                let limits = Limits::new(&config);
                server::run(listener, Arc::new(config), limits, shutdown).await
            })
        });
        Box::new(move || server.join().expect("the server thread").expect("the server"))
    });
}

/// A line that arrives in pieces, the second while a read waits for it, is
/// read whole: each read adds to what is buffered. (A completion read
/// fills the buffer it is given from its start; one that overwrote the
/// first piece fails here. A read cut by a deadline is another matter: io_uring
/// may still complete it, so a cut ends the connection.)
#[test]
fn a_line_in_pieces_is_read_whole() {
    for driver in [Driver::Auto, Driver::Poll] {
        let runtime = driver.runtime().expect("a runtime");
        runtime.block_on(async {
            let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let mut peer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            let mut connection = Connection::new(listener.accept().await.expect("accept").0);
            peer.write_all(b"OK ").expect("write");
            let later = thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                peer.write_all(b"12\n").expect("write");
                peer
            });
            let far = Instant::now() + Duration::from_secs(5);
            let answer = connection.read_line(far, parse_answer).await;
            assert_eq!(answer.expect("a whole line"), Answer::Ok { len: 12 }, "{driver:?}");
            later.join().expect("the peer");
        });
    }
}

/// A body that arrives slowly, in pieces, across many pace checks (each a
/// deadline that passes while a read is in flight) arrives whole and in
/// order: the check waits beside the read instead of cutting it.
#[test]
fn a_slow_body_survives_its_pace_checks() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for driver in [Driver::Auto, Driver::Poll] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sent = body.clone();
        let server = thread::spawn(move || {
            let (mut peer, _) = listener.accept().expect("accept");
            for piece in sent.chunks(10_000) {
                peer.write_all(piece).expect("write");
                thread::sleep(Duration::from_millis(15));
            }
        });
        let runtime = driver.runtime().expect("a runtime");
        let received = runtime.block_on(async {
            let stream = compio::net::TcpStream::connect(addr).await.expect("connect");
            let mut connection = Connection::new(stream);
            // Pace windows of 40 ms, pieces every 15 ms: each window brings
            // bytes, and most end while a read waits.
            let mut received = Vec::new();
            let pace = Duration::from_millis(40);
            let read = connection.read_body(body.len() as u64, pace, |piece: &[u8]| received.extend_from_slice(piece));
            read.await.map(|()| received)
        });
        server.join().expect("the server");
        assert!(received.expect("the body") == body, "{driver:?}: the body differs");
    }
}
