//! `ferry-load` counts what it is asked to count: a fixed number of
//! requests over a few connections comes back as exactly that many
//! answers and bytes, with no errors; it takes the server as ferry's
//! clients do (`HOST[:PORT]`); and a file the server refuses ends the run
//! before it starts, saying why, instead of timing refusals.

use ferry_conformance::implementation::{Implementation, Launch};
use ferry_conformance::process::Server;

fn run(addr: &str, path: &str) -> std::process::Output {
    assert_cmd::Command::cargo_bin("ferry-load")
        .expect("ferry-load is built")
        .args([addr, path, "-c", "3", "-n", "7", "--depth", "2", "--json"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("ferry-load runs")
}

fn field(json: &str, name: &str) -> u64 {
    let start = json.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("no {name} in {json}")) + name.len() + 3;
    json[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number")
}

#[test]
fn counts_requests_bytes_and_refusals() {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("five.bin"), b"12345").expect("file");
    let std = Implementation::workspace("std", "ferry-std").expect("ferry-std builds");
    let Some(launch @ Launch::Ferry(_)) = &std.server else { unreachable!() };
    let server = Server::start(launch, root.path(), &[]).expect("server starts");
    let addr = server.addr.to_string();

    let output = run(&addr, "five.bin");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = String::from_utf8_lossy(&output.stdout);
    assert_eq!(field(&json, "requests"), 21);
    assert_eq!(field(&json, "bytes"), 105);
    assert_eq!(field(&json, "refused") + field(&json, "failed"), 0);

    let by_name = format!("localhost:{}", server.addr.port());
    let output = run(&by_name, "five.bin");
    assert!(output.status.success(), "HOST:PORT: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(field(&String::from_utf8_lossy(&output.stdout), "requests"), 21);

    let output = run(&addr, "missing");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERR NOT_FOUND") && stderr.contains("nothing to measure"), "{stderr}");
    assert!(output.stdout.is_empty(), "no results for a run that did not happen");
}

/// A keep-alive HTTP/1.1 server of one file, `/five.bin`, on loopback;
/// anything else is a 404 with a body. For as many connections as come.
fn http_server() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        line.clear();
                    }
                    let answer: &[u8] = if request.starts_with("GET /five.bin HTTP/1.1") {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n12345"
                    } else {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
                    };
                    if stream.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn speaks_http_with_the_same_counts() {
    let addr = http_server();
    let output = assert_cmd::Command::cargo_bin("ferry-load")
        .expect("ferry-load is built")
        .args([&addr, "five.bin", "-c", "3", "-n", "7", "--depth", "2", "--json", "--http"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("ferry-load runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = String::from_utf8_lossy(&output.stdout);
    assert_eq!(field(&json, "requests"), 21, "{json}");
    assert_eq!(field(&json, "bytes"), 105, "{json}");
    assert!(json.contains(r#""protocol":"HTTP/1.1""#), "{json}");

    let output = assert_cmd::Command::cargo_bin("ferry-load")
        .expect("ferry-load is built")
        .args([&addr, "missing", "--http", "-d", "1"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("ferry-load runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"), "the server's answer is said");
}
