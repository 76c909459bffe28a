//! Property tests of the core: what one side encodes, the other decodes to
//! the same value, and no input makes a parser panic.

use ferry_engine::{
    Answer, Entry, ErrorCode, Kind, MAX_LINE, Parsed, Refusal, Request, WirePath, encode_listing, parse_answer,
    parse_greeting, parse_listing, parse_request,
};
use proptest::prelude::*;

/// Path text a client could send: any characters but NUL and backslash,
/// with no `..` component.
fn wire_path() -> impl Strategy<Value = WirePath> {
    "[^\\x00\\\\]{0,40}".prop_filter_map("has a .. component", |text| WirePath::new(&text).ok())
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (wire_path(), any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(path, offset, length)| {
            // `GET p 0` and `GET p` mean the same; the encoder writes the short form.
            Request::Get { path, offset, length }
        }),
        wire_path().prop_map(|path| Request::List { path }),
        wire_path().prop_map(|path| Request::Tree { path }),
        wire_path().prop_map(|path| Request::Sum { path }),
        Just(Request::Quit),
    ]
}

fn code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

proptest! {
    #[test]
    fn requests_round_trip(request in request()) {
        let mut line = Vec::new();
        request.encode(&mut line);
        prop_assert_eq!(parse_request(&line), Parsed::Complete { value: Ok(request), consumed: line.len() });
    }

    #[test]
    fn answers_round_trip(len in any::<u64>(), code in code(), message in "[ -~]{0,60}") {
        for answer in [Answer::Ok { len }, Answer::Bye, Answer::Err(Refusal::new(code, message.clone()))] {
            let mut line = Vec::new();
            answer.encode(&mut line);
            prop_assert_eq!(parse_answer(&line), Ok(Parsed::Complete { value: answer, consumed: line.len() }));
        }
    }

    #[test]
    fn listings_round_trip(names in proptest::collection::btree_set("[^/\\x00]{1,20}", 0..20), sizes in proptest::collection::vec(any::<u64>(), 20)) {
        let entries: Vec<Entry> = names
            .iter()
            .zip(&sizes)
            .enumerate()
            .map(|(i, (name, &size))| if i % 3 == 0 {
                Entry { kind: Kind::Directory, size: 0, name: name.clone() }
            } else {
                Entry { kind: Kind::File, size, name: name.clone() }
            })
            .collect();
        let mut body = Vec::new();
        encode_listing(entries.clone(), &mut body);
        let mut expected = entries;
        expected.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        prop_assert_eq!(parse_listing(&body), Ok(expected));
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_request(&bytes);
        let _ = parse_answer(&bytes);
        let _ = parse_greeting(&bytes);
        let _ = parse_listing(&bytes);
    }

    #[test]
    fn a_line_parses_the_same_whatever_the_reads(request in request(), split in 0usize..200) {
        let mut line = Vec::new();
        request.encode(&mut line);
        let split = split.min(line.len());
        // A prefix without the LF is never mistaken for a whole request.
        if split < line.len() {
            prop_assert_eq!(parse_request(&line[..split]), Parsed::Incomplete);
        }
        // And the rest, arriving later, completes exactly that request.
        prop_assert_eq!(parse_request(&line), Parsed::Complete { value: Ok(request), consumed: line.len() });
    }

    #[test]
    fn no_line_grows_past_the_limit(junk in proptest::collection::vec(any::<u8>().prop_filter("not LF", |b| *b != b'\n'), MAX_LINE..MAX_LINE + 64)) {
        match parse_request(&junk) {
            Parsed::Complete { value: Err(refusal), consumed } => {
                prop_assert_eq!(refusal.code, ErrorCode::TooLong);
                prop_assert_eq!(consumed, MAX_LINE);
            }
            other => prop_assert!(false, "expected TOO_LONG, got {:?}", other),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever an error message holds and however long, its answer line
    /// fits the limit clients enforce, is one line, and parses.
    #[test]
    fn error_lines_fit_the_limit(
        code in code(),
        unit in prop_oneof![Just("a"), Just("é"), Just("\u{80}"), Just("%"), Just("\n"), Just("日本")],
        repeat in 0usize..12_000,
        tail in "[^\\x00]{0,8}",
    ) {
        let message = format!("{}{tail}", unit.repeat(repeat));
        let mut line = Vec::new();
        Answer::Err(Refusal::new(code, message)).encode(&mut line);
        prop_assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
        prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let parsed = matches!(parse_answer(&line), Ok(Parsed::Complete { value: Answer::Err(_), .. }));
        prop_assert!(parsed);
    }
}

/// The requests the issue that found the bug sent: a GET of an 8187-byte
/// path, and paths of raw U+0080 (echoed back as `%C2%80`).
#[test]
fn the_longest_legal_requests_get_answers_within_the_limit() {
    let ascii = "a".repeat(8187);
    let wide = "\u{80}".repeat(4030);
    for path in [ascii, wide] {
        let refusal =
            Refusal::new(ErrorCode::NotFound, format!("{} does not exist", WirePath::new(&path).expect("valid")));
        let mut line = Vec::new();
        Answer::Err(refusal).encode(&mut line);
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.ends_with(format!("{}\n", ferry_engine::CUT).as_bytes()));
        assert!(std::str::from_utf8(&line).is_ok());
    }
}
