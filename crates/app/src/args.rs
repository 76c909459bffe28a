//! The command line, identical for `ferry-std`, `ferry-tokio` and
//! `ferry-smol`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The one line `-h` and `--help` both start with.
pub const ABOUT: &str = "Share a folder over TCP with FERRY/1, and fetch files from one.";

/// The port a server listens on, and a client connects to, when none is named.
pub const DEFAULT_PORT: u16 = 7878;

/// Share a folder over TCP with FERRY/1, and fetch files from one.
///
/// The binary's own name goes into the examples at run time (see
/// [`crate::main`]), so each implementation's `--help` names itself.
#[derive(Debug, Parser)]
#[command(
    version,
    about = ABOUT,
    long_about = None,
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Quiet: a server logs warnings and errors only (no access log); a
    /// client shows no progress and no summary, only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Share a folder.
    Serve(ServeArgs),
    /// Fetch files from a server.
    Get(GetArgs),
    /// List a folder on a server.
    Ls(LsArgs),
}

/// `serve [ROOT] [--listen ADDR] [--max-connections N] [--idle-timeout SECS] [--grace SECS]`
#[derive(Debug, Args)]
#[command(long_about = "Share ROOT (default: the current folder) until Ctrl-C or SIGTERM.\n\n\
        It listens on loopback only unless told otherwise. To share with other machines, use --tls \
        (encrypted; clients check the server's fingerprint) and --token-file (only those who have the \
        token can fetch): an address other machines can reach is refused without --tls, unless \
        --plaintext says the network is one you trust.\n\n\
        With --tls the server uses its own identity, made on first use in ~/.config/ferry/identity.pem \
        (or $XDG_CONFIG_HOME/ferry) and the same on every start, or the certificate --cert and --key \
        give.\n\n\
        When ready, prints `listening on <ip:port>` on stdout, and with --tls a second line, \
        `fingerprint SHA256:...`, to read out to the people who fetch. Logs go to stderr, with one \
        access-log line per request (-q for warnings only). Only files under ROOT can be fetched: `..` \
        is refused, and relative symlinks are followed only while they stay inside ROOT (absolute ones \
        never). Without a token, anyone who can reach the address can fetch every file under ROOT.\n\n\
        A SUM or LIST must be answered within the idle timeout or is refused with ERR TIMEOUT; at most \
        one per core runs at once, and one whose client has gone stops. On Ctrl-C or SIGTERM the \
        server stops accepting, lets transfers in flight finish for the grace period, and exits 0; a \
        second signal exits at once.\n\n\
        Exit status: 0 after a shutdown, 1 when the server cannot start (the folder, the address), 2 for \
        usage errors, 128+N after a second signal N.")]
pub struct ServeArgs {
    /// The folder to share.
    #[arg(default_value = ".")]
    pub root: PathBuf,
    /// Address to listen on. The default is loopback only; 0.0.0.0:7878 or
    /// [::]:7878 share with other machines, which needs --tls (or
    /// --plaintext). Port 0 picks a free port.
    #[arg(short, long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Allow listening beyond loopback without encryption: anyone on the
    /// path can read every file sent, and anyone who can connect can fetch
    /// every file shared. Only on a network you trust.
    #[arg(long, conflicts_with = "tls")]
    pub plaintext: bool,
    /// Serve FERRY/1 over TLS 1.3, with this server's own identity (made
    /// on first use) unless --cert and --key name another.
    #[arg(long)]
    pub tls: bool,
    /// The certificate chain (PEM) to serve with, instead of the server's
    /// own identity; implies --tls.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Require an access token, the first line of FILE (or set
    /// FERRY_TOKEN): 1 to 256 of A-Z a-z 0-9 - . _ ~. Beyond loopback
    /// only with --tls, which keeps it secret.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Connections served at once; clients beyond it are answered ERR BUSY.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = positive)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request line, or may stop
    /// reading, before it is dropped (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub idle_timeout: Seconds,
    /// Seconds transfers in flight may go on after Ctrl-C or SIGTERM.
    #[arg(long, value_name = "SECS", default_value = "5")]
    pub grace: Seconds,
}

/// `get ADDR PATH... [-o DEST] [--force] [--continue] [--verify] [--create-dirs] [-r [-j N]]`
#[derive(Debug, Args)]
#[command(long_about = "Fetch files from a server.\n\n\
    With one PATH, DEST may be a file name, an existing folder to save into, or - for stdout. \
    Without -o, ferry asks where to save when stdin is a terminal, offering the path's last \
    component in the current folder, and uses that default otherwise.\n\n\
    With several PATHs, they are requested over one connection without waiting for each answer, \
    and saved under their last component in the folder -o names (default: the current folder).\n\n\
    Saves are atomic: bytes go to DEST.part, which becomes DEST only once every byte arrived. \
    An existing DEST is never replaced without --force, and a symbolic link is never written \
    through (--force replaces the link itself). After a failure the .part stays, and --continue \
    resumes it; a .part is never emptied without --force, and one that another ferry is filling \
    is left alone. A device, FIFO or socket named as DEST (-o /dev/null, a named pipe) is written \
    to directly, like stdout. When one file's DEST is in the way, that file fails alone and the \
    others are fetched.\n\n\
    Ctrl-C or a lost connection mid-download says how much is kept in the .part and the command \
    that resumes it. --continue on a file that is already whole checks it (with the server's digest) \
    and succeeds.\n\n\
    With -r, each PATH that is a folder is copied whole, as DEST/<its name>/ (PATH / copies the \
    whole share into DEST), like scp -r: the server lists the tree first, then the files are fetched \
    on -j connections at once, each saved as above, with the server's modification time; folders \
    are made as needed, empty ones kept. Owners, modes and links to folders are not copied (a link \
    to a file arrives as the file). Every name the server lists is checked before it is used: one \
    with .., a / or a control character, or listed twice, is refused and named, and nothing is \
    ever written outside DEST. Run the same command again with --continue to finish a copy that \
    was cut: files already there with the server's size and time are skipped, .part files \
    resumed.\n\n\
    Exit status: 0 when every file was saved (or found complete), 1 when any failed, 2 for usage \
    errors, 130 after Ctrl-C (128+N after signal N).")]
pub struct GetArgs {
    /// The server, as HOST:PORT (the port defaults to 7878).
    #[arg(value_parser = server_addr)]
    pub addr: String,
    /// Paths under the server's shared folder.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Where to save: a file, an existing folder, or - for stdout.
    #[arg(short, long, value_name = "DEST")]
    pub output: Option<PathBuf>,
    /// Replace DEST if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Resume DEST.part from its length, then verify the whole file.
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,
    /// Compare the saved file's BLAKE3 digest with the server's (SUM).
    #[arg(long)]
    pub verify: bool,
    /// Create the folder -o names (or DEST's folder) if it is missing.
    #[arg(long)]
    pub create_dirs: bool,
    /// Refuse a file larger than SIZE (bytes, or with K, M, G, T: 500M,
    /// 4G), as the server announces it, before writing any of it.
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<Size>,
    /// Seconds to wait for the connection and for each answer; a body must
    /// also bring at least 1 KiB in every such period, or it is given up on.
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub timeout: Seconds,
    /// No progress bar (-q also drops the lines about resumed and verified
    /// files; errors are always said).
    #[arg(long)]
    pub no_progress: bool,
    /// Copy folders: each PATH that is a folder arrives as DEST/<its name>/
    /// with everything under it (PATH / copies the whole share into DEST).
    #[arg(short, long, help_heading = "Folders")]
    pub recursive: bool,
    /// With -r: how many connections fetch files at once.
    #[arg(short, long, value_name = "N", default_value_t = 4, value_parser = positive, help_heading = "Folders")]
    pub jobs: usize,
    /// With -r: give up on a tree of more entries than N (a server could
    /// list without end).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = positive, help_heading = "Folders")]
    pub max_entries: usize,
    /// With -r: refuse entries more than N folders deep.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = positive, help_heading = "Folders")]
    pub max_depth: usize,
    /// TLS and the access token.
    #[command(flatten)]
    pub secure: Secure,
}

/// How a client reaches a server that uses TLS or a token (`get`, `ls`).
#[derive(Debug, Clone, Default, Args)]
pub struct Secure {
    /// Speak FERRY/1 over TLS. A server seen for the first time is shown
    /// with its fingerprint and trusted only if you say so (on a terminal;
    /// it is then remembered in ~/.config/ferry/known_servers); a server
    /// whose fingerprint changed is refused.
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// Trust only the server whose certificate has this fingerprint (as its
    /// `serve` printed it); implies --tls.
    #[arg(long, value_name = "SHA256:...", help_heading = "TLS", conflicts_with = "ca", value_parser = pin)]
    pub pin: Option<String>,
    /// Trust a server whose certificate a CA in FILE (PEM) signed for the
    /// host name, instead of a fingerprint; implies --tls.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub ca: Option<PathBuf>,
    /// The access token the server requires: the first line of FILE (or set
    /// FERRY_TOKEN).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub token_file: Option<PathBuf>,
}

/// Parses a fingerprint as `serve` prints it: `SHA256:` and 43 characters
/// of unpadded base64.
fn pin(text: &str) -> Result<String, String> {
    let digits = text.strip_prefix("SHA256:").unwrap_or("");
    if digits.len() == 43 && digits.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a fingerprint: SHA256: and 43 characters, as `serve --tls` prints it"))
    }
}

/// `ls ADDR [PATH] [--bytes]`
#[derive(Debug, Args)]
#[command(long_about = "List a folder on a server: one line per entry, kind, size and name, \
    printed as the listing arrives.\n\n\
    Exit status: 0 when the folder was listed (also when the reader of a pipe stopped early, as in \
    `ls ADDR | head`), 1 when it could not be, 2 for usage errors.")]
pub struct LsArgs {
    /// The server, as HOST:PORT (the port defaults to 7878).
    #[arg(value_parser = server_addr)]
    pub addr: String,
    /// The folder to list.
    #[arg(default_value = "/")]
    pub path: String,
    /// Sizes in bytes rather than KiB, MiB, GiB.
    #[arg(short, long)]
    pub bytes: bool,
    /// Seconds to wait for the connection and for each read.
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub timeout: Seconds,
    /// TLS and the access token.
    #[command(flatten)]
    pub secure: Secure,
}

/// Parses a server address as `host:port`, `host` (port 7878), an IP
/// address, or `[v6]` / `[v6]:port`, into the `host:port` form that name
/// resolution takes. A port that is not a number is a usage error.
fn server_addr(text: &str) -> Result<String, String> {
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    if let Some(v6) = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        let ip: std::net::Ipv6Addr = v6.parse().map_err(|_| format!("{text}: not an IPv6 address"))?;
        return Ok(std::net::SocketAddr::new(ip.into(), DEFAULT_PORT).to_string());
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => (text, ""),
    };
    if let Some((addr, path)) = text.split_once('/')
        && !addr.is_empty()
    {
        return Err(format!("{text:?}: the server and the path are separate arguments: {addr} {path}"));
    }
    if host.is_empty() || host.contains(['/', ' ', ':']) {
        return Err(format!("{text:?} is not HOST or HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT})"));
    }
    match port {
        "" => Ok(format!("{host}:{DEFAULT_PORT}")),
        port if port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(text.to_owned()),
        port => Err(format!("{port:?} is not a port number (1 to 65535), in {text:?}")),
    }
}

/// Parses a count that must be at least 1.
fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

/// A number of bytes: plain, or with a binary unit (`K`, `M`, `G`, `T`,
/// optionally followed by `iB` or `B`: `500M`, `4GiB`).
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim().trim_end_matches("iB").trim_end_matches('B');
        let (number, unit) = match trimmed.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => trimmed.split_at(at),
            None => (trimmed, ""),
        };
        let shift = match unit.to_ascii_uppercase().as_str() {
            "" => 0,
            "K" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => return Err(format!("{text:?} is not a size (a number of bytes, or with K, M, G or T: 500M)")),
        };
        let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a size (e.g. 4096, 500M, 4G)"))?;
        n.checked_mul(1 << shift).map(Size).ok_or_else(|| format!("{text} is more bytes than can be counted"))
    }
}

/// A positive number of seconds, fractions allowed (`30`, `0.5`).
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
        if !(secs > 0.0 && secs <= 1e9) {
            return Err(format!("{text} seconds is out of range (more than 0, at most 1e9)"));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        let size = |text: &str| text.parse::<Size>().map(|size| size.0);
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("500M"), Ok(500 << 20));
        assert_eq!(size("4GiB"), Ok(4 << 30));
        assert_eq!(size("2k"), Ok(2048));
        assert!(size("12Q").is_err());
        assert!(size("99999999999T").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_loopback_and_safe() {
        let cli = Cli::try_parse_from(["ferry", "serve"]).expect("parses");
        let Command::Serve(serve) = cli.command else { panic!("not serve") };
        assert_eq!(serve.listen, "127.0.0.1:7878".parse().expect("addr"));
        assert_eq!(serve.max_connections, 1024);
        assert_eq!(serve.idle_timeout.0, Duration::from_secs(30));
        assert_eq!(serve.grace.0, Duration::from_secs(5));
        assert_eq!(serve.root, PathBuf::from("."));
    }

    #[test]
    fn server_addresses() {
        let ok = |text: &str| server_addr(text).expect(text);
        assert_eq!(ok("127.0.0.1:9"), "127.0.0.1:9");
        assert_eq!(ok("127.0.0.1"), "127.0.0.1:7878");
        assert_eq!(ok("localhost"), "localhost:7878");
        assert_eq!(ok("example.org:80"), "example.org:80");
        assert_eq!(ok("::1"), "[::1]:7878");
        assert_eq!(ok("[::1]"), "[::1]:7878");
        assert_eq!(ok("[::1]:9"), "[::1]:9");
        for bad in ["host:http", "host:0", "host:70000", ":80", "a b", "[zz]"] {
            assert!(server_addr(bad).is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["ferry", "get", "host:x", "a"]).is_err());
        let joined = server_addr("127.0.0.1:7878/docs/a.pdf").expect_err("a path in the address");
        assert!(joined.contains("127.0.0.1:7878 docs/a.pdf"), "{joined}");
    }

    #[test]
    fn beyond_loopback_is_a_choice_the_user_makes() {
        let cli = Cli::try_parse_from(["ferry", "serve", "--listen", "0.0.0.0:0"]).expect("parses");
        let Command::Serve(serve) = cli.command else { panic!("not serve") };
        assert!(!serve.plaintext, "not without saying so");
        let cli = Cli::try_parse_from(["ferry", "serve", "--listen", "0.0.0.0:0", "--plaintext"]).expect("parses");
        let Command::Serve(serve) = cli.command else { panic!("not serve") };
        assert!(serve.plaintext);
    }

    #[test]
    fn seconds() {
        assert_eq!("0.25".parse::<Seconds>().expect("valid").0, Duration::from_millis(250));
        for bad in ["0", "-1", "x", "inf", "NaN"] {
            assert!(bad.parse::<Seconds>().is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["ferry", "serve", "--max-connections", "0"]).is_err());
    }
}
