use super::*;

const INVITE: &str = "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=abc\r\n\
To: <sip:+15550100@127.0.0.1>\r\n\
Call-ID: call-1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

#[test]
fn invite_parses_with_user_branch_and_tags() {
    let m = parse(INVITE.as_bytes()).unwrap();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.uri_user.as_deref(), Some("+15550100"));
    assert_eq!(m.branch(), Some("z9hG4bK-1"));
    assert_eq!(m.tag("From"), Some("abc"));
    assert_eq!(m.tag("To"), None);
    assert_eq!(m.cseq(), Some((1, Method::Invite)));
    assert_eq!(m.body, b"v=0\n");
}

#[test]
fn body_is_cut_at_content_length() {
    let mut raw = INVITE.as_bytes().to_vec();
    raw.extend_from_slice(b"garbage after the body");
    assert_eq!(parse(&raw).unwrap().body, b"v=0\n");
}

#[test]
fn body_shorter_than_content_length_is_refused() {
    let raw = INVITE.replace("Content-Length: 4", "Content-Length: 40");
    assert_eq!(parse(raw.as_bytes()), Err(ParseError::TruncatedBody));
}

#[test]
fn compact_headers_and_lf_line_ends_are_read() {
    let raw = "OPTIONS sip:x@127.0.0.1 SIP/2.0\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-2\n\
f: <sip:a@127.0.0.1>;tag=1\n\
t: <sip:x@127.0.0.1>\n\
i: c2\n\
CSeq: 5 OPTIONS\n\
l: 0\n\n";
    let m = parse(raw.as_bytes()).unwrap();
    assert_eq!(m.call_id(), "c2");
    assert_eq!(m.branch(), Some("z9hG4bK-2"));
    assert_eq!(m.header("Content-Length"), Some("0"));
}

#[test]
fn folded_header_is_unfolded() {
    let raw = INVITE.replace(
        "Max-Forwards: 70\r\n",
        "Subject: hello\r\n  world\r\nMax-Forwards: 70\r\n",
    );
    let m = parse(raw.as_bytes()).unwrap();
    assert_eq!(m.header("Subject"), Some("hello world"));
}

#[test]
fn unknown_method_still_parses() {
    let raw = INVITE
        .replace("INVITE sip:", "FROBNICATE sip:")
        .replace("1 INVITE", "1 FROBNICATE");
    let m = parse(raw.as_bytes()).unwrap();
    assert_eq!(m.method(), Some(&Method::Other("FROBNICATE".into())));
}

#[test]
fn tel_uri_user_is_the_number() {
    let raw = INVITE.replace(
        "INVITE sip:+15550100@127.0.0.1:5060",
        "INVITE tel:+1-555-0100",
    );
    let m = parse(raw.as_bytes()).unwrap();
    assert_eq!(m.uri_user.as_deref(), Some("+1-555-0100"));
}

#[test]
fn missing_call_id_is_an_error_but_salvageable_for_400_only_if_present() {
    let raw = INVITE.replace("Call-ID: call-1@127.0.0.1\r\n", "");
    assert_eq!(
        parse(raw.as_bytes()),
        Err(ParseError::MissingHeader("Call-ID"))
    );
    assert!(salvage_for_400(raw.as_bytes()).is_none());
    let broken = INVITE.replace("Max-Forwards: 70", "Max-Forwards 70");
    assert!(parse(broken.as_bytes()).is_err());
    assert!(salvage_for_400(broken.as_bytes()).is_some());
}

#[test]
fn tcp_framing_waits_for_the_whole_body() {
    let raw = INVITE.as_bytes();
    assert_eq!(frame_len(&raw[..raw.len() - 1]), Ok(None));
    assert_eq!(frame_len(raw), Ok(Some(raw.len())));
    let mut two = raw.to_vec();
    two.extend_from_slice(raw);
    assert_eq!(frame_len(&two), Ok(Some(raw.len())));
}

#[test]
fn serialised_message_round_trips() {
    let m = parse(INVITE.as_bytes()).unwrap();
    let again = parse(&m.to_bytes()).unwrap();
    assert_eq!(m, again);
}

#[test]
fn uri_helpers_read_name_addr_forms() {
    assert_eq!(
        uri_of("\"A\" <sip:a@1.2.3.4:5070;transport=udp>;tag=x"),
        "sip:a@1.2.3.4:5070;transport=udp"
    );
    assert_eq!(uri_user("sip:alice@h"), Some("alice"));
    assert_eq!(
        uri_socket_addr("sip:a@127.0.0.1:5070;transport=udp"),
        Some("127.0.0.1:5070".parse().unwrap())
    );
    assert_eq!(
        uri_socket_addr("sip:a@[::1]:5070"),
        Some("[::1]:5070".parse().unwrap())
    );
    assert_eq!(uri_socket_addr("sip:a@example.com"), None);
    assert_eq!(param("<sip:x;lr>;tag=abc;foo", "tag"), Some("abc"));
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let base = INVITE.as_bytes();
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut buf = base.to_vec();
        // Mutate a few bytes, or truncate.
        for k in 0..(x % 6) {
            let pos = ((x >> (8 * k)) as usize) % buf.len();
            buf[pos] = (x >> (3 * k)) as u8;
        }
        if i % 7 == 0 {
            buf.truncate((x as usize) % buf.len());
        }
        let _ = parse(&buf);
        let _ = frame_len(&buf);
        let _ = salvage_for_400(&buf);
    }
}

#[test]
fn other_sip_versions_and_uri_schemes_are_refused_with_their_own_status() {
    let v7 = INVITE.replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1);
    let err = parse(v7.as_bytes()).unwrap_err();
    assert_eq!(err, ParseError::Version);
    assert_eq!(err.status(), StatusCode::VERSION_NOT_SUPPORTED);
    let scheme = INVITE.replacen("sip:+15550100@127.0.0.1:5060", "NOTSIP:joe@example.com", 1);
    let err = parse(scheme.as_bytes()).unwrap_err();
    assert_eq!(err, ParseError::UriScheme);
    assert_eq!(err.status(), StatusCode::UNSUPPORTED_URI_SCHEME);
    // sips and tel are schemes we read.
    for ok in ["sips:+15550100@127.0.0.1", "tel:+15550100"] {
        let m = INVITE.replacen("sip:+15550100@127.0.0.1:5060", ok, 1);
        assert!(parse(m.as_bytes()).is_ok(), "{ok}");
    }
    // Both salvageable: the endpoint can answer them.
    assert!(salvage_for_400(v7.as_bytes()).is_some());
}

#[test]
fn content_length_is_strictly_digits_and_never_two_that_disagree() {
    for bad in ["+4", "4 4", "-4", "0x4", "", "4.0"] {
        let m = INVITE.replace("Content-Length: 4", &format!("Content-Length: {bad}"));
        assert_eq!(
            parse(m.as_bytes()),
            Err(ParseError::BadContentLength),
            "{bad:?}"
        );
    }
    let two = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 3");
    assert_eq!(
        parse(two.as_bytes()),
        Err(ParseError::ConflictingContentLength)
    );
    // Over a stream the framing is unknowable: the transport closes.
    assert_eq!(
        frame_len(two.as_bytes()),
        Err(ParseError::ConflictingContentLength)
    );
    let same = INVITE.replace(
        "Content-Length: 4",
        "Content-Length: 4\r\nContent-Length: 4",
    );
    assert!(parse(same.as_bytes()).is_ok());
}

#[test]
fn single_value_headers_twice_and_a_cseq_of_another_method_are_refused() {
    let calls = INVITE.replace("Call-ID: call-1@127.0.0.1\r\n", "Call-ID: a\r\ni: b\r\n");
    assert_eq!(
        parse(calls.as_bytes()),
        Err(ParseError::Duplicate("Call-ID"))
    );
    let tos = INVITE.replace(
        "To: <sip:+15550100@127.0.0.1>\r\n",
        "To: <sip:a@x>\r\nTo: <sip:b@x>\r\n",
    );
    assert_eq!(parse(tos.as_bytes()), Err(ParseError::Duplicate("To")));
    let mismatch = INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    assert_eq!(parse(mismatch.as_bytes()), Err(ParseError::CseqMismatch));
    // Lists may repeat: two Vias are one list.
    let vias = INVITE.replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-p\r\n",
    );
    assert!(parse(vias.as_bytes()).is_ok());
}

#[test]
fn a_version_word_with_a_multibyte_char_at_byte_four_is_an_error_not_a_panic() {
    for version in ["SIPé", "SIé/2.0", "SIP/é", "é", "SIP/2.0é"] {
        let m = INVITE.replacen("SIP/2.0\r\n", &format!("{version}\r\n"), 1);
        assert!(parse(m.as_bytes()).is_err(), "{version}");
        let _ = frame_len(m.as_bytes());
        let _ = salvage_for_400(m.as_bytes());
    }
}

/// Found by the `sip_message` fuzz target (when `rsip` read the start line
/// after us): lines read on from, whose copy could not be read again.
#[test]
fn request_and_status_lines_must_have_their_three_parts() {
    let refused = [
        // No version: a URI must not be read on to a version on the next line.
        INVITE.replacen(" SIP/2.0\r\n", "\r\nX-Junk: a SIP/2.0\r\n", 1),
        // Four words.
        INVITE.replacen("INVITE sip:", "INVITE <sip:x sip:", 1),
        // A third word that is no SIP version.
        INVITE.replacen(" SIP/2.0\r\n", " SuspR:ie\r\n", 1),
        // Extra spaces (RFC 4475 lwsstart) and a trailing one (trws).
        INVITE.replacen("INVITE sip:", "INVITE  sip:", 1),
        INVITE.replacen(" SIP/2.0\r\n", " SIP/2.0 \r\n", 1),
    ];
    for m in &refused {
        let err = parse(m.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseError::Syntax(_)), "{m:?}: {err:?}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    assert!(parse(response.as_bytes()).is_ok());
    for code in ["099", "99", "700", "1000", "2x0"] {
        let bad = response.replacen("200", code, 1);
        assert!(parse(bad.as_bytes()).is_err(), "status {code}");
    }
}

#[test]
fn a_sip_uri_for_a_request_line_has_no_space_or_control_character() {
    assert!(is_sip_uri("sip:alice@127.0.0.1:5070;transport=udp"));
    assert!(is_sip_uri("SIPS:alice@example.com"));
    assert!(!is_sip_uri("tel:+15550100"));
    assert!(!is_sip_uri("qip:alice@127.0.0.1"));
    assert!(!is_sip_uri("sip:alice@127.0.0.1:5 62"));
    assert!(!is_sip_uri("sip:alice@127.0.0.1\t"));
    assert!(!is_sip_uri("sip:alice:x-B1<7.0.0.1:5080"));
    assert!(!is_sip_uri("sip:"));
}

/// Frames `stream` fed in pieces of the given sizes (cycled), as the TCP
/// reader does: returns the messages' lengths.
fn framed_in_pieces(stream: &[u8], pieces: &[usize]) -> Result<Vec<usize>, ParseError> {
    let mut framer = Framer::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut lens = Vec::new();
    let mut fed = 0;
    let mut i = 0;
    while fed < stream.len() {
        let n = pieces[i % pieces.len()].max(1).min(stream.len() - fed);
        i += 1;
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        while let Some(len) = framer.next_len(&buf)? {
            lens.push(len);
            buf.drain(..len);
        }
        assert!(framer.scanned() <= buf.len(), "never past the buffer");
    }
    Ok(lens)
}

/// The same stream framed whole, one message at a time, by `frame_len`.
fn framed_whole(stream: &[u8]) -> Vec<usize> {
    let mut rest = stream;
    let mut lens = Vec::new();
    while let Ok(Some(len)) = frame_len(rest) {
        lens.push(len);
        rest = &rest[len..];
    }
    lens
}

#[test]
fn the_framer_frames_a_stream_read_in_any_pieces_as_a_whole_read_would() {
    let lf_only = INVITE.replace("\r\n", "\n");
    let options = "OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
    let stream = [
        "\r\n\r\n", // a keep-alive
        INVITE,
        options,
        lf_only.as_str(),
        "\r\n\r\n",
        INVITE,
    ]
    .concat();
    let whole = framed_whole(stream.as_bytes());
    assert_eq!(whole.len(), 6, "{whole:?}");
    for pieces in [
        &[1][..],
        &[2],
        &[3],
        &[7, 1, 13],
        &[4096],
        &[5, 3, 1, 2, 64],
    ] {
        assert_eq!(
            framed_in_pieces(stream.as_bytes(), pieces).unwrap(),
            whole,
            "pieces {pieces:?}"
        );
    }
}

#[test]
fn the_framer_resumes_where_it_stopped_and_finds_a_blank_line_split_across_reads() {
    let mut framer = Framer::default();
    let head = b"OPTIONS sip:a@h SIP/2.0\r\nContent-Length: 0\r\n";
    assert_eq!(framer.next_len(head), Ok(None));
    assert_eq!(framer.scanned(), head.len(), "the next read starts here");
    let mut buf = head.to_vec();
    buf.push(b'\r');
    assert_eq!(framer.next_len(&buf), Ok(None));
    buf.push(b'\n');
    assert_eq!(framer.next_len(&buf), Ok(Some(buf.len())));
    assert_eq!(framer.scanned(), 0, "ready for the next message");
    // A body that comes later is waited for without reading the headers again.
    let mut framer = Framer::default();
    let with_body = b"INFO sip:a@h SIP/2.0\r\nContent-Length: 5\r\n\r\nab";
    assert_eq!(framer.next_len(with_body), Ok(None));
    let mut buf = with_body.to_vec();
    buf.extend_from_slice(b"cde");
    assert_eq!(framer.next_len(&buf), Ok(Some(buf.len())));
}

#[test]
fn the_framer_refuses_an_endless_header_and_a_bad_content_length() {
    let mut framer = Framer::default();
    let endless = vec![b'a'; 64 * 1024 + 1];
    assert_eq!(framer.next_len(&endless), Err(ParseError::NoHeaderEnd));
    let bad = b"INFO sip:a@h SIP/2.0\r\nContent-Length: -1\r\n\r\n";
    assert_eq!(
        Framer::default().next_len(bad),
        Err(ParseError::BadContentLength)
    );
}
