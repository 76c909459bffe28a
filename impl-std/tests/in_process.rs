//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-std`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::thread;

use ferry_app::switch::Trigger;
use ferry_app::testing::Share;
use ferry_std::Std;
use ferry_std::server;
use ferry_std::shutdown::Shutdown;

#[test]
fn its_own_client_fetches_from_its_own_server() {
    round_trip_on_its_own_server(false);
}

/// Over TLS, the client pinning the server's fingerprint, with the token
/// the server requires.
#[test]
fn its_own_client_fetches_over_tls_with_a_token() {
    round_trip_on_its_own_server(true);
}

fn round_trip_on_its_own_server(secured: bool) {
    let share = Share::new();
    let listener = ferry_app::net::listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let (config, shutdown) = (if secured { share.secured(addr) } else { share.config(addr) }, Shutdown::new());
    let pin = config.tls.as_ref().map(|tls| tls.fingerprint().to_owned());
    let serving = shutdown.clone();
    let server = thread::spawn(move || server::run(listener, config, serving));
    share.round_trip_either::<Std>(addr, pin.as_deref());
    shutdown.trigger();
    server.join().expect("the server thread").expect("the server");
}
