//! Where a replay's datagrams travel: UDP sockets, or an in-memory network
//! that lets the engine's tests run on paused time.
//!
//! On paused time tokio moves its clock to the next timer whenever every
//! task waits. A loopback datagram is seen only when the I/O driver is
//! polled, and that same poll lets the clock jump: a gateway's answer
//! would race the caller's Timer A. A datagram in memory wakes its reader
//! at once, so the clock moves only when nothing is left to deliver, and a
//! test reads exact times (a retransmission at 500 ms, a hang-up 1 s after
//! the script's end) in no wall-clock time.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The network a replay binds its sockets on.
#[derive(Clone, Debug, Default)]
pub enum Net {
    /// Real UDP sockets (the tool's only network).
    #[default]
    Udp,
    /// Memory, for tests: see [`MemoryNet`].
    Memory(MemoryNet),
}

impl Net {
    /// A socket bound to `addr` (port 0: any free port).
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<Socket> {
        match self {
            Net::Udp => UdpSocket::bind(addr).await.map(Socket::Udp),
            Net::Memory(net) => net.bind(addr).map(Socket::Memory),
        }
    }
}

/// A datagram socket of a [`Net`].
#[derive(Debug)]
pub enum Socket {
    Udp(UdpSocket),
    Memory(MemorySocket),
}

impl Socket {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Socket::Udp(s) => s.local_addr(),
            Socket::Memory(s) => Ok(s.local),
        }
    }

    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            Socket::Udp(s) => s.send_to(buf, to).await,
            Socket::Memory(s) => Ok(s.send_to(buf, to)),
        }
    }

    /// Cancel-safe, as the engine's `select!` needs: a datagram is taken
    /// only when the future completes.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Socket::Udp(s) => s.recv_from(buf).await,
            Socket::Memory(s) => s.recv_from(buf).await,
        }
    }
}

type Datagram = (Vec<u8>, SocketAddr);

/// Sockets that hand datagrams to each other through channels: as UDP on
/// loopback (a datagram to an address nobody holds is dropped; a long one
/// is cut to the reader's buffer), without the kernel.
#[derive(Clone, Debug, Default)]
pub struct MemoryNet {
    sockets: Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Datagram>>>>,
}

impl MemoryNet {
    /// Ports handed out for port 0, from here up.
    const FIRST_PORT: u16 = 20_000;

    pub fn new() -> MemoryNet {
        MemoryNet::default()
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<MemorySocket> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        let local = if addr.port() != 0 {
            if sockets.contains_key(&addr) {
                return Err(io::ErrorKind::AddrInUse.into());
            }
            addr
        } else {
            (Self::FIRST_PORT..=u16::MAX)
                .map(|port| SocketAddr::new(addr.ip(), port))
                .find(|a| !sockets.contains_key(a))
                .ok_or(io::ErrorKind::AddrNotAvailable)?
        };
        let (tx, rx) = mpsc::unbounded_channel();
        sockets.insert(local, tx);
        Ok(MemorySocket {
            net: self.clone(),
            local,
            inbox: tokio::sync::Mutex::new(rx),
        })
    }
}

/// A socket of a [`MemoryNet`]; its address is free again when it drops.
#[derive(Debug)]
pub struct MemorySocket {
    net: MemoryNet,
    local: SocketAddr,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Datagram>>,
}

impl MemorySocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> usize {
        let sockets = self.net.sockets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(peer) = sockets.get(&to) {
            let _ = peer.send((buf.to_vec(), self.local));
        }
        buf.len()
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut inbox = self.inbox.lock().await;
        let (datagram, from) = inbox.recv().await.ok_or(io::ErrorKind::ConnectionAborted)?;
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok((n, from))
    }
}

impl Drop for MemorySocket {
    fn drop(&mut self) {
        let mut sockets = self.net.sockets.lock().unwrap_or_else(|e| e.into_inner());
        sockets.remove(&self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_sockets_deliver_drop_strays_and_free_their_address() {
        let net = Net::Memory(MemoryNet::new());
        let any = "127.0.0.1:0".parse().unwrap();
        let a = net.bind(any).await.unwrap();
        let b = net.bind(any).await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_ne!(a_addr, b_addr);
        assert_eq!(a.send_to(b"hello", b_addr).await.unwrap(), 5);
        // To nobody: sent, and lost, as UDP would.
        a.send_to(b"lost", "127.0.0.9:9".parse().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(b.recv_from(&mut buf).await.unwrap(), (3, a_addr));
        assert_eq!(&buf, b"hel");
        assert!(matches!(
            net.bind(b_addr).await.map(|_| ()).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        ));
        drop(b);
        assert_eq!(
            net.bind(b_addr).await.unwrap().local_addr().unwrap(),
            b_addr
        );
    }
}
