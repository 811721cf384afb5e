//! Caps on simultaneous connections, per client address and in all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct ConnectionLimiter {
    per_ip: usize,
    total: usize,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Holds one connection's place; dropping it frees the place.
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    pub fn new(per_ip: usize, total: usize) -> Arc<Self> {
        Arc::new(ConnectionLimiter {
            per_ip,
            total,
            state: Mutex::new(Counts::default()),
        })
    }

    /// A permit, or None when the address or the server is at its limit.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionPermit> {
        let mut counts = self.state.lock().expect("limiter lock");
        let mine = counts.by_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.per_ip || counts.total >= self.total {
            return None;
        }
        counts.total += 1;
        counts.by_ip.insert(ip, mine + 1);
        Some(ConnectionPermit {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.limiter.state.lock().expect("limiter lock");
        counts.total -= 1;
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total() {
        let l = ConnectionLimiter::new(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let _p2 = l.try_acquire(a).unwrap();
        assert!(l.try_acquire(a).is_none(), "per-ip cap");
        let _p3 = l.try_acquire(b).unwrap();
        assert!(l.try_acquire(b).is_none(), "total cap");
        drop(p1);
        assert!(l.try_acquire(a).is_some());
    }
}
