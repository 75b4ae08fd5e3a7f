//! The RTP port pool: one even port per call from a configured range and
//! the odd port above it for RTCP, both bound on demand, released when the
//! [`RtpPort`] guard drops. Ports another process holds are skipped, so
//! several gateways (or test gateways) may share a range. Ports are drawn
//! at random, so a stranger cannot guess the next call's port from the last.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use rand::Rng;

#[derive(Debug)]
struct PoolState {
    in_use: HashSet<u16>,
}

#[derive(Clone, Debug)]
pub struct PortPool {
    ip: IpAddr,
    low: u16,
    high: u16,
    state: Arc<Mutex<PoolState>>,
}

/// A bound RTP socket and the lease that returns its port to the pool.
#[derive(Debug)]
pub struct RtpPort {
    pub socket: std::net::UdpSocket,
    /// The RTCP socket, on `port + 1`.
    pub rtcp: std::net::UdpSocket,
    pub port: u16,
    pub lease: PortLease,
}

/// Holds a port out of the pool until dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: PortPool,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.state.lock() {
            s.in_use.remove(&self.port);
        }
    }
}

impl PortPool {
    /// `low..=high`; only even ports are handed out.
    pub fn new(ip: IpAddr, low: u16, high: u16) -> PortPool {
        let first = low + (low % 2);
        PortPool {
            ip,
            low: first,
            high,
            state: Arc::new(Mutex::new(PoolState {
                in_use: HashSet::new(),
            })),
        }
    }

    pub fn in_use(&self) -> usize {
        self.state.lock().map_or(0, |s| s.in_use.len())
    }

    /// Binds a free even port drawn at random: from a random slot of the
    /// range, the first free one at or after it (wrapping round).
    pub fn allocate(&self) -> io::Result<RtpPort> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("port pool lock poisoned"))?;
        // `low <= high` (the configuration refuses a range the other way).
        let slots = (u32::from(self.high).saturating_sub(u32::from(self.low))) / 2 + 1;
        let start = rand::rng().random_range(0..slots);
        for i in 0..slots {
            let slot = (start + i) % slots;
            // In the range: slot < slots, so low + 2 * slot <= high.
            let Ok(port) = u16::try_from(u32::from(self.low) + 2 * slot) else {
                continue;
            };
            if state.in_use.contains(&port) {
                continue;
            }
            let bind = |p: u16| std::net::UdpSocket::bind(SocketAddr::new(self.ip, p));
            let (socket, rtcp) = (bind(port), bind(port.wrapping_add(1)));
            // Out of file descriptors is not a busy port: say so at once.
            for r in [&socket, &rtcp] {
                if let Err(e) = r
                    && crate::os::out_of_descriptors(e)
                {
                    return Err(io::Error::new(
                        e.kind(),
                        "out of file descriptors (RTP ports are not the limit)",
                    ));
                }
            }
            if let (Ok(socket), Ok(rtcp)) = (socket, rtcp) {
                socket.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                state.in_use.insert(port);
                return Ok(RtpPort {
                    socket,
                    rtcp,
                    port,
                    lease: PortLease {
                        port,
                        pool: self.clone(),
                    },
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "RTP port range exhausted",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_even_and_return_to_the_pool() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41001, 41011);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!(a.port % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port + 1);
        assert_ne!(a.port, b.port);
        assert_eq!(pool.in_use(), 2);
        drop(a);
        assert_eq!(pool.in_use(), 1);
    }

    #[test]
    fn ports_are_drawn_at_random_across_the_range() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41200, 41399);
        let mut seen = HashSet::new();
        let mut ascending = 0;
        let mut last = 0;
        for _ in 0..40 {
            let port = pool.allocate().unwrap().port;
            assert!((41200..=41398).contains(&port) && port.is_multiple_of(2));
            ascending += usize::from(port == last + 2);
            last = port;
            seen.insert(port);
        }
        // Released at once, a round-robin pool would hand out 40 ports in
        // a row; 40 draws of 100 slots give about 33 distinct ports.
        assert!(seen.len() > 20, "{seen:?}");
        assert!(ascending < 10, "ports follow each other: {ascending} of 40");
    }

    #[test]
    fn exhausted_range_is_an_error_not_a_hang() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41102, 41104);
        let held: Vec<_> = std::iter::from_fn(|| pool.allocate().ok())
            .take(5)
            .collect();
        assert!(held.len() <= 2);
        assert!(pool.allocate().is_err());
    }
}
