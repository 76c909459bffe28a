//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-compio`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_cli::conn::LineError;
use ferry_cli::testing::Share;
use ferry_compio::connection::Connection;
use ferry_compio::server::{self, Limits};
use ferry_compio::shutdown::Shutdown;
use ferry_compio::{Compio, Driver};
use ferry_proto::{Answer, parse_answer};

#[test]
fn its_own_client_fetches_from_its_own_server() {
    let share = Share::new();
    let listener = ferry_cli::listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let (config, shutdown) = (share.config(addr), Shutdown::new());
    let serving = shutdown.clone();
    let server = thread::spawn(move || {
        let runtime = Driver::Auto.runtime().expect("a runtime");
        runtime.block_on(async move {
            let listener = compio::net::TcpListener::from_std(listener).expect("adopt");
            let limits = Limits::new(&config);
            server::run(listener, Arc::new(config), limits, serving).await
        })
    });
    share.round_trip::<Compio>(addr);
    shutdown.trigger();
    server.join().expect("the server thread").expect("the server");
}

/// A read that is cancelled (here by a stop that is ready at once) may
/// have completed in the kernel already; its bytes must not be lost with
/// it, so the next read finds the line whole. On both drivers.
#[test]
fn a_cancelled_read_keeps_what_it_received() {
    for driver in [Driver::Auto, Driver::Poll] {
        let runtime = driver.runtime().expect("a runtime");
        runtime.block_on(async {
            let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut peer = TcpStream::connect(addr).expect("connect");
            let mut connection = Connection::new(listener.accept().await.expect("accept").0);
            let far = Instant::now() + Duration::from_secs(5);
            for round in 0..50 {
                peer.write_all(b"OK 12\n").expect("write");
                let mut pending = VecDeque::new();
                // Stopped at once: the read is cancelled as soon as it is
                // submitted, whether or not the kernel completed it first.
                let stopped = connection.read_requests(far, || async {}, &mut pending).await;
                assert!(stopped.is_err() || !pending.is_empty(), "round {round}: stopped without a reason");
                let answer = if pending.is_empty() {
                    connection.read_line(far, parse_answer).await.expect("a whole line")
                } else {
                    // The request parser took the line: it was kept.
                    continue;
                };
                assert_eq!(answer, Answer::Ok { len: 12 }, "round {round}");
            }
        });
    }
}

/// A line that arrives in pieces, with a read cut by its deadline in
/// between, is read whole: each read appends to what is buffered (a
/// completion read fills its buffer from the start unless told where).
#[test]
fn a_line_in_pieces_is_read_whole() {
    for driver in [Driver::Auto, Driver::Poll] {
        let runtime = driver.runtime().expect("a runtime");
        runtime.block_on(async {
            let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let mut peer = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            let mut connection = Connection::new(listener.accept().await.expect("accept").0);
            peer.write_all(b"OK ").expect("write");
            let soon = Instant::now() + Duration::from_millis(50);
            let cut = connection.read_line(soon, parse_answer).await;
            assert!(matches!(cut, Err(LineError::TimedOut)), "the line is not whole yet: {cut:?}");
            peer.write_all(b"12\n").expect("write");
            let far = Instant::now() + Duration::from_secs(5);
            let answer = connection.read_line(far, parse_answer).await;
            assert_eq!(answer.expect("a whole line"), Answer::Ok { len: 12 });
        });
    }
}
