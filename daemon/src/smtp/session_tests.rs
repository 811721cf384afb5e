//! Tests of the SMTP session state machine, driven without sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::session::*;
use super::Reply;
use crate::smtp::sasl::Credentials;

struct Harness {
    conn: ServerConn,
    now: Instant,
    delivered: Vec<Transaction>,
}

fn harness(kind: Kind, tls: bool) -> Harness {
    harness_with(kind, tls, Limits::default())
}

fn harness_with(kind: Kind, tls: bool, limits: Limits) -> Harness {
    let config = Arc::new(SessionConfig {
        hostname: "mx.example.test".into(),
        kind,
        limits,
    });
    let peer = Peer {
        ip: "192.0.2.7".parse().unwrap(),
        tls,
        plaintext_auth: false,
        connection_id: 0xab,
    };
    let now = Instant::now();
    let mut h = Harness {
        conn: ServerConn::new(config, peer, now),
        now,
        delivered: Vec::new(),
    };
    assert_eq!(h.out(), "220 mx.example.test ESMTP Roost\r\n");
    h
}

impl Harness {
    fn out(&mut self) -> String {
        String::from_utf8(self.conn.take_output()).unwrap()
    }

    /// Sends bytes, answers every event the way a directory with alice and
    /// bob at example.test would, and returns the replies.
    fn send(&mut self, input: &str) -> String {
        self.send_bytes(input.as_bytes())
    }

    fn send_bytes(&mut self, input: &[u8]) -> String {
        self.conn.handle_input(input, self.now);
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::StartTls => self.conn.handle_tls_established(self.now),
                Event::Authenticate(Credentials { username, password }) => {
                    let outcome = if username == "alice@example.test" && password == "secret" {
                        AuthOutcome::Success(Identity {
                            account: username.clone(),
                            senders: vec![username, "info@example.test".into()],
                        })
                    } else {
                        AuthOutcome::Failed
                    };
                    self.conn.handle_auth(outcome, self.now);
                }
                Event::CheckRecipient { address } => {
                    let verdict = match address.as_str() {
                        "alice@example.test" => RcptVerdict::Accept(vec![1]),
                        "bob@example.test" => RcptVerdict::Accept(vec![2]),
                        _ => RcptVerdict::Reject(Reply::new(550, "5.1.1", "No such user")),
                    };
                    self.conn.handle_recipient(verdict, self.now);
                }
                Event::Deliver(t) => {
                    self.delivered.push(t);
                    self.conn.handle_delivered(Ok(()), self.now);
                }
            }
        }
        self.out()
    }

    fn codes(&mut self, input: &str) -> Vec<u16> {
        self.send(input)
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| l[..3].parse().unwrap())
            .collect()
    }
}

const AUTH_PLAIN: &str = "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n"; // \0alice@example.test\0secret

#[test]
fn inbound_delivery_with_pipelining() {
    let mut h = harness(Kind::Inbound, false);
    let ehlo = h.send("EHLO client.example.org\r\n");
    for ext in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            ehlo.contains(&format!("250-{ext}\r\n")) || ehlo.contains(&format!("250 {ext}\r\n")),
            "{ext} missing in {ehlo}"
        );
    }
    assert!(!ehlo.contains("AUTH"), "port 25 must not offer AUTH");
    let replies = h.codes(
        "MAIL FROM:<bob@example.org>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n",
    );
    assert_eq!(replies, vec![250, 250, 550, 354]);
    let done = h.send("Subject: hi\r\n\r\nHello.\r\n..dot\r\n.\r\n");
    assert_eq!(done, "250 2.0.0 Message accepted, id ab.1\r\n");
    let t = &h.delivered[0];
    assert_eq!(t.mail_from, "bob@example.org");
    assert_eq!(t.recipients.len(), 1);
    assert_eq!(t.body, b"Subject: hi\r\n\r\nHello.\r\n.dot\r\n");
    assert_eq!(t.trace.protocol, "ESMTP");
    assert_eq!(
        t.trace.single_recipient.as_deref(),
        Some("alice@example.test")
    );
    assert_eq!(h.codes("QUIT\r\n"), vec![221]);
    assert!(h.conn.is_closed());
}

#[test]
fn commands_out_of_order() {
    let mut h = harness(Kind::Inbound, false);
    assert_eq!(h.codes("MAIL FROM:<a@b.example>\r\n"), vec![503]);
    h.send("EHLO c\r\n");
    assert_eq!(h.codes("RCPT TO:<alice@example.test>\r\n"), vec![503]);
    assert_eq!(h.codes("DATA\r\n"), vec![503]);
    assert_eq!(
        h.codes("MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n"),
        vec![250, 503]
    );
    assert_eq!(h.codes("DATA\r\n"), vec![554], "no valid recipients");
    assert_eq!(
        h.codes("RSET\r\nNOOP\r\nVRFY alice\r\nHELP\r\n"),
        vec![250, 250, 252, 214]
    );
    assert_eq!(h.codes("EXPN x\r\nFOO\r\n"), vec![502, 500]);
}

#[test]
fn malformed_addresses_and_parameters() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\n");
    assert_eq!(h.codes("MAIL FROM:bob\r\n"), vec![501]);
    assert_eq!(
        h.codes("MAIL FROM:<bob@x.example> SIZE=999999999999\r\n"),
        vec![552]
    );
    assert_eq!(
        h.codes("MAIL FROM:<bob@x.example> BODY=BINARYMIME\r\n"),
        vec![555]
    );
    assert_eq!(
        h.codes("MAIL FROM:<jörg@x.example>\r\n"),
        vec![553],
        "needs SMTPUTF8"
    );
    assert_eq!(
        h.codes("MAIL FROM:<jörg@x.example> SMTPUTF8\r\n"),
        vec![250]
    );
    assert_eq!(h.codes("RCPT TO:<a@@b>\r\n"), vec![501]);
    assert_eq!(
        h.send_bytes(b"RCPT TO:<\xff@example.test>\r\n"),
        "500 5.5.2 Command is not valid UTF-8\r\n"
    );
}

#[test]
fn null_sender_and_bare_postmaster() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\n");
    assert_eq!(h.codes("MAIL FROM:<>\r\n"), vec![250]);
    // The directory double rejects "postmaster", proving it was asked for.
    assert_eq!(
        h.send("RCPT TO:<Postmaster>\r\n"),
        "550 5.1.1 No such user\r\n"
    );
}

#[test]
fn smuggled_end_of_data_is_not_honoured() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    let out = h.send("Subject: x\r\n\r\nhi\n.\nMAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nforged\r\n.\r\n");
    assert_eq!(
        out,
        "550 5.6.0 Message contains bare CR or LF; lines must end with CRLF\r\n"
    );
    assert!(h.delivered.is_empty(), "nothing stored, nothing forged");
}

#[test]
fn oversize_message_is_refused_after_its_end() {
    let limits = Limits {
        max_message_size: 10,
        ..Limits::default()
    };
    let mut h = harness_with(Kind::Inbound, false, limits);
    h.send("EHLO c\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    assert_eq!(h.codes("0123456789abcdef\r\n.\r\nNOOP\r\n"), vec![552, 250]);
    assert!(h.delivered.is_empty());
}

#[test]
fn bdat_chunks_and_pipelined_last() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<alice@example.test>\r\n");
    assert_eq!(
        h.send("BDAT 8\r\nA: b\r\n\r\n"),
        "250 2.0.0 8 octets received\r\n"
    );
    assert_eq!(h.codes("BDAT 4 LAST\r\nhi\r\nQUIT\r\n"), vec![250, 221]);
    assert_eq!(h.delivered[0].body, b"A: b\r\n\r\nhi\r\n");
}

#[test]
fn bdat_without_transaction_is_read_and_refused() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\n");
    // The chunk's bytes look like a command; they must not run as one.
    assert_eq!(h.codes("BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"), vec![503, 250]);
    assert!(!h.conn.is_closed());
}

#[test]
fn data_after_bdat_is_refused() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<alice@example.test>\r\nBDAT 2\r\nab");
    assert_eq!(h.codes("DATA\r\n"), vec![503]);
}

#[test]
fn disconnect_mid_data_delivers_nothing() {
    let mut h = harness(Kind::Inbound, false);
    h.send("EHLO c\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: half\r\n");
    h.conn.handle_eof();
    assert!(h.conn.is_closed());
    assert!(h.conn.poll_event().is_none());
    assert!(h.delivered.is_empty());
}

#[test]
fn long_lines_and_error_limit() {
    let mut h = harness(Kind::Inbound, false);
    let long = format!("NOOP {}\r\n", "x".repeat(5000));
    assert_eq!(h.send(&long), "500 5.5.2 Line too long\r\n");
    assert_eq!(
        h.codes("NOOP\r\n"),
        vec![250],
        "the session recovers at the next line"
    );
    let out = h.send(&"BOGUS\r\n".repeat(20));
    assert!(
        out.ends_with("421 4.7.0 Too many errors, closing connection\r\n"),
        "{out}"
    );
    assert!(h.conn.is_closed());
}

#[test]
fn junk_command_limit() {
    let limits = Limits {
        max_junk_commands: 3,
        ..Limits::default()
    };
    let mut h = harness_with(Kind::Inbound, false, limits);
    assert_eq!(
        h.codes("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n"),
        vec![250, 250, 250, 421]
    );
}

#[test]
fn recipient_limit() {
    let limits = Limits {
        max_recipients: 1,
        ..Limits::default()
    };
    let mut h = harness_with(Kind::Inbound, false, limits);
    h.send("EHLO c\r\nMAIL FROM:<b@example.org>\r\n");
    assert_eq!(
        h.codes("RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"),
        vec![250, 452]
    );
}

#[test]
fn timeout_closes_with_421() {
    let mut h = harness(Kind::Inbound, false);
    let deadline = h.conn.deadline();
    h.conn.handle_timeout(deadline - Duration::from_secs(1));
    assert!(!h.conn.is_closed());
    h.conn.handle_timeout(deadline);
    assert!(h.out().starts_with("421 4.4.2 "));
    assert!(h.conn.is_closed());
}

#[test]
fn starttls_discards_pipelined_plaintext_and_resets() {
    let mut h = harness(Kind::Submission, false);
    h.send("EHLO c\r\n");
    let out = h.send("STARTTLS\r\nMAIL FROM:<alice@example.test>\r\n");
    assert_eq!(
        out, "220 2.0.0 Ready to start TLS\r\n",
        "injected command must not run"
    );
    assert!(h.conn.is_tls());
    assert_eq!(
        h.codes("MAIL FROM:<alice@example.test>\r\n"),
        vec![503],
        "EHLO again after TLS"
    );
    let ehlo = h.send("EHLO c\r\n");
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"));
}

#[test]
fn submission_needs_tls_then_auth() {
    let mut h = harness(Kind::Submission, false);
    let ehlo = h.send("EHLO c\r\n");
    assert!(!ehlo.contains("AUTH"));
    assert_eq!(h.codes(AUTH_PLAIN), vec![538]);
    assert_eq!(h.codes("MAIL FROM:<alice@example.test>\r\n"), vec![530]);
}

#[test]
fn submission_auth_plain_and_login() {
    let mut h = harness(Kind::Submission, true);
    h.send("EHLO c\r\n");
    assert_eq!(
        h.codes("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n"),
        vec![535]
    );
    assert_eq!(h.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.codes("*\r\n"), vec![501]);
    assert_eq!(h.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        h.send("YWxpY2VAZXhhbXBsZS50ZXN0\r\n"),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        h.send("c2VjcmV0\r\n"),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(h.codes(AUTH_PLAIN), vec![503], "only once");
}

#[test]
fn submission_sender_must_be_owned() {
    let mut h = harness(Kind::Submission, true);
    h.send("EHLO c\r\n");
    h.send(AUTH_PLAIN);
    assert_eq!(h.codes("MAIL FROM:<bob@example.test>\r\n"), vec![553]);
    assert_eq!(h.codes("MAIL FROM:<>\r\n"), vec![553]);
    assert_eq!(
        h.codes("MAIL FROM:<alice+lists@example.test>\r\n"),
        vec![250]
    );
    assert_eq!(
        h.codes("RSET\r\nMAIL FROM:<info@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"),
        vec![250, 250, 250, 354]
    );
    let forged = h.send("From: Bob <bob@example.test>\r\n\r\nhi\r\n.\r\n");
    assert_eq!(forged, "553 5.7.1 From: header address is not yours\r\n");
    h.send("MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
    let missing = h.send("Subject: no from\r\n\r\nhi\r\n.\r\n");
    assert_eq!(missing, "550 5.6.0 Message has no From: header\r\n");
    h.send("MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
    let ok = h.send("From: Alice <ALICE@example.test>\r\n\r\nhi\r\n.\r\n");
    assert!(ok.starts_with("250 2.0.0"), "{ok}");
    assert_eq!(h.delivered[0].trace.protocol, "ESMTPSA");
}

#[test]
fn auth_refused_on_port_25() {
    let mut h = harness(Kind::Inbound, true);
    h.send("EHLO c\r\n");
    assert_eq!(h.codes(AUTH_PLAIN), vec![502]);
}

#[test]
fn throttled_auth_closes() {
    let mut h = harness(Kind::Submission, true);
    h.send("EHLO c\r\n");
    h.conn.handle_input(AUTH_PLAIN.as_bytes(), h.now);
    assert!(matches!(h.conn.poll_event(), Some(Event::Authenticate(_))));
    h.conn.handle_auth(AuthOutcome::Throttled, h.now);
    assert!(h.out().starts_with("421 4.7.0"));
    assert!(h.conn.is_closed());
}

#[test]
fn input_split_anywhere_gives_the_same_replies() {
    let script = "EHLO c\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nA: b\r\n\r\nx\r\n.\r\nBDAT 1\r\nz";
    let mut whole = harness(Kind::Inbound, false);
    let expected = whole.send(script);
    for split in 1..script.len() {
        let mut h = harness(Kind::Inbound, false);
        let mut got = h.send(&script[..split]);
        got.push_str(&h.send(&script[split..]));
        assert_eq!(got, expected, "split at {split}");
    }
}
