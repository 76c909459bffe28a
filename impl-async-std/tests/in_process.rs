//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-async-std`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::thread;
use std::time::{Duration, Instant};

use async_std::io::WriteExt;
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use ferry_app::link::AsyncLink;
use ferry_app::testing::Share;
use ferry_async_std::AsyncStd;
use ferry_async_std::connection::{Connection, until};
use ferry_async_std::server;
use ferry_async_std::shutdown::Shutdown;
use ferry_engine::frame::LineError;
use ferry_engine::{Answer, parse_answer};

/// Its own client against its own server, plain and over TLS (the client
/// pinning the server's fingerprint, with the token the server requires).
#[test]
fn its_own_client_fetches_from_its_own_server() {
    Share::round_trips::<AsyncStd, _>(Shutdown::new, |listener, config, shutdown| {
        let server = thread::spawn(move || task::block_on(server::run(TcpListener::from(listener), config, shutdown)));
        Box::new(move || server.join().expect("the server thread").expect("the server"))
    });
}

/// A line read that is dropped half-way (by `race` or a timeout) leaves no
/// padding behind, so the next read finds the line whole.
#[test]
fn reading_a_line_is_cancel_safe() {
    task::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut peer = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let mut connection = Connection::new(listener.accept().await.expect("accept").0);
        let far = Instant::now() + Duration::from_secs(5);
        peer.write_all(b"OK ").await.expect("write");
        let cancelled =
            until(Instant::now() + Duration::from_millis(50), connection.read_line(far, parse_answer)).await;
        assert!(cancelled.is_none(), "the line is not whole yet");
        peer.write_all(b"12\n").await.expect("write");
        let answer: Result<Answer, LineError<_>> = connection.read_line(far, parse_answer).await;
        assert_eq!(answer.expect("a whole line"), Answer::Ok { len: 12 });
    });
}
