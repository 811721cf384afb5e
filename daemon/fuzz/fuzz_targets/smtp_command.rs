//! Feeds one command line to `smtp_proto::Request::parse`, the parser
//! `ServerConn` runs on every line, the way the session calls it: the line
//! up to and including its first LF.
//!
//! Byte 0 picks the form: even, the bytes as they are; odd, mapped onto an
//! SMTP-ish alphabet (an idea from smtp-proto's own fuzz target) so the
//! fuzzer gets past the command word into the arguments.
//!
//! Checks, beyond not panicking: a command parsed from a complete line does
//! not change when the next line follows it (the parser did not read past
//! the LF to build it), and parsed addresses and EHLO/HELO names never carry
//! CR or LF (they reach the Received and Return-Path headers).

#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_proto::Request;

static ALPHABET: &[u8] = b"EHLOMAILFROMRCPTTODATABDATAUTHPLAINLOGINSTARTTLSRSETQUITNOOP\
    SIZE=BODY=8BITMIMESMTPUTF8LAST0123456789abcxyz@.:<>\"\\-+=,; \t\r\n\x00\xc3\xa9\xff";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mapped: Vec<u8>;
    let bytes = if mode & 1 == 1 {
        mapped = bytes
            .iter()
            .map(|&b| ALPHABET[b as usize % ALPHABET.len()])
            .collect();
        &mapped[..]
    } else {
        bytes
    };
    // The session's view: one line, LF included; without an LF, the bytes
    // as they are (the session would wait for more).
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(lf) => &bytes[..=lf],
        None => bytes,
    };

    let alone = Request::parse(&mut line.iter()).map(|r| r.into_owned());
    if alone.is_ok() && line.ends_with(b"\n") {
        // A command parsed from its line alone must not change when the next
        // line follows. (Errors may: on "RCPT TO\n" the parser reads past the
        // LF and says NeedsMoreData alone, a syntax error with more input;
        // the session answers 500 either way, as it hands over one line.)
        let mut longer = line.to_vec();
        longer.extend_from_slice(b"MAIL FROM:<x@y.example>\r\nRCPT TO:<a@b>\r\n");
        let followed = Request::parse(&mut longer.iter()).map(|r| r.into_owned());
        assert_eq!(alone, followed, "the command depends on the next line");
    }

    let clean = |s: &str| !s.contains(['\r', '\n']);
    match &alone {
        Ok(Request::Mail { from }) => assert!(clean(&from.address), "{from:?}"),
        Ok(Request::Rcpt { to }) => assert!(clean(&to.address), "{to:?}"),
        Ok(Request::Ehlo { host } | Request::Helo { host }) => assert!(clean(host), "{host:?}"),
        _ => {}
    }
});
