//! Durability: kill -9 the daemon in the middle of concurrent deliveries;
//! after a restart every message that got a 250 must be there.

#[path = "harness.rs"]
mod harness;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;

const SENDERS: usize = 8;

/// Sends messages until the connection breaks; records each acknowledged token.
fn sender(port: u16, id: usize, acked: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    drop(stream);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = Smtp::connect(port);
        s.cmd("EHLO load.example.org");
        for n in 0.. {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let token = format!("token-{id}-{n}");
            let body = format!(
                "Subject: {token}\r\nX-Token: {token}\r\n\r\n{}\r\n",
                "payload ".repeat(200)
            );
            let (code, _) = s.mail("load@example.org", &["alice@example.test"], &body);
            if code == 250 {
                acked.lock().unwrap().push(token);
            }
        }
    }));
    // A panic here is the connection breaking under the kill: expected.
    let _ = result;
}

#[test]
fn every_acknowledged_message_survives_kill_9() {
    let mut roost = Roost::start();
    roost.add_example_accounts();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..SENDERS)
        .map(|id| {
            let (acked, stop, port) = (acked.clone(), stop.clone(), roost.smtp);
            std::thread::spawn(move || sender(port, id, acked, stop))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    roost.kill9(); // while the senders are still sending
    let acked_at_kill: Vec<String> = acked.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} messages were acknowledged",
        acked.len()
    );
    assert_eq!(
        acked.len(),
        acked_at_kill.len(),
        "nothing can be acknowledged after the kill"
    );

    roost.spawn(); // the database must open cleanly
    let mut stored = HashSet::new();
    for uid in roost.inbox("alice@example.test") {
        let message = String::from_utf8(roost.message("alice@example.test", uid)).unwrap();
        let token = message
            .lines()
            .find_map(|l| l.strip_prefix("X-Token: "))
            .expect("every stored message is whole")
            .to_owned();
        assert!(
            message.ends_with(&format!("{}\r\n", "payload ".repeat(200))),
            "truncated message {uid}"
        );
        assert!(stored.insert(token), "message stored twice");
    }
    let missing: Vec<_> = acked.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost: {missing:?}",
        missing.len()
    );
    // Deliveries go on after the restart.
    let mut s = Smtp::connect(roost.smtp);
    s.cmd("EHLO after.example.org");
    assert_eq!(
        s.mail(
            "a@example.org",
            &["alice@example.test"],
            "Subject: after\r\n\r\nx\r\n"
        )
        .0,
        250
    );
}
