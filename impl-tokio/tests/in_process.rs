//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-tokio`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::time::Duration;

use ferry_app::link::AsyncLink;
use ferry_app::testing::Share;
use ferry_engine::frame::LineError;
use ferry_engine::{Answer, parse_answer};
use ferry_tokio::Tokio;
use ferry_tokio::connection::Connection;
use ferry_tokio::server;
use ferry_tokio::shutdown::Shutdown;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

use tokio::time::timeout;

/// Its own client against its own server, plain and over TLS (the client
/// pinning the server's fingerprint, with the token the server requires).
#[test]
fn its_own_client_fetches_from_its_own_server() {
    Share::round_trips::<Tokio, _>(Shutdown::new, |listener, config, shutdown| {
        // The client builds its own runtime, on the test's thread, as the
        // binary does; the server has this one.
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        listener.set_nonblocking(true).expect("non-blocking");
        let listener = runtime.block_on(async { tokio::net::TcpListener::from_std(listener) }).expect("adopt");
        let server = runtime.spawn(server::run(listener, config, shutdown));
        Box::new(move || runtime.block_on(server).expect("the server task").expect("the server"))
    });
}

/// A line read that is dropped half-way (by `select!` or a timeout) takes
/// nothing from the buffer, so the next read finds the line whole.
#[tokio::test]
async fn reading_a_line_is_cancel_safe() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut peer = tokio::net::TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let mut connection = Connection::new(listener.accept().await.expect("accept").0);
    let far = Instant::now() + Duration::from_secs(5);
    peer.write_all(b"OK ").await.expect("write");
    let cancelled = timeout(Duration::from_millis(50), connection.read_line(far, parse_answer)).await;
    assert!(cancelled.is_err(), "the line is not whole yet");
    peer.write_all(b"12\n").await.expect("write");
    let answer: Result<Answer, LineError<_>> = connection.read_line(far, parse_answer).await;
    assert_eq!(answer.expect("a whole line"), Answer::Ok { len: 12 });
}
