//! The SIP transport shell (RFC 3261 §18): UDP and TCP on one port.
//!
//! Readers turn datagrams and Content-Length–framed stream messages into
//! `(Flow, Bytes)` for the endpoint task; [`TransportHandle::send`] writes
//! back along a flow. A TCP connection that sends an unframeable stream is
//! closed. Nothing here interprets SIP beyond framing.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::dialog::{ConnId, Flow, Transport};
use super::message::frame_len;

/// Inbound messages for the endpoint task.
pub type Inbound = mpsc::Receiver<(Flow, Bytes)>;

/// The bound SIP sockets.
pub struct SipSockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl SipSockets {
    /// Binds UDP and TCP on the same address. With port 0 the kernel picks a
    /// UDP port and TCP takes the same one (retried if that port is busy).
    pub async fn bind(addr: SocketAddr) -> io::Result<SipSockets> {
        let mut last_err = None;
        for _ in 0..32 {
            let udp = UdpSocket::bind(addr).await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => return Ok(SipSockets { udp, tcp }),
                Err(e) if addr.port() == 0 => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no port free for UDP and TCP")))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Sends along flows; cheap to clone.
#[derive(Clone)]
pub struct TransportHandle {
    udp: Arc<UdpSocket>,
    conns: Arc<Mutex<HashMap<ConnId, mpsc::Sender<Bytes>>>>,
}

impl TransportHandle {
    pub async fn send(&self, flow: Flow, bytes: Bytes) {
        match flow.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.send_to(&bytes, flow.remote).await {
                    tracing::debug!(remote = %flow.remote, %e, "SIP send failed");
                }
            }
            Transport::Tcp(id) => {
                let tx = self.conns.lock().ok().and_then(|m| m.get(&id).cloned());
                match tx {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            tracing::debug!(remote = %flow.remote, "TCP connection gone or full");
                        }
                    }
                    None => tracing::debug!(remote = %flow.remote, "TCP connection closed"),
                }
            }
        }
    }
}

/// Starts the readers; returns the sending handle and the inbound stream.
pub fn spawn(sockets: SipSockets) -> (TransportHandle, Inbound) {
    let (in_tx, in_rx) = mpsc::channel(4096);
    let udp = Arc::new(sockets.udp);
    let handle = TransportHandle {
        udp: udp.clone(),
        conns: Arc::new(Mutex::new(HashMap::new())),
    };
    tokio::spawn(udp_reader(udp, in_tx.clone()));
    tokio::spawn(tcp_acceptor(sockets.tcp, handle.conns.clone(), in_tx));
    (handle, in_rx)
}

async fn udp_reader(udp: Arc<UdpSocket>, in_tx: mpsc::Sender<(Flow, Bytes)>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        match udp.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let flow = Flow {
                    transport: Transport::Udp,
                    remote,
                };
                if in_tx
                    .send((flow, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP port-unreachable surfaces here on some systems: keep reading.
            Err(e) => tracing::debug!(%e, "UDP receive error"),
        }
    }
}

async fn tcp_acceptor(
    listener: TcpListener,
    conns: Arc<Mutex<HashMap<ConnId, mpsc::Sender<Bytes>>>>,
    in_tx: mpsc::Sender<(Flow, Bytes)>,
) {
    let mut next_id: ConnId = 1;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(%e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        let (out_tx, out_rx) = mpsc::channel(256);
        if let Ok(mut m) = conns.lock() {
            m.insert(id, out_tx);
        }
        let flow = Flow {
            transport: Transport::Tcp(id),
            remote,
        };
        tokio::spawn(tcp_connection(
            stream,
            flow,
            out_rx,
            in_tx.clone(),
            conns.clone(),
        ));
    }
}

async fn tcp_connection(
    stream: TcpStream,
    flow: Flow,
    mut out_rx: mpsc::Receiver<Bytes>,
    in_tx: mpsc::Sender<(Flow, Bytes)>,
    conns: Arc<Mutex<HashMap<ConnId, mpsc::Sender<Bytes>>>>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match frame_len(&buf) {
                Ok(Some(len)) => {
                    let msg = buf.split_to(len).freeze();
                    if in_tx.send((flow, msg)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(remote = %flow.remote, %e, "closing unframeable TCP stream");
                    break 'read;
                }
            }
        }
    }
    if let Transport::Tcp(id) = flow.transport
        && let Ok(mut m) = conns.lock()
    {
        m.remove(&id);
    }
    writer_task.abort();
}
