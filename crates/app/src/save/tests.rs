//! Where downloads go, checked in folders made for each test.

use std::io::Write;

use clap::Parser;

use super::prompt::expand_home;
use super::*;
use crate::args::{Cli, Command};

fn plan(args: &[&str]) -> Result<Plan, PlanError> {
    let cli = Cli::try_parse_from(["ferry", "get", "127.0.0.1:1"].iter().chain(args)).expect("parses");
    let Command::Get(get) = cli.command else { panic!("not get") };
    Plan::new(&get)
}

fn usage(args: &[&str]) -> String {
    match plan(args) {
        Err(PlanError::Usage(message)) => message,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn one_path_into_a_folder_or_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().to_str().expect("utf-8");
    let into = plan(&["docs/a.pdf", "-o", folder]).expect("plan");
    let Dest::File(target) = &into.items[0].dest else { panic!("not a file") };
    assert_eq!(target.dest, dir.path().join("a.pdf"));
    assert_eq!(target.part, dir.path().join("a.pdf.part"));

    let named = dir.path().join("b.bin");
    let as_file = plan(&["docs/a.pdf", "-o", named.to_str().expect("utf-8")]).expect("plan");
    let Dest::File(target) = &as_file.items[0].dest else { panic!("not a file") };
    assert_eq!(target.dest, named);

    assert!(matches!(plan(&["a", "-o", "-"]).expect("plan").items[0].dest, Dest::Stream(Stream::Stdout)));
    assert!(matches!(plan(&["a", "-o", "/dev/stdout"]).expect("plan").items[0].dest, Dest::Stream(Stream::Stdout)));
    let null = plan(&["a", "-o", "/dev/null"]).expect("plan");
    assert!(matches!(&null.items[0].dest, Dest::Stream(Stream::Device(path)) if path == Path::new("/dev/null")));
}

#[test]
fn usage_errors() {
    assert!(usage(&["a/x", "b/x"]).contains("would both be saved as x"));
    assert!(usage(&["a", "b", "-o", "-"]).contains("single PATH"));
    assert!(matches!(plan(&["a", "b", "-o", "/no/such/folder"]), Err(PlanError::Save(SaveError::NoFolder { .. }))));
    assert!(usage(&["/"]).contains("shared folder itself"));
    assert!(usage(&["../x"]).contains("FORBIDDEN"));
}

/// The one refusal a single-path plan made.
fn refused(args: &[&str]) -> SaveError {
    let mut plan = plan(args).expect("plan");
    assert!(plan.items.is_empty(), "{:?}", plan.items);
    plan.refused.pop().expect("a refusal").1
}

#[test]
fn an_existing_dest_is_refused_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("x");
    std::fs::write(&dest, b"mine").expect("write");
    let dest_arg = dest.to_str().expect("utf-8");
    assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::Exists { .. }));
    assert_eq!(plan(&["x", "-o", dest_arg, "--force"]).expect("plan").items.len(), 1);
}

#[test]
fn a_batch_refuses_each_file_in_the_way_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("b"), b"mine").expect("write");
    std::fs::write(dir.path().join("c.part"), b"half").expect("write");
    let plan = plan(&["a", "b", "c", "-o", dir.path().to_str().expect("utf-8")]).expect("plan");
    assert_eq!(plan.items.len(), 1);
    assert_eq!(plan.items[0].path.as_str(), "a");
    let messages: Vec<String> = plan.refused.iter().map(|(_, error)| error.to_string()).collect();
    assert!(messages[0].contains("already exists"), "{messages:?}");
    assert!(messages[1].contains("--continue") && messages[1].contains("4 bytes"), "{messages:?}");
}

#[test]
fn links_are_never_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").expect("write");
    let dest = dir.path().join("x");
    let dest_arg = dest.to_str().expect("utf-8");

    // A link at DEST: refused; with --force the link is replaced.
    std::os::unix::fs::symlink(&victim, &dest).expect("symlink");
    assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::Link { .. }));
    let forced = plan(&["x", "-o", dest_arg, "--force"]).expect("plan");
    let Dest::File(target) = &forced.items[0].dest else { panic!("not a file") };
    let mut file = target.open_part(0).expect("open");
    file.write_all(b"new").expect("write");
    target.commit(file, None).expect("commit");
    assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    assert_eq!(std::fs::read(&dest).expect("read"), b"new");
    assert!(!std::fs::symlink_metadata(&dest).expect("stat").is_symlink());
    std::fs::remove_file(&dest).expect("rm");

    // A link at DEST.part: refused, resumed or not; --force replaces it.
    std::os::unix::fs::symlink(&victim, dir.path().join("x.part")).expect("symlink");
    assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::PartNotAFile { .. }));
    assert!(matches!(refused(&["x", "-o", dest_arg, "--continue"]), SaveError::PartNotAFile { .. }));
    let target = Target::new(dest.clone(), false);
    assert!(matches!(target.open_part(0), Err(SaveError::PartExists { .. })));
    assert!(matches!(target.open_part(8), Err(SaveError::PartNotAFile { .. })));
    let forced = Target::new(dest.clone(), true);
    let mut file = forced.open_part(0).expect("replaces the link");
    file.write_all(b"new").expect("write");
    forced.commit(file, None).expect("commit");
    assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
}

#[test]
fn one_download_per_dest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("x");
    let first = Target::new(dest.clone(), false);
    let held = first.open_part(0).expect("first");
    // A second client, even with --force or --continue, finds it locked.
    for flags in [&[][..], &["--force"][..], &["--continue"][..]] {
        let mut args = vec!["x", "-o", dest.to_str().expect("utf-8")];
        args.extend(flags);
        assert!(matches!(refused(&args), SaveError::Downloading { .. }), "{flags:?}");
    }
    assert!(matches!(Target::new(dest.clone(), true).open_part(0), Err(SaveError::Downloading { .. })));
    first.commit(held, None).expect("commit");
    assert!(dest.exists());
}

#[test]
fn a_part_is_never_emptied_unasked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("report.pdf");
    std::fs::write(dir.path().join("report.pdf.part"), b"notes").expect("write");
    let message = refused(&["report.pdf", "-o", dest.to_str().expect("utf-8")]).to_string();
    assert!(message.contains("--continue") && message.contains("--force"), "{message}");
    assert_eq!(std::fs::read(dir.path().join("report.pdf.part")).expect("read"), b"notes");
}

#[test]
fn missing_folders_are_named_or_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodir = format!("{}/nodir/", dir.path().display());
    let Err(PlanError::Save(error)) = plan(&["a", "-o", &nodir]) else { panic!("planned") };
    assert!(error.to_string().contains("nodir/: no such folder"), "{error}");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"").expect("write");
    let into_file = format!("{}/x", plain.display());
    assert!(matches!(plan(&["a", "-o", &into_file]), Err(PlanError::Save(SaveError::NotAFolder { .. }))));
    let created = plan(&["a", "-o", &nodir, "--create-dirs"]).expect("plan");
    let Dest::File(target) = &created.items[0].dest else { panic!("not a file") };
    assert_eq!(target.dest, dir.path().join("nodir/a"));
    assert!(dir.path().join("nodir").is_dir());
}

#[test]
fn devices_and_fifos_are_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
    let planned = plan(&["a", "-o", fifo.to_str().expect("utf-8")]).expect("plan");
    assert!(matches!(&planned.items[0].dest, Dest::Stream(Stream::Device(path)) if *path == fifo));
    // A link to a device outside /dev is a link, not a device.
    let link = dir.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &link).expect("symlink");
    assert!(matches!(refused(&["a", "-o", link.to_str().expect("utf-8")]), SaveError::Link { .. }));
}

#[test]
fn home_is_expanded_in_answers() {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    assert_eq!(expand_home(""), None);
    assert_eq!(expand_home("x/y"), Some(PathBuf::from("x/y")));
    if let Some(home) = home {
        assert_eq!(expand_home("~/dl"), Some(home.join("dl")));
        assert_eq!(expand_home("~"), Some(home));
    }
}

#[test]
fn commit_is_atomic_and_checks_the_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::new(dir.path().join("f"), false);
    let mut file = target.open_part(0).expect("open");
    file.write_all(b"hello").expect("write");
    assert!(!target.dest.exists());
    let wrong = [0u8; 32];
    assert!(matches!(target.commit(file, Some(&wrong)), Err(SaveError::Mismatch { .. })));
    assert!(!target.dest.exists() && target.part.exists());

    let file = target.open_part(5).expect("resume");
    target.commit(file, Some(blake3::hash(b"hello").as_bytes())).expect("commit");
    assert_eq!(std::fs::read(&target.dest).expect("read"), b"hello");
    assert!(!target.part.exists());

    // Someone else created DEST meanwhile: it is not replaced.
    let mut file = target.open_part(0).expect("open");
    file.write_all(b"other").expect("write");
    assert!(matches!(target.commit(file, None), Err(SaveError::Exists { .. })));
    assert_eq!(std::fs::read(&target.dest).expect("read"), b"hello");
}

#[test]
fn a_body_that_cannot_fit_fails_before_its_part_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = Target::new(dir.path().join("huge.iso"), false);
    let refused = Dest::File(target.clone()).open(0, u64::MAX).expect_err("16 EiB do not fit");
    assert!(matches!(refused, SaveError::NoSpace { need: u64::MAX, .. }), "{refused}");
    assert!(refused.to_string().contains("huge.iso: the server would send"), "{refused}");
    assert!(!target.part.exists(), "nothing is left behind");
    Dest::File(target).open(0, 10).expect("10 bytes fit");
}

#[test]
fn a_part_that_could_not_be_written_is_removed_unless_it_was_being_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().to_str().expect("utf-8");
    let fresh = plan(&["a.bin", "-o", folder]).expect("plan");
    let Dest::File(target) = &fresh.items[0].dest else { panic!("a file") };
    std::fs::write(&target.part, b"half").expect("write");
    let full = |path: &Path| ClientError::Save(SaveError::io(path, io::Error::from_raw_os_error(28)));
    fresh.abandon(&ClientError::Timeout { addr: "h".into(), timeout: std::time::Duration::from_secs(1) });
    assert!(target.part.exists(), "a network failure keeps it, for --continue");
    fresh.abandon(&full(&target.part));
    assert!(!target.part.exists(), "a failed write removes it");

    std::fs::write(&target.part, b"half").expect("write");
    let resumed = plan(&["a.bin", "-o", folder, "--continue"]).expect("plan");
    assert_eq!(resumed.items[0].offset, 4);
    resumed.abandon(&full(&target.part));
    assert!(target.part.exists(), "a resumed .part is the user's");
}

#[test]
fn an_empty_part_cut_before_its_first_byte_is_resumed_from_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("x");
    let dest_arg = dest.to_str().expect("utf-8");
    std::fs::write(dir.path().join("x.part"), b"").expect("write");
    // Without --continue, said as any unfinished download is.
    assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::PartExists { len: 0, .. }));
    let resumed = plan(&["x", "-o", dest_arg, "--continue"]).expect("plan");
    assert_eq!(resumed.items[0].offset, 0);
    let Dest::File(target) = &resumed.items[0].dest else { panic!("not a file") };
    let mut file = target.open_part(0).expect("the empty .part is taken over");
    file.write_all(b"all").expect("write");
    target.commit(file, None).expect("commit");
    assert_eq!(std::fs::read(&dest).expect("read"), b"all");
    // One with bytes in it is never emptied that way.
    std::fs::write(dir.path().join("y.part"), b"kept").expect("write");
    let kept = Target::new(dir.path().join("y"), false);
    assert!(matches!(kept.open_part(0), Err(SaveError::PartExists { len: 4, .. })));
}

#[test]
fn continue_finishes_a_commit_cut_between_its_link_and_its_unlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("x");
    let part = dir.path().join("x.part");
    std::fs::write(&dest, b"whole").expect("write");
    // Killed after linking the .part as DEST, before unlinking it.
    std::fs::hard_link(&dest, &part).expect("link");
    let locked = Target::new(dest.clone(), false).open_part(5).expect("held by a download");
    destination(dest.clone(), false, true).expect("complete");
    assert!(part.exists(), "a .part that a download holds is left alone");
    drop(locked);
    let (found, _) = destination(dest.clone(), false, true).expect("complete");
    assert!(matches!(found, Dest::Complete(_)));
    assert!(!part.exists(), "the .part that is DEST's own file is removed");
    assert_eq!(std::fs::read(&dest).expect("read"), b"whole");
    // Another file under the .part's name is not DEST's: kept.
    std::fs::write(&part, b"whole").expect("write");
    destination(dest.clone(), false, true).expect("complete");
    assert!(part.exists(), "another file named .part is left alone");
}
