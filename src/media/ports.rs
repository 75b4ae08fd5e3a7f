//! The RTP port pool: one even port per call from a configured range and
//! the odd port above it for RTCP, both bound on demand, released when the
//! [`RtpPort`] guard drops. Ports another process holds are skipped, so
//! several gateways (or test gateways) may share a range.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct PoolState {
    next: u16,
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
                next: first,
                in_use: HashSet::new(),
            })),
        }
    }

    pub fn in_use(&self) -> usize {
        self.state.lock().map_or(0, |s| s.in_use.len())
    }

    /// Binds the next free even port, round-robin through the range.
    pub fn allocate(&self) -> io::Result<RtpPort> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("port pool lock poisoned"))?;
        let slots = (u32::from(self.high) - u32::from(self.low)) / 2 + 1;
        for _ in 0..slots {
            let port = state.next;
            state.next = if u32::from(port) + 2 > u32::from(self.high) {
                self.low
            } else {
                port + 2
            };
            if state.in_use.contains(&port) {
                continue;
            }
            let bind = |p: u16| std::net::UdpSocket::bind(SocketAddr::new(self.ip, p));
            if let (Ok(socket), Ok(rtcp)) = (bind(port), bind(port.wrapping_add(1))) {
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
    fn exhausted_range_is_an_error_not_a_hang() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41102, 41104);
        let held: Vec<_> = std::iter::from_fn(|| pool.allocate().ok())
            .take(5)
            .collect();
        assert!(held.len() <= 2);
        assert!(pool.allocate().is_err());
    }
}
