//! Submission on 587 (STARTTLS) and 465 (implicit TLS) with AUTH, driven by
//! swaks, curl and Python's smtplib.

#[path = "harness.rs"]
mod harness;

use std::process::Command;

use harness::*;

fn swaks(port: u16, tls: &str, auth: &str, from: &str, to: &str) -> String {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), tls])
        .args([
            "--auth",
            auth,
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            PASSWORD,
        ])
        .args(["--from", from, "--to", to])
        .args(["--header", &format!("From: {from}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn starttls_587_and_implicit_465_with_plain_and_login() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let out = swaks(
        roost.submission,
        "--tls",
        "PLAIN",
        "alice@example.test",
        "bob@example.test",
    );
    assert!(
        out.contains("<~  235 2.7.0 Authentication successful"),
        "{out}"
    );
    assert!(out.contains("<~  250 2.0.0 Message accepted"), "{out}");
    let out = swaks(
        roost.submissions,
        "--tlsc",
        "LOGIN",
        "info@example.test",
        "bob@example.test",
    );
    assert!(
        out.contains("<~  250 2.0.0 Message accepted"),
        "sending as an own alias: {out}"
    );
    assert_eq!(roost.inbox("bob@example.test"), vec![1, 2]);
    let stored = String::from_utf8(roost.message("bob@example.test", 1)).unwrap();
    assert!(stored.contains("with ESMTPSA id"), "{stored}");
}

#[test]
fn curl_submits_over_smtps_and_starttls() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let user = format!("alice@example.test:{PASSWORD}");
    for url in [
        format!("smtps://127.0.0.1:{}", roost.submissions),
        format!("smtp://127.0.0.1:{}", roost.submission),
    ] {
        curl_send(
            &url,
            &["--insecure", "--ssl-reqd", "--user", &user],
            "alice@example.test",
            "bob@example.test",
            "From: Alice <alice@example.test>\r\nSubject: curl\r\n\r\nhi bob\r\n",
        );
    }
    assert_eq!(roost.inbox("bob@example.test"), vec![1, 2]);
}

#[test]
fn smtplib_rules_of_submission() {
    let roost = Roost::start();
    roost.add_example_accounts();
    let out = python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo()
print("auth-before-tls", s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB4"))
print("mail-before-auth", s.docmd("MAIL FROM:<alice@example.test>"))
s.starttls(context=ctx)
s.ehlo()
try:
    s.login("alice@example.test", "wrong password")
except smtplib.SMTPAuthenticationError as e:
    print("bad-password", e.smtp_code)
s.login("alice@example.test", "{password}")
print("foreign-sender", s.docmd("MAIL FROM:<bob@example.test>"))
s.rset()
print("remote-rcpt", s.docmd("MAIL FROM:<alice@example.test>")[0], s.docmd("RCPT TO:<someone@elsewhere.example>"))
s.rset()
try:
    s.sendmail("alice@example.test", ["bob@example.test"], b"From: Bob <bob@example.test>\r\nSubject: forged\r\n\r\nx\r\n")
except smtplib.SMTPDataError as e:
    print("forged-from", e.smtp_code, e.smtp_error)
print("ok", s.sendmail("alice+out@example.test", ["bob@example.test"], b"From: Alice <alice@example.test>\r\nSubject: real\r\n\r\nx\r\n"))
s.quit()
"#,
        port = roost.submission,
        password = PASSWORD
    ));
    assert!(
        out.contains(
            "auth-before-tls (538, b'5.7.11 Encryption required for authentication; use STARTTLS')"
        ),
        "{out}"
    );
    assert!(
        out.contains("mail-before-auth (530, b'5.7.0 Authentication required')"),
        "{out}"
    );
    assert!(out.contains("bad-password 535"), "{out}");
    assert!(
        out.contains("foreign-sender (553, b'5.7.1 Sender address is not yours')"),
        "{out}"
    );
    assert!(
        out.contains("remote-rcpt 250 (451, b'4.3.2 "),
        "remote recipients get a temporary error: {out}"
    );
    assert!(
        out.contains("forged-from 553 b'5.7.1 From: header address is not yours'"),
        "{out}"
    );
    assert!(out.contains("ok {}"), "{out}");
    assert_eq!(roost.inbox("bob@example.test"), vec![1]);
}

#[test]
fn failed_logins_are_throttled_per_address() {
    let roost = Roost::start_with_limits("auth_failures_per_ip = 3");
    roost.add_example_accounts();
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP_SSL("127.0.0.1", {port}, context=__import__("ssl")._create_unverified_context())
s.ehlo()
for i in range(3):
    print(s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==")[0])
print("then", s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="))
"#,
        port = roost.submissions
    ));
    assert!(
        out.starts_with("535\n535\n535\nthen (421, b'4.7.0 Too many failed authentications"),
        "{out}"
    );
}
