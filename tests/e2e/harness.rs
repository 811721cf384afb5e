//! Runs the real `roost` binary for end-to-end tests: a temporary state
//! directory, loopback listeners on free ports, and helpers to drive the CLI
//! and speak SMTP.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const HOSTNAME: &str = "mx.example.test";
pub const PASSWORD: &str = "correct horse battery";

pub fn roost_bin() -> &'static str {
    env!("CARGO_BIN_EXE_roost")
}

/// A port nobody listens on right now (on both loopback addresses).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Roost {
    pub state: PathBuf,
    _dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    pub smtp: u16,
    pub submission: u16,
    pub submissions: u16,
    config: PathBuf,
}

impl Roost {
    /// A daemon on a fresh state directory, with `extra` appended to the
    /// `[limits]` table of its config.
    pub fn start_with_limits(extra: &str) -> Roost {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut roost = Roost::configure(state, extra);
        roost._dir = Some(dir);
        roost.spawn();
        roost
    }

    pub fn start() -> Roost {
        Roost::start_with_limits("")
    }

    /// Configures (without starting) a daemon whose state lives in `state`.
    pub fn configure(state: PathBuf, limits: &str) -> Roost {
        let (smtp, submission, submissions) = (free_port(), free_port(), free_port());
        std::fs::create_dir_all(&state).unwrap();
        let config = state.with_extension("toml");
        let listen = |p: u16| format!("[\"127.0.0.1:{p}\", \"[::1]:{p}\"]");
        std::fs::write(
            &config,
            format!(
                "hostname = \"{HOSTNAME}\"\n[listen]\nsmtp = {}\nsubmission = {}\nsubmissions = {}\n[limits]\n{limits}\n",
                listen(smtp),
                listen(submission),
                listen(submissions)
            ),
        )
        .unwrap();
        Roost {
            state,
            _dir: None,
            child: None,
            smtp,
            submission,
            submissions,
            config,
        }
    }

    /// Starts the daemon and waits for its SMTP banner.
    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.state.with_extension("log")).unwrap();
        let child = Command::new(roost_bin())
            .arg("--state")
            .arg(&self.state)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.smtp)) {
                let mut banner = [0u8; 3];
                if s.read_exact(&mut banner).is_ok() && &banner == b"220" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "roost did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.with_extension("log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal_pid(child.id(), "TERM");
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "roost exited with {status}: {}",
                self.log()
            );
        }
    }

    fn signal_pid(&self, pid: u32, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status();
    }

    /// Runs a CLI subcommand against this state directory.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(roost_bin());
        cmd.arg("--state").arg(&self.state).args(args);
        run_with_input(&mut cmd, stdin.as_bytes())
    }

    /// Runs a CLI subcommand that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "roost {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// example.test with alice (admin), bob, and info@ -> alice.
    pub fn add_example_accounts(&self) {
        self.ok(&["domain", "add", "example.test"], "");
        for user in ["alice", "bob"] {
            self.ok(
                &[
                    "user",
                    "add",
                    &format!("{user}@example.test"),
                    "--password-stdin",
                ],
                &format!("{PASSWORD}\n"),
            );
        }
        self.ok(
            &["alias", "add", "info@example.test", "alice@example.test"],
            "",
        );
    }

    /// UIDs in a user's INBOX.
    pub fn inbox(&self, user: &str) -> Vec<u32> {
        self.ok(&["mail", "list", user], "")
            .lines()
            .map(|l| l.split('\t').next().unwrap().parse().unwrap())
            .collect()
    }

    /// A stored message, byte for byte.
    pub fn message(&self, user: &str, uid: u32) -> Vec<u8> {
        let out = self.cli(&["mail", "cat", user, &uid.to_string()], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Roost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a program that must exist and succeed; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a program with `input` on its standard input; returns its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Sends `message` with curl to `url` (smtp:// or smtps://); `extra` are
/// further curl options such as --user.
pub fn curl_send(url: &str, extra: &[&str], from: &str, to: &str, message: &str) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--url", url, "--mail-from", from, "--mail-rcpt", to])
        .args(extra)
        .args(["--upload-file", "-"]);
    let out = run_with_input(&mut cmd, message.as_bytes());
    assert!(
        out.status.success(),
        "curl to {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny SMTP client for raw protocol tests.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        Smtp::connect_to(("127.0.0.1", port))
    }

    pub fn connect_to(addr: impl std::net::ToSocketAddrs) -> Smtp {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut smtp = Smtp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let (code, _) = smtp.reply();
        assert_eq!(code, 220);
        smtp
    }

    /// Reads one (possibly multi-line) reply: its code and last line.
    pub fn reply(&mut self) -> (u16, String) {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed while waiting for a reply");
            if line.as_bytes().get(3) != Some(&b'-') {
                return (line[..3].parse().unwrap(), line.trim_end().to_owned());
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends one message; returns the final reply.
    pub fn mail(&mut self, from: &str, to: &[&str], body: &str) -> (u16, String) {
        assert_eq!(self.cmd(&format!("MAIL FROM:<{from}>")).0, 250);
        for rcpt in to {
            assert_eq!(self.cmd(&format!("RCPT TO:<{rcpt}>")).0, 250);
        }
        assert_eq!(self.cmd("DATA").0, 354);
        self.send(body.as_bytes());
        self.cmd(".")
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }

    pub fn shutdown(self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

pub fn python(script: &str) -> String {
    run(Command::new("python3").arg("-c").arg(script))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
