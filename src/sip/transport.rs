//! UDP and TCP for SIP: the thin tokio layer under the sans-IO endpoint.
//!
//! Every complete message (a datagram, or a frame cut from a TCP stream by
//! Content-Length) becomes an [`Inbound`]; [`SipTransport::send`] routes a
//! [`Transmit`] back by its peer: UDP to the address, TCP to the connection
//! it came from.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::endpoint::{Peer, Transmit, TransportKind};
use super::frame::{self, Rejection};

/// A message that arrived.
#[derive(Debug)]
pub struct Inbound {
    pub peer: Peer,
    pub data: Vec<u8>,
    /// When the transport read it, so the signalling loop can tell how
    /// long it queued.
    pub received: Instant,
}

#[derive(Clone)]
pub struct SipTransport {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    connections: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>>>,
    /// Our address as seen by a remote IP, when we listen on a wildcard.
    local_ip_cache: Arc<Mutex<HashMap<IpAddr, IpAddr>>>,
    public: Option<IpAddr>,
}

impl SipTransport {
    /// Bind UDP and TCP on the same address (port 0 picks one free for both)
    /// and start receiving. Messages go to `inbound`.
    pub async fn bind(
        listen: SocketAddr,
        public: Option<IpAddr>,
        inbound: mpsc::Sender<Inbound>,
    ) -> io::Result<SipTransport> {
        let (udp, tcp) = bind_pair(listen).await?;
        widen_receive_buffer(&udp);
        let local = udp.local_addr()?;
        let transport = SipTransport {
            udp: Arc::new(udp),
            local,
            connections: Arc::new(Mutex::new(HashMap::new())),
            local_ip_cache: Arc::new(Mutex::new(HashMap::new())),
            public,
        };
        tokio::spawn(transport.clone().udp_loop(inbound.clone()));
        tokio::spawn(transport.clone().tcp_accept_loop(tcp, inbound));
        Ok(transport)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address a peer should use to reach us: the public address if
    /// configured, the listen address if specific, else the address the
    /// kernel would route from towards that peer.
    pub fn local_for(&self, remote: SocketAddr) -> SocketAddr {
        if let Some(ip) = self.public {
            return SocketAddr::new(ip, self.local.port());
        }
        if !self.local.ip().is_unspecified() {
            return self.local;
        }
        let ip = {
            let mut cache = self.local_ip_cache.lock().expect("cache lock");
            *cache
                .entry(remote.ip())
                .or_insert_with(|| route_source(remote).unwrap_or(self.local.ip()))
        };
        SocketAddr::new(ip, self.local.port())
    }

    pub fn send(&self, t: Transmit) {
        match t.peer.transport {
            TransportKind::Udp => {
                if let Err(e) = self.udp.try_send_to(&t.data, t.peer.remote) {
                    tracing::debug!(error = %e, remote = %t.peer.remote, "udp send");
                }
            }
            TransportKind::Tcp => {
                let tx = self
                    .connections
                    .lock()
                    .expect("connections lock")
                    .get(&t.peer.connection)
                    .cloned();
                match tx {
                    Some(tx) => {
                        let _ = tx.send(t.data);
                    }
                    None => tracing::debug!(remote = %t.peer.remote, "tcp connection gone"),
                }
            }
        }
    }

    async fn udp_loop(self, inbound: mpsc::Sender<Inbound>) {
        let mut buf = vec![0u8; frame::MAX_MESSAGE_LEN + 1];
        loop {
            let (n, remote) = match self.udp.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux.
                    tracing::trace!(error = %e, "udp receive");
                    continue;
                }
            };
            let data = &buf[..n];
            if data.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // keep-alive
            }
            let peer = Peer {
                transport: TransportKind::Udp,
                remote,
                local: self.local_for(remote),
                connection: 0,
            };
            if inbound
                .send(Inbound {
                    peer,
                    data: data.to_vec(),
                    received: Instant::now(),
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }

    async fn tcp_accept_loop(self, listener: TcpListener, inbound: mpsc::Sender<Inbound>) {
        let ids = AtomicU64::new(1);
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let id = ids.fetch_add(1, Ordering::Relaxed);
            let local = stream.local_addr().unwrap_or(self.local);
            let local = if self.public.is_some() {
                self.local_for(remote)
            } else {
                local
            };
            tokio::spawn(self.clone().tcp_connection(
                stream,
                Peer {
                    transport: TransportKind::Tcp,
                    remote,
                    local,
                    connection: id,
                },
                inbound.clone(),
            ));
        }
    }

    async fn tcp_connection(self, stream: TcpStream, peer: Peer, inbound: mpsc::Sender<Inbound>) {
        let (mut reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        self.connections
            .lock()
            .expect("connections lock")
            .insert(peer.connection, tx);
        let write_task = tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if writer.write_all(&data).await.is_err() {
                    break;
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
                match frame::stream_frame_len(&buf) {
                    Ok(Some(len)) => {
                        let data = buf.split_to(len);
                        let start = data
                            .iter()
                            .position(|&b| b != b'\r' && b != b'\n')
                            .unwrap_or(data.len());
                        if start < data.len()
                            && inbound
                                .send(Inbound {
                                    peer,
                                    data: data[start..].to_vec(),
                                    received: Instant::now(),
                                })
                                .await
                                .is_err()
                        {
                            break 'read;
                        }
                    }
                    Ok(None) => break,
                    Err(rejection) => {
                        // Without a trustworthy Content-Length the stream
                        // cannot be resynchronised: answer if we can, close.
                        tracing::debug!(remote = %peer.remote, %rejection, "closing tcp stream");
                        if let Rejection::Respond { status, reason } = &rejection {
                            let raw = frame::read_headers(&buf);
                            if let Some(b) = super::message::ResponseBuilder::from_raw(
                                &raw,
                                peer.remote,
                                *status,
                                reason,
                            ) {
                                self.send(Transmit {
                                    peer,
                                    data: b.build(),
                                });
                            }
                        }
                        buf.advance(buf.len());
                        break 'read;
                    }
                }
            }
        }
        // Let a final error response drain before the writer goes away.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.connections
            .lock()
            .expect("connections lock")
            .remove(&peer.connection);
        write_task.abort();
    }
}

/// Bind UDP and TCP to the same port. With port 0 the kernel picks the UDP
/// port; TCP may find it taken, so retry a few times.
async fn bind_pair(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(listen).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP on one port")))
}

/// What the SIP socket asks the kernel to queue; Linux caps it at
/// `net.core.rmem_max` (208 KiB on a stock Debian, so raise that sysctl on
/// a busy server).
pub const SIP_RECEIVE_BUFFER: usize = 4 << 20;

/// The default queue (208 KiB) holds about 150 datagrams: at 200 calls a
/// second the SIP socket overflowed whenever its reader paused for a
/// fraction of a second, and every INVITE dropped there cost its caller a
/// retransmission, 0.5 s or more (seen as INVITE→200 of seconds at 4,000
/// calls). Best effort: a smaller queue still works.
fn widen_receive_buffer(socket: &UdpSocket) {
    if let Err(e) = socket2::SockRef::from(socket).set_recv_buffer_size(SIP_RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "SIP receive buffer left at the default");
    }
}

/// The local IP the kernel routes from towards `remote` (no packet is sent).
fn route_source(remote: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = StdUdpSocket::bind(bind).ok()?;
    s.connect(remote).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sip_socket_asks_for_a_large_receive_queue() {
        let (tx, _rx) = mpsc::channel(1);
        let t = SipTransport::bind("127.0.0.1:0".parse().unwrap(), None, tx)
            .await
            .unwrap();
        // Linux reports twice what was granted, and grants at most rmem_max.
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(212_992);
        let got = socket2::SockRef::from(&*t.udp).recv_buffer_size().unwrap();
        assert!(
            got >= 2 * SIP_RECEIVE_BUFFER.min(max),
            "receive queue {got} bytes, rmem_max {max}"
        );
    }
}
