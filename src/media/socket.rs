//! A call's RTP and RTCP sockets, watched by the reactor for reads only.
//!
//! tokio's `UdpSocket` registers with epoll for reads and writes, edge
//! triggered. Linux then calls epoll back on every datagram the socket
//! sends, as the datagram is freed and the socket has room to write again,
//! and wakes the thread parked in `epoll_wait` to report it. On loopback,
//! where a datagram is freed as it is sent, that is one reactor wakeup per
//! RTP packet: at 200 calls/s, 65,000 a second that nothing waits for
//! (perf: 6.6 % of the gateway's CPU in the wake-up under `sock_wfree`, and
//! more in the parked thread's switches). Media sends never wait for room —
//! a full buffer drops the packet, as a network would — so these sockets are
//! registered for reads only and send straight through the std socket.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A non-blocking UDP socket: `recv_from` awaits, `try_send_to` never does.
#[derive(Debug)]
pub struct MediaSocket {
    fd: AsyncFd<std::net::UdpSocket>,
}

impl MediaSocket {
    /// Takes a bound socket onto the current runtime's reactor.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<MediaSocket> {
        socket.set_nonblocking(true)?;
        // SAFETY: `register_with_interest` needs the fd to stay open and the
        // same for the `AsyncFd`'s life. The `AsyncFd` owns the socket, which
        // closes its fd only when dropped, and never hands it out by value.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
        Ok(MediaSocket {
            fd: fd.map_err(|e| e.into_parts().1)?,
        })
    }

    /// Binds `addr` (tests, tools).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<MediaSocket> {
        MediaSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// The next datagram. One task reads a socket: a second reading at the
    /// same time would not be woken (the reactor keeps one reader's waker).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polls for the next datagram. Waits through the reactor's reader
    /// slot, not a waiter added to a list and taken off again on every
    /// poll as `readable()` does: a call polls its sockets twice per packet
    /// it receives (perf, 200 calls/s: 2.2 % of the gateway's CPU in adding
    /// and removing those waiters).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            let mut ready = std::task::ready!(self.fd.poll_read_ready(cx))?;
            match ready.try_io(|fd| fd.get_ref().recv_from(buf)) {
                Ok(received) => return Poll::Ready(received),
                // Read to the end of what was ready: wait for more (the
                // readiness is cleared, so the next poll registers).
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends at once; `WouldBlock` when the buffer is full.
    pub fn try_send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
        self.fd.get_ref().send_to(buf, dest)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.fd.get_ref().local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_and_receives_datagrams() {
        let a = MediaSocket::bind("127.0.0.1:0").unwrap();
        let b = MediaSocket::bind("127.0.0.1:0").unwrap();
        let to_b = b.local_addr().unwrap();
        for i in 0..3u8 {
            assert_eq!(a.try_send_to(&[i; 12], to_b).unwrap(), 12);
        }
        let mut buf = [0u8; 64];
        for i in 0..3u8 {
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!((n, from), (12, a.local_addr().unwrap()));
            assert_eq!(buf[..n], [i; 12]);
        }
    }

    /// A receive waits for a datagram that comes later.
    #[tokio::test]
    async fn a_receive_waits_for_the_next_datagram() {
        let a = MediaSocket::bind("127.0.0.1:0").unwrap();
        let b = std::sync::Arc::new(MediaSocket::bind("127.0.0.1:0").unwrap());
        let to_b = b.local_addr().unwrap();
        let receiver = b.clone();
        let received = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            receiver
                .recv_from(&mut buf)
                .await
                .map(|(n, _)| buf[..n].to_vec())
        });
        tokio::task::yield_now().await;
        a.try_send_to(b"late", to_b).unwrap();
        assert_eq!(received.await.unwrap().unwrap(), b"late");
    }
}
