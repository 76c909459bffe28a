//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-smol`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_app::link::AsyncLink;
use ferry_app::testing::Share;
use ferry_engine::frame::LineError;
use ferry_engine::{Answer, parse_answer};
use ferry_smol::Smol;
use ferry_smol::connection::{Connection, until};
use ferry_smol::server;
use ferry_smol::shutdown::Shutdown;
use smol::io::AsyncWriteExt;
use smol::{Async, Executor};

/// Its own client against its own server, plain and over TLS (the client
/// pinning the server's fingerprint, with the token the server requires).
#[test]
fn its_own_client_fetches_from_its_own_server() {
    Share::round_trips::<Smol, _>(Shutdown::new, |listener, config, shutdown| {
        let listener = Async::new(listener).expect("adopt");
        let server = thread::spawn(move || {
            let executor = Arc::new(Executor::new());
            smol::block_on(executor.run(server::run(&executor, listener, config, shutdown)))
        });
        Box::new(move || server.join().expect("the server thread").expect("the server"))
    });
}

/// A line read that is dropped half-way (by `future::or` or a timer)
/// leaves no padding behind, so the next read finds the line whole.
#[test]
fn reading_a_line_is_cancel_safe() {
    smol::block_on(async {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("addr");
        let mut peer = Async::<TcpStream>::connect(addr).await.expect("connect");
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
