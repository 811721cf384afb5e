//! Inbound mail on port 25 (dev: the configured port), with real clients:
//! swaks, curl and Python's smtplib.

#[path = "harness.rs"]
mod harness;

use std::process::Command;

use harness::*;

#[test]
fn swaks_message_is_stored_byte_for_byte_with_trace_headers() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let dir = tempfile::tempdir().unwrap();
    let body = "From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: exact bytes\r\nMessage-ID: <exact@example.org>\r\n\r\nLine one.\r\n.A line that starts with a dot\r\n\r\n  trailing spaces  \r\nLast line, UTF-8: h\u{e9}llo\r\n";
    let file = dir.path().join("msg.eml");
    // swaks ends the data with CRLF "." CRLF itself, which also ends the
    // last line.
    std::fs::write(&file, body.strip_suffix("\r\n").unwrap()).unwrap();
    let out = run(Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", roost.smtp)])
        .args([
            "--from",
            "bob@example.org",
            "--to",
            "alice@example.test",
            "--helo",
            "client.example.org",
        ])
        .args(["--data", &format!("@{}", path_str(&file))]));
    assert!(out.contains("<-  250 2.0.0 Message accepted"), "{out}");

    assert_eq!(roost.inbox("alice@example.test"), vec![1]);
    let stored = String::from_utf8(roost.message("alice@example.test", 1)).unwrap();
    let (trace, content) = stored.split_at(stored.find("From: Bob").unwrap());
    assert_eq!(content, body, "content must be stored exactly as sent");
    assert!(trace.starts_with("Return-Path: <bob@example.org>\r\nReceived: from client.example.org ([127.0.0.1])\r\n\tby mx.example.test (Roost) with ESMTP id "), "{trace}");
    assert!(
        trace.contains("\r\n\tfor <alice@example.test>;\r\n\t"),
        "{trace}"
    );
    assert!(trace.ends_with(" +0000\r\n"), "{trace}");
    assert!(
        roost.log().contains("message accepted"),
        "one log line per message"
    );
}

#[test]
fn subaddress_alias_and_role_addresses_resolve() {
    let roost = Roost::start();
    roost.add_example_accounts();
    // One copy per account, however many of its addresses are named.
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
refused = s.sendmail("sender@example.org",
    ["alice+news@example.test", "info@example.test", "postmaster@example.test", "abuse@example.test", "bob+x@example.test"],
    b"Subject: fan-out\r\n\r\nhi\r\n")
print("refused", refused)
code, _ = s.docmd("MAIL FROM:<sender@example.org>")
print("rcpt-bare-postmaster", s.docmd("RCPT TO:<Postmaster>")[0])
s.rset()
print("rcpt-unknown", s.docmd("MAIL FROM:<x@example.org>")[0], s.docmd("RCPT TO:<nobody@example.test>"))
print("rcpt-relay", s.docmd("RCPT TO:<someone@elsewhere.example>"))
s.quit()
"#,
        port = roost.smtp
    ));
    assert!(out.contains("refused {}"), "{out}");
    assert!(out.contains("rcpt-bare-postmaster 250"), "{out}");
    assert!(
        out.contains("rcpt-unknown 250 (550, b'5.1.1 No such user here')"),
        "{out}"
    );
    assert!(
        out.contains("rcpt-relay (554, b'5.7.1 Relay access denied')"),
        "{out}"
    );
    assert_eq!(
        roost.inbox("alice@example.test"),
        vec![1],
        "deduplicated to one copy"
    );
    assert_eq!(roost.inbox("bob@example.test"), vec![1]);
    assert_eq!(
        roost.message("alice@example.test", 1),
        roost.message("bob@example.test", 1),
        "both copies are the same stored body"
    );
}

#[test]
fn curl_smtp_delivers() {
    let roost = Roost::start();
    roost.add_example_accounts();
    curl_send(
        &format!("smtp://127.0.0.1:{}", roost.smtp),
        &[],
        "carol@example.org",
        "bob@example.test",
        "From: carol@example.org\r\nSubject: via curl\r\n\r\nhello from curl\r\n",
    );
    let stored = String::from_utf8(roost.message("bob@example.test", 1)).unwrap();
    assert!(
        stored.ends_with("From: carol@example.org\r\nSubject: via curl\r\n\r\nhello from curl\r\n"),
        "{stored}"
    );
}

#[test]
fn ipv6_loopback_is_served() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let mut s = Smtp::connect_to(("::1", roost.smtp));
    assert_eq!(s.cmd("EHLO v6.example.org").0, 250);
    let (code, _) = s.mail(
        "a@example.org",
        &["alice@example.test"],
        "Subject: v6\r\n\r\nx\r\n",
    );
    assert_eq!(code, 250);
    let stored = String::from_utf8(roost.message("alice@example.test", 1)).unwrap();
    assert!(
        stored.contains("Received: from v6.example.org ([::1])"),
        "{stored}"
    );
}

#[test]
fn smuggled_end_of_data_is_refused_and_nothing_stored() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let mut s = Smtp::connect(roost.smtp);
    s.cmd("EHLO smuggler.example.org");
    assert_eq!(s.cmd("MAIL FROM:<a@example.org>").0, 250);
    assert_eq!(s.cmd("RCPT TO:<alice@example.test>").0, 250);
    assert_eq!(s.cmd("DATA").0, 354);
    s.send(b"Subject: one\r\n\r\nhi\n.\nMAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: forged\r\n\r\n.\r\n");
    let (code, text) = s.reply();
    assert_eq!(
        (code, text.as_str()),
        (
            550,
            "550 5.6.0 Message contains bare CR or LF; lines must end with CRLF"
        )
    );
    assert_eq!(s.cmd("NOOP").0, 250, "the session is still in step");
    assert!(roost.inbox("alice@example.test").is_empty());
    assert!(roost.inbox("bob@example.test").is_empty());
}

#[test]
fn disconnect_mid_data_stores_nothing() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let mut s = Smtp::connect(roost.smtp);
    s.cmd("EHLO c.example.org");
    s.cmd("MAIL FROM:<a@example.org>");
    s.cmd("RCPT TO:<alice@example.test>");
    assert_eq!(s.cmd("DATA").0, 354);
    s.send(b"Subject: cut off\r\n\r\nhalf a message");
    s.shutdown();
    // A second, complete message proves the server is fine and shows the
    // half one was not stored before it.
    let mut s = Smtp::connect(roost.smtp);
    s.cmd("EHLO c.example.org");
    assert_eq!(
        s.mail(
            "a@example.org",
            &["alice@example.test"],
            "Subject: whole\r\n\r\nx\r\n"
        )
        .0,
        250
    );
    assert_eq!(roost.inbox("alice@example.test"), vec![1]);
    let stored = String::from_utf8(roost.message("alice@example.test", 1)).unwrap();
    assert!(stored.contains("Subject: whole"));
}

#[test]
fn oversize_and_malformed_input_get_protocol_errors() {
    let roost = Roost::start_with_limits("max_message_size = 1000");
    roost.add_example_accounts();
    let mut s = Smtp::connect(roost.smtp);
    let (code, _) = s.cmd("EHLO c.example.org");
    assert_eq!(code, 250);
    assert_eq!(s.cmd("MAIL FROM:<a@example.org> SIZE=5000").0, 552);
    assert_eq!(s.cmd("MAIL FROM:<a@example.org>").0, 250);
    assert_eq!(s.cmd("RCPT TO:<alice@example.test>").0, 250);
    assert_eq!(s.cmd("DATA").0, 354);
    s.send("x".repeat(3000).as_bytes());
    assert_eq!(s.cmd("\r\n.").0, 552);
    assert_eq!(s.cmd(&format!("NOOP {}", "y".repeat(10_000))).0, 500);
    assert_eq!(s.cmd("MAIL FROM:<not an address>").0, 501);
    s.send(b"RCPT TO:<\xff\xfe@example.test>\r\n");
    assert_eq!(s.reply().0, 500);
    assert_eq!(s.cmd("QUIT").0, 221);
    assert!(roost.inbox("alice@example.test").is_empty());
}

/// Connects once a connection place is free: a connection that just ended
/// (such as the harness's start-up probe) frees its place a moment later.
fn connect_when_free(port: u16) -> std::net::TcpStream {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut code = [0u8; 3];
        s.read_exact(&mut code).unwrap();
        if &code == b"220" {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "no place freed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn connections_per_address_are_capped() {
    let roost = Roost::start_with_limits("connections_per_ip = 2");
    let first = connect_when_free(roost.smtp);
    let _second = connect_when_free(roost.smtp);
    let mut third = std::net::TcpStream::connect(("127.0.0.1", roost.smtp)).unwrap();
    let mut reply = String::new();
    use std::io::Read;
    third.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "421 4.7.0 Too many connections, try again later\r\n");
    drop(first);
    connect_when_free(roost.smtp);
}
