//! Drives `roost::smtp::ServerConn` with arbitrary client bytes, answering
//! its events like `session_tests.rs` does, and checks invariants after
//! every step (see README.md for the list).
//!
//! Input layout:
//! - byte 0, flags: bit 0 submission (else inbound), bit 1 the peer is
//!   already TLS (port 465), bit 2 plaintext AUTH allowed, bit 3 answer
//!   events late (after the next chunk has been fed, to exercise pipelined
//!   input buffered while the session waits), bit 4 let the deadline pass at
//!   the end, bit 5 end with EOF.
//! - bytes 1..=4: chunk sizes, used in turn; 0 means "all the rest".
//! - the rest: what the client sends, fed in those chunks.

#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roost::address::Address;
use roost::smtp::sasl::Credentials;
use roost::smtp::trace;
use roost::smtp::{
    AuthOutcome, Event, Identity, Kind, Limits, Peer, RcptVerdict, Reply, ServerConn, SessionConfig,
};

const MAX_MESSAGE_SIZE: usize = 4096;
const MAX_RECIPIENTS: usize = 3;
const USER: &str = "alice@example.test";
const PASSWORD: &str = "secret";
/// Recipients the fake directory knows.
const LOCAL: [&str; 3] = ["alice@example.test", "bob@example.test", "postmaster"];

fn limits() -> Limits {
    Limits {
        max_line: 256,
        max_message_size: MAX_MESSAGE_SIZE,
        max_recipients: MAX_RECIPIENTS,
        max_errors: 8,
        max_junk_commands: 8,
        max_transactions: 3,
        max_buffered_input: 512,
        command_timeout: Duration::from_secs(300),
        data_timeout: Duration::from_secs(300),
    }
}

fn identity() -> Identity {
    Identity {
        account: USER.into(),
        senders: vec![USER.into(), "info@example.test".into()],
    }
}

struct Driver {
    conn: ServerConn,
    now: Instant,
    kind: Kind,
    plaintext_auth: bool,
    /// What the session should believe, tracked from the events we answered.
    tls: bool,
    authenticated: bool,
    /// Recipients accepted since the last delivery; a delivered transaction
    /// must name only these.
    accepted: Vec<String>,
    /// An event taken but not yet answered (late mode).
    pending: Option<Event>,
    late: bool,
}

impl Driver {
    /// Takes the output and checks it is whole, well-formed reply lines.
    fn output(&mut self) -> Vec<u8> {
        let out = self.conn.take_output();
        check_replies(&out);
        out
    }

    fn feed(&mut self, chunk: &[u8]) {
        let closed = self.conn.is_closed();
        let waiting = self.pending.is_some();
        self.conn.handle_input(chunk, self.now);
        let out = self.output();
        if closed || waiting {
            // A closed session says nothing more; a waiting one holds the
            // input until its event is answered.
            assert!(out.is_empty(), "output while closed/waiting: {out:?}");
            assert!(
                self.conn.poll_event().is_none(),
                "event while closed/waiting"
            );
        }
        self.events();
    }

    /// Takes events and answers them, now or (late mode) after the next chunk.
    fn events(&mut self) {
        loop {
            if let Some(event) = self.pending.take() {
                self.answer(event);
                continue;
            }
            let Some(event) = self.conn.poll_event() else {
                return;
            };
            assert!(!self.conn.is_closed(), "event from a closed session");
            assert!(
                self.conn.poll_event().is_none(),
                "a second event before the first was answered"
            );
            self.check_event(&event);
            // The driver runs the TLS handshake at once and reads nothing in
            // between, so StartTls is never answered late.
            if self.late && event != Event::StartTls && self.conn.wants_input() {
                self.pending = Some(event);
                return;
            }
            self.answer(event);
        }
    }

    fn check_event(&mut self, event: &Event) {
        match event {
            Event::StartTls => assert!(!self.tls, "STARTTLS inside TLS"),
            Event::Authenticate(_) => {
                assert_eq!(self.kind, Kind::Submission, "AUTH on port 25");
                assert!(self.tls || self.plaintext_auth, "AUTH without TLS");
                assert!(!self.authenticated, "AUTH twice");
            }
            Event::CheckRecipient { .. } => {
                if self.kind == Kind::Submission {
                    assert!(self.authenticated, "RCPT before AUTH on submission");
                }
            }
            Event::Deliver(t) => {
                if self.kind == Kind::Submission {
                    assert!(self.authenticated, "delivery before AUTH on submission");
                    let from = Address::parse(&t.mail_from).expect("sender parses");
                    assert!(identity().may_send_as(&from), "foreign sender {from}");
                }
                assert!(
                    t.body.len() <= MAX_MESSAGE_SIZE,
                    "body of {} bytes over the limit",
                    t.body.len()
                );
                check_crlf(&t.body);
                // Sender, recipient and HELO name reach the trace headers
                // written in front of the body: they must not break lines.
                let date = "Thu, 1 Jan 1970 00:00:00 +0000";
                let head = trace::headers(&t.trace, "mx.example.test", &t.mail_from, date);
                check_crlf(head.as_bytes());
                for line in head.split_terminator("\r\n") {
                    assert!(
                        line.starts_with("Return-Path: <")
                            || line.starts_with("Received: from ")
                            || line.starts_with('\t'),
                        "trace header line {line:?}"
                    );
                }
                assert!(!t.recipients.is_empty(), "delivery without recipients");
                assert!(t.recipients.len() <= MAX_RECIPIENTS, "too many recipients");
                for r in &t.recipients {
                    assert!(
                        self.accepted.contains(&r.address),
                        "recipient {} was never accepted",
                        r.address
                    );
                }
            }
        }
    }

    fn answer(&mut self, event: Event) {
        match event {
            Event::StartTls => {
                self.tls = true;
                self.authenticated = false;
                self.conn.handle_tls_established(self.now);
            }
            Event::Authenticate(Credentials { username, password }) => {
                let outcome = if username == USER && password == PASSWORD {
                    self.authenticated = true;
                    AuthOutcome::Success(identity())
                } else if username == "throttle@example.test" {
                    AuthOutcome::Throttled
                } else {
                    AuthOutcome::Failed
                };
                self.conn.handle_auth(outcome, self.now);
            }
            Event::CheckRecipient { address } => {
                let verdict = match LOCAL.iter().position(|a| *a == address) {
                    Some(i) => {
                        self.accepted.push(address);
                        RcptVerdict::Accept(vec![i as u64 + 1])
                    }
                    None => RcptVerdict::Reject(Reply::new(550, "5.1.1", "No such user")),
                };
                self.conn.handle_recipient(verdict, self.now);
            }
            Event::Deliver(_) => {
                self.accepted.clear();
                self.conn.handle_delivered(Ok(()), self.now);
            }
        }
        self.output();
    }
}

/// Every line is `NNN-text` or `NNN text` and ends with CRLF; a `-` line is
/// followed by another line of the same reply.
fn check_replies(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    assert!(
        out.ends_with(b"\r\n"),
        "output does not end with CRLF: {out:?}"
    );
    let mut continued: Option<&[u8]> = None;
    for line in out[..out.len() - 2].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            line.len() >= 4
                && (b'2'..=b'5').contains(&line[0])
                && line[1..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "bad reply line {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(!line.contains(&b'\r'), "bare CR in reply {line:?}");
        if let Some(code) = continued {
            assert_eq!(code, &line[..3], "code changed inside a multiline reply");
        }
        continued = (line[3] == b'-').then(|| &line[..3]);
    }
    assert!(continued.is_none(), "output ends inside a multiline reply");
    // A line split off at a bare LF has no CR to strip; catch that here.
    check_crlf(out);
}

/// Every LF is preceded by CR and every CR followed by LF.
fn check_crlf(bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "bare LF at {i}"),
            b'\r' => assert!(bytes.get(i + 1) == Some(&b'\n'), "bare CR at {i}"),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (sizes, input) = rest.split_at(rest.len().min(4));
    let kind = if flags & 1 != 0 {
        Kind::Submission
    } else {
        Kind::Inbound
    };
    let peer = Peer {
        ip: "192.0.2.7".parse().unwrap(),
        tls: flags & 2 != 0,
        plaintext_auth: flags & 4 != 0,
        connection_id: 0xab,
    };
    let config = Arc::new(SessionConfig {
        hostname: "mx.example.test".into(),
        kind,
        limits: limits(),
    });
    let now = Instant::now();
    let mut d = Driver {
        conn: ServerConn::new(config, peer.clone(), now),
        now,
        kind,
        plaintext_auth: peer.plaintext_auth,
        tls: peer.tls,
        authenticated: false,
        accepted: Vec::new(),
        pending: None,
        late: flags & 8 != 0,
    };
    let greeting = d.output();
    assert!(greeting.starts_with(b"220 "), "greeting {greeting:?}");

    let mut input = input;
    let mut turn = 0;
    while !input.is_empty() {
        if d.pending.is_some() && !d.conn.wants_input() {
            // The buffer is full: a driver stops reading until the answer.
            let event = d.pending.take().unwrap();
            d.answer(event);
            d.events();
            continue;
        }
        let size = match sizes.get(turn % sizes.len().max(1)) {
            Some(0) | None => input.len(),
            Some(&n) => input.len().min(n as usize),
        };
        turn += 1;
        let (chunk, tail) = input.split_at(size);
        input = tail;
        d.feed(chunk);
    }
    // The client has sent everything: answer whatever is still waiting.
    d.late = false;
    d.events();

    if flags & 16 != 0 {
        let closed = d.conn.is_closed();
        let deadline = d.conn.deadline();
        d.conn.handle_timeout(deadline);
        let out = d.output();
        if closed {
            assert!(out.is_empty(), "timeout output after close");
        } else {
            assert!(d.conn.is_closed(), "deadline passed but session open");
            assert!(out.starts_with(b"421 "), "timeout reply {out:?}");
        }
        d.events();
    }
    if flags & 32 != 0 {
        d.conn.handle_eof();
        assert!(d.conn.is_closed());
        assert!(d.output().is_empty(), "output on EOF");
    }

    // Once closed, nothing more comes out whatever happens.
    if d.conn.is_closed() {
        assert!(!d.conn.wants_input());
        d.feed(b"NOOP\r\nEHLO again\r\n");
        d.conn
            .handle_timeout(d.conn.deadline() + Duration::from_secs(3600));
        assert!(d.conn.take_output().is_empty(), "output after close");
        assert!(d.conn.poll_event().is_none(), "event after close");
    }
});
