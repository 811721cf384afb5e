//! The CLI against a running daemon and without one, and TLS certificate
//! replacement without a restart.

#[path = "harness.rs"]
mod harness;

use std::process::Command;

use harness::*;

#[test]
fn cli_works_with_and_without_the_daemon() {
    let mut roost = Roost::start();
    roost.add_example_accounts(); // through the control socket
    assert_eq!(
        roost.ok(&["user", "list"], ""),
        "alice@example.test (admin)\nbob@example.test\n"
    );
    roost.ok(
        &["user", "password", "bob@example.test", "--password-stdin"],
        "another long one\n",
    );
    roost.ok(&["user", "admin", "bob@example.test"], "");
    let refused = roost.cli(&["domain", "delete", "example.test"], "");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("still has 2 account(s) and 1 alias(es)")
    );
    let short = roost.cli(
        &["user", "add", "carol@example.test", "--password-stdin"],
        "short\n",
    );
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
    let socket = roost.state.join("ctl.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    roost.stop();
    assert!(!socket.exists());
    // Without a daemon the CLI opens the database itself.
    assert_eq!(
        roost.ok(&["user", "list"], ""),
        "alice@example.test\nbob@example.test (admin)\n"
    );
    roost.ok(&["alias", "delete", "info@example.test"], "");
    roost.ok(&["user", "delete", "alice@example.test"], "");
    assert_eq!(roost.ok(&["alias", "list"], ""), "");
    let unknown = roost.cli(&["user", "delete", "alice@example.test"], "");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("account alice@example.test not found")
    );

    // Bob's new password works after a restart.
    roost.spawn();
    let out = python(&format!(
        r#"
import smtplib, ssl
s = smtplib.SMTP_SSL("127.0.0.1", {port}, context=ssl._create_unverified_context())
print(s.login("bob@example.test", "another long one")[0])
"#,
        port = roost.submissions
    ));
    assert_eq!(out.trim(), "235");
}

/// The certificate the implicit-TLS port presents, as PEM.
fn served_certificate(port: u16) -> String {
    python(&format!(
        "import ssl; print(ssl.get_server_certificate(('127.0.0.1', {port})))"
    ))
}

fn make_cert(dir: &std::path::Path, cn: &str) {
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", &format!("/CN={cn}")])
        .args([
            "-keyout",
            path_str(&dir.join("key.pem")),
            "-out",
            path_str(&dir.join("cert.pem")),
        ]));
}

fn subject(pem: &str) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-subject"]);
    String::from_utf8(run_with_input(&mut cmd, pem.as_bytes()).stdout).unwrap()
}

#[test]
fn certificate_files_replace_the_self_signed_one_without_restart() {
    let roost = Roost::start();
    let first = served_certificate(roost.submissions);
    assert!(
        subject(&first).contains("rcgen self signed cert"),
        "{}",
        subject(&first)
    );

    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "first.example.test");
    roost.ok(
        &[
            "tls",
            "use-files",
            path_str(&dir.path().join("cert.pem")),
            path_str(&dir.path().join("key.pem")),
        ],
        "",
    );
    assert!(subject(&served_certificate(roost.submissions)).contains("CN = first.example.test"));

    // Renewed files on disk (as certbot would) are picked up on SIGHUP.
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a newer mtime
    make_cert(dir.path(), "renewed.example.test");
    roost.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !subject(&served_certificate(roost.submissions)).contains("renewed.example.test") {
        assert!(
            std::time::Instant::now() < deadline,
            "renewed certificate not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A broken file is refused and the running certificate stays.
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let bad = roost.cli(
        &[
            "tls",
            "use-files",
            path_str(&dir.path().join("bad.pem")),
            path_str(&dir.path().join("key.pem")),
        ],
        "",
    );
    assert!(!bad.status.success());
    assert!(subject(&served_certificate(roost.submissions)).contains("renewed.example.test"));

    roost.ok(&["tls", "self-signed"], "");
    assert_eq!(
        served_certificate(roost.submissions),
        first,
        "the stored self-signed certificate is reused"
    );
}
