//! TLS and access-token cases (SPEC.md §8, and `AUTH` in §2): a server
//! started with `--tls` and `--token-file`, spoken to by the suite's own
//! TLS client; and ferry's client against such a server, pinned, trusting
//! a remembered fingerprint, or refusing what it must.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use super::{ClientContext, ServerContext, ensure};
use crate::Check;
use crate::implementation::ClientLaunch;
use crate::process::token_file;
use crate::tls::{Offer, TOKEN, client};
use crate::wire::{Header, WAIT, Wire, same_bytes};

/// A file every case fetches: small, and in every fixture.
const FILE: &str = "eight-k.bin";

/// How long a server must wait before it refuses a token: SPEC.md says
/// about a second; less than this is a server that lets guessers hurry.
const PENALTY_AT_LEAST: Duration = Duration::from_millis(800);

/// How soon a mismatch (plain against TLS, a missing token) must be said:
/// SPEC.md's second and a half for a greeting, or its second for a token,
/// with room for a loaded machine; far below [`WAIT`], which a client
/// that waits out its whole timeout would reach.
const SAID_WITHIN: Duration = Duration::from_secs(6);

fn token_option() -> Result<String, String> {
    token_file().map(|file| file.display().to_string())
}

/// A TLS server of the implementation under test, with its fingerprint.
fn tls_server(context: &ServerContext<'_>, extra: &[&str]) -> Result<(crate::process::Server, String), String> {
    let mut options = vec!["--tls"];
    options.extend_from_slice(extra);
    let server = context.start(&options)?;
    let fingerprint = server.fingerprint.clone().ok_or("no fingerprint line")?;
    Ok((server, fingerprint))
}

/// A greeted TLS connection that offers what a FERRY/1 client does.
fn tls_wire(context: &ServerContext<'_>, addr: std::net::SocketAddr, pin: &str) -> Result<Wire, String> {
    let (wire, name) = Wire::tls_greeted(addr, client(pin, Offer::Ferry)?)?;
    match &context.implementation.greets_as {
        Some(expected) if name != *expected => Err(format!("greeting names {name:?}, expected {expected:?}")),
        _ => Ok(wire),
    }
}

pub(super) fn tls_get(context: &ServerContext<'_>) -> Check {
    let (server, pin) = tls_server(context, &[])?;
    let mut wire = tls_wire(context, server.addr, &pin)?;
    wire.send(format!("GET {FILE}\nQUIT\n").as_bytes())?;
    same_bytes(FILE, &wire.ok_body()?, context.fixture.bytes(FILE))?;
    ensure(wire.header()? == Header::Bye, || "QUIT was not answered BYE".into())?;
    wire.expect_closed()
}

pub(super) fn tls_identity_kept(context: &ServerContext<'_>) -> Check {
    let (first, pin) = tls_server(context, &[])?;
    ensure(pin.starts_with("SHA256:") && pin.len() == 7 + 43, || format!("{pin:?} is not SHA256: and 43 characters"))?;
    drop(first);
    let (_again, again) = tls_server(context, &[])?;
    ensure(pin == again, || format!("the fingerprint changed across a restart: {pin} then {again}"))?;
    // Where ferry keeps it: the key must be its user's alone.
    let identity = crate::process::config_home().join("ferry/identity.pem");
    if let Ok(metadata) = std::fs::metadata(&identity) {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        ensure(mode == 0o600, || format!("{} has mode {mode:o}, not 600", identity.display()))?;
    }
    Ok(())
}

/// A handshake that offers `offer` must not reach a greeting.
fn refused_offer(context: &ServerContext<'_>, offer: Offer) -> Check {
    let (server, pin) = tls_server(context, &[])?;
    match Wire::tls_greeted(server.addr, client(&pin, offer)?) {
        Ok((_, name)) => Err(format!("{offer:?}: the server greeted ({name}) instead of refusing the handshake")),
        Err(_) => Ok(()),
    }
}

pub(super) fn tls_alpn(context: &ServerContext<'_>) -> Check {
    refused_offer(context, Offer::OtherAlpn)
}

pub(super) fn tls_13_only(context: &ServerContext<'_>) -> Check {
    refused_offer(context, Offer::Tls12)
}

pub(super) fn tls_silent(context: &ServerContext<'_>) -> Check {
    let (server, pin) = tls_server(context, &["--idle-timeout", "1"])?;
    let mut silent = Wire::connect(server.addr)?;
    let started = Instant::now();
    silent.expect_closed()?;
    let took = started.elapsed();
    ensure(took < Duration::from_secs(5), || format!("a silent client was held {took:?}, past the 1 s idle timeout"))?;
    // And the server still serves.
    let mut wire = tls_wire(context, server.addr, &pin)?;
    wire.send(format!("GET {FILE}\n").as_bytes())?;
    same_bytes(FILE, &wire.ok_body()?, context.fixture.bytes(FILE))
}

pub(super) fn tls_plain_request(context: &ServerContext<'_>) -> Check {
    let (server, pin) = tls_server(context, &[])?;
    let mut plain = Wire::connect(server.addr)?;
    plain.send(format!("GET {FILE}\n").as_bytes())?;
    let got = plain.drain(1 << 20)?;
    ensure(got < 64, || format!("{got} bytes answered a plain request on a TLS server"))?;
    let mut wire = tls_wire(context, server.addr, &pin)?;
    wire.send(format!("GET {FILE}\n").as_bytes())?;
    same_bytes(FILE, &wire.ok_body()?, context.fixture.bytes(FILE))
}

/// Sends `requests` on a connection to a server that requires the token,
/// and checks that the answer is `ERR UNAUTHORIZED`, late enough, then the
/// end.
fn unauthorized(mut wire: Wire, requests: &str) -> Check {
    let sent = Instant::now();
    wire.send(requests.as_bytes())?;
    wire.expect_err("UNAUTHORIZED")?;
    let took = sent.elapsed();
    ensure(took >= PENALTY_AT_LEAST, || format!("refused after {took:?}: a guesser may try again at once"))?;
    wire.expect_closed()
}

pub(super) fn auth_required(context: &ServerContext<'_>) -> Check {
    let token = token_option()?;
    let server = context.start(&["--token-file", &token])?;
    unauthorized(context.connect_to(server.addr)?, &format!("GET {FILE}\n"))
}

pub(super) fn auth_wrong(context: &ServerContext<'_>) -> Check {
    let token = token_option()?;
    let server = context.start(&["--token-file", &token])?;
    let requests = format!("AUTH {TOKEN}x\nAUTH {TOKEN}\nGET {FILE}\n");
    unauthorized(context.connect_to(server.addr)?, &requests)?;
    // A token of the wrong form is no better.
    unauthorized(context.connect_to(server.addr)?, "AUTH not/a+token\n")
}

pub(super) fn auth_right(context: &ServerContext<'_>) -> Check {
    let token = token_option()?;
    let server = context.start(&["--token-file", &token])?;
    let mut wire = context.connect_to(server.addr)?;
    wire.send(format!("AUTH {TOKEN}\nGET {FILE}\nAUTH {TOKEN}\nQUIT\n").as_bytes())?;
    ensure(wire.header()? == Header::Ok(0), || "AUTH with the token was not answered OK 0".into())?;
    same_bytes(FILE, &wire.ok_body()?, context.fixture.bytes(FILE))?;
    ensure(wire.header()? == Header::Ok(0), || "a second AUTH was not answered OK 0".into())?;
    ensure(wire.header()? == Header::Bye, || "QUIT was not answered BYE".into())
}

pub(super) fn auth_tls(context: &ServerContext<'_>) -> Check {
    let token = token_option()?;
    let (server, pin) = tls_server(context, &["--token-file", &token])?;
    unauthorized(tls_wire(context, server.addr, &pin)?, "LIST /\n")?;
    let mut wire = tls_wire(context, server.addr, &pin)?;
    wire.send(format!("AUTH {TOKEN}\nGET {FILE}\n").as_bytes())?;
    ensure(wire.header()? == Header::Ok(0), || "AUTH with the token was not answered OK 0".into())?;
    same_bytes(FILE, &wire.ok_body()?, context.fixture.bytes(FILE))
}

// Client cases: ferry's command line against the implementation's TLS
// server, started with the suite's token.

/// Runs ferry's client with `args` in `dir`, its config folder `config`
/// (`XDG_CONFIG_HOME`), `FERRY_TOKEN` set to `token` if given and unset
/// otherwise; says how long it took.
fn ferry(
    context: &ClientContext<'_>,
    dir: &Path,
    config: &Path,
    args: &[&str],
    token: Option<&str>,
) -> Result<(Output, Duration), String> {
    let Some(ClientLaunch::Ferry(binary)) = &context.client.client else {
        return Err("this case needs a client with ferry's command line".into());
    };
    let mut command = std::process::Command::new(binary);
    command.args(args).env("XDG_CONFIG_HOME", config).env_remove("FERRY_TOKEN");
    if let Some(token) = token {
        command.env("FERRY_TOKEN", token);
    }
    let started = Instant::now();
    let output = assert_cmd::Command::from_std(command)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .timeout(WAIT)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    Ok((output, started.elapsed()))
}

/// The TLS server, its address and fingerprint.
fn secured<'a>(context: &'a ClientContext<'_>) -> Result<(String, &'a str), String> {
    let server = context.secured.ok_or("no TLS server")?;
    let pin = server.fingerprint.as_deref().ok_or("the TLS server printed no fingerprint")?;
    Ok((server.addr.to_string(), pin))
}

fn dirs() -> Result<(tempfile::TempDir, tempfile::TempDir), String> {
    let temp = |prefix| tempfile::Builder::new().prefix(prefix).tempdir().map_err(|e| format!("temp dir: {e}"));
    Ok((temp("ferry-tls-")?, temp("ferry-config-")?))
}

fn exit(output: &Output, code: i32) -> Check {
    ensure(output.status.code() == Some(code), || {
        format!(
            "exit status {:?}, expected {code}; stderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

fn says(output: &Output, words: &[&str]) -> Check {
    let stderr = String::from_utf8_lossy(&output.stderr);
    for word in words {
        ensure(stderr.contains(word), || format!("the message {:?} does not mention {word:?}", stderr.trim()))?;
    }
    Ok(())
}

fn nothing_written(dir: &Path) -> Check {
    let left: Vec<_> = std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten().map(|e| e.file_name()).collect();
    ensure(left.is_empty(), || format!("files were written: {left:?}"))
}

pub(super) fn client_tls_get(context: &ClientContext<'_>) -> Check {
    let (dir, config) = dirs()?;
    let (addr, pin) = secured(context)?;
    let token = token_option()?;
    let args = ["get", "--pin", pin, "--token-file", &token, &addr, FILE, "-o", "out"];
    let (output, _) = ferry(context, dir.path(), config.path(), &args, None)?;
    exit(&output, 0)?;
    let got = std::fs::read(dir.path().join("out")).map_err(|e| format!("out: {e}"))?;
    same_bytes("out", &got, context.fixture.bytes(FILE))?;
    // ls too, with the token from the environment.
    let (output, _) = ferry(context, dir.path(), config.path(), &["ls", "--tls", "--pin", pin, &addr], Some(TOKEN))?;
    exit(&output, 0)?;
    let listed = String::from_utf8_lossy(&output.stdout);
    ensure(listed.contains(FILE), || format!("ls over TLS does not list {FILE}: {listed:?}"))
}

pub(super) fn client_tls_wrong_pin(context: &ClientContext<'_>) -> Check {
    let (dir, config) = dirs()?;
    let (addr, pin) = secured(context)?;
    let wrong = format!("SHA256:{}", "A".repeat(43));
    let (output, _) = ferry(context, dir.path(), config.path(), &["get", "--pin", &wrong, &addr, FILE], Some(TOKEN))?;
    exit(&output, 1)?;
    says(&output, &[pin, &wrong])?;
    nothing_written(dir.path())
}

pub(super) fn client_tls_token(context: &ClientContext<'_>) -> Check {
    let (dir, config) = dirs()?;
    let (addr, pin) = secured(context)?;
    let args = ["get", "--pin", pin, &addr, FILE];
    let wrong = format!("{TOKEN}x");
    // Side by side: each waits out the server's second before its refusal.
    let (missing, refused) = std::thread::scope(|scope| {
        let missing = scope.spawn(|| ferry(context, dir.path(), config.path(), &args, None));
        let refused = ferry(context, dir.path(), config.path(), &args, Some(&wrong));
        (missing.join().unwrap_or_else(|_| Err("the run panicked".into())), refused)
    });
    let (output, took) = missing?;
    exit(&output, 1)?;
    says(&output, &["requires an access token", "--token-file"])?;
    ensure(took < SAID_WITHIN, || format!("a missing token was said after {took:?}"))?;
    let (output, _) = refused?;
    exit(&output, 1)?;
    says(&output, &["refused the access token"])?;
    nothing_written(dir.path())
}

pub(super) fn client_plain_meets_tls(context: &ClientContext<'_>) -> Check {
    let (dir, config) = dirs()?;
    let (addr, _) = secured(context)?;
    let (output, took) = ferry(context, dir.path(), config.path(), &["get", &addr, FILE], Some(TOKEN))?;
    exit(&output, 1)?;
    says(&output, &["--tls"])?;
    ensure(took < SAID_WITHIN, || format!("a TLS server was recognised after {took:?}"))?;
    nothing_written(dir.path())
}

pub(super) fn client_tls_meets_plain(context: &ClientContext<'_>) -> Check {
    let (dir, config) = dirs()?;
    let addr = context.server.addr.to_string();
    let pin = format!("SHA256:{}", "A".repeat(43));
    let (output, took) = ferry(context, dir.path(), config.path(), &["get", "--pin", &pin, &addr, FILE], None)?;
    exit(&output, 1)?;
    says(&output, &["plain FERRY/1", "drop --tls"])?;
    ensure(took < SAID_WITHIN, || format!("a plain server was recognised after {took:?}"))?;
    nothing_written(dir.path())
}

pub(super) fn client_tls_unknown(context: &ClientContext<'_>) -> Check {
    let (dir, config) = dirs()?;
    let (addr, pin) = secured(context)?;
    let (output, _) = ferry(context, dir.path(), config.path(), &["get", "--tls", &addr, FILE], Some(TOKEN))?;
    exit(&output, 1)?;
    says(&output, &[&format!("--pin {pin}")])?;
    nothing_written(dir.path())?;
    let known = config.path().join("ferry/known_servers");
    ensure(!known.exists(), || format!("{} was written without anyone saying yes", known.display()))
}

/// A config folder whose `known_servers` remembers `fingerprint` for
/// `addr`.
fn remembering(addr: &str, fingerprint: &str) -> Result<tempfile::TempDir, String> {
    let config = tempfile::Builder::new().prefix("ferry-config-").tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir(config.path().join("ferry")).map_err(|e| e.to_string())?;
    let lines =
        format!("# servers this client trusts\nother.example:7878 SHA256:{}\n{addr} {fingerprint}\n", "B".repeat(43));
    std::fs::write(config.path().join("ferry/known_servers"), lines).map_err(|e| e.to_string())?;
    Ok(config)
}

pub(super) fn client_tls_known(context: &ClientContext<'_>) -> Check {
    let (dir, _) = dirs()?;
    let (addr, pin) = secured(context)?;
    let config = remembering(&addr, pin)?;
    let args = ["get", "--tls", &addr, FILE, "-o", "out"];
    let (output, _) = ferry(context, dir.path(), config.path(), &args, Some(TOKEN))?;
    exit(&output, 0)?;
    let got = std::fs::read(dir.path().join("out")).map_err(|e| format!("out: {e}"))?;
    same_bytes("out", &got, context.fixture.bytes(FILE))
}

pub(super) fn client_tls_changed(context: &ClientContext<'_>) -> Check {
    let (dir, _) = dirs()?;
    let (addr, pin) = secured(context)?;
    let config = remembering(&addr, &format!("SHA256:{}", "C".repeat(43)))?;
    let (output, _) = ferry(context, dir.path(), config.path(), &["get", "--tls", &addr, FILE], Some(TOKEN))?;
    exit(&output, 1)?;
    let file = config.path().join("ferry/known_servers").display().to_string();
    says(&output, &["CHANGED", pin, "line 3", &file])?;
    nothing_written(dir.path())
}
