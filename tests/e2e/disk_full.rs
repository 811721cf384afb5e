//! A full disk: deliveries get a temporary 452 4.3.1, nothing acknowledged
//! is lost, and the server carries on once there is room again. Runs the
//! state directory on a small tmpfs (needs root, as CI has).

#[path = "harness.rs"]
mod harness;

use std::process::Command;

use harness::*;

/// Unmounts the tmpfs when the test ends, whatever happens.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_gets_452_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("small");
    std::fs::create_dir(&mountpoint).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&mountpoint)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "mounting a tmpfs failed: this test needs root (CI runs as root)"
    );
    let _mount = Mount(mountpoint.clone());

    let mut roost = Roost::configure(mountpoint.join("state"), "");
    roost.spawn();
    roost.add_example_accounts();
    let body = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(4000)
    );
    let mut s = Smtp::connect(roost.smtp);
    s.cmd("EHLO filler.example.org");
    let mut accepted = 0;
    let refusal = loop {
        let (code, text) = s.mail("a@example.org", &["alice@example.test"], &body);
        if code != 250 {
            break text;
        }
        accepted += 1;
        assert!(accepted < 100, "the 6 MiB disk never filled up");
    };
    assert!(
        refusal.starts_with("452 4.3.1 Insufficient system storage"),
        "{refusal}"
    );
    assert!(accepted > 0);
    assert_eq!(s.cmd("NOOP").0, 250, "the session goes on");

    roost.kill9();
    roost.spawn();
    assert_eq!(
        roost.inbox("alice@example.test").len(),
        accepted,
        "every acknowledged message is there"
    );
}
