//! This implementation alone, in process: its own server on port 0 and its
//! own client against it, in seconds (`cargo test -p ferry-std`). The
//! black-box matrix in `conformance/` holds it to everything else.

use std::thread;

use ferry_app::testing::Share;
use ferry_std::Std;
use ferry_std::server;
use ferry_std::shutdown::Shutdown;

/// Its own client against its own server, plain and over TLS (the client
/// pinning the server's fingerprint, with the token the server requires).
#[test]
fn its_own_client_fetches_from_its_own_server() {
    Share::round_trips::<Std, _>(Shutdown::new, |listener, config, shutdown| {
        let server = thread::spawn(move || server::run(listener, config, shutdown));
        Box::new(move || server.join().expect("the server thread").expect("the server"))
    });
}
