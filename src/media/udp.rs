//! Batched UDP receive for RTP sockets: `recvmmsg(2)` with the kernel's
//! arrival timestamp of each datagram (`SO_TIMESTAMPNS`).
//!
//! Why: a media worker reads each socket every few ticks, so several
//! datagrams wait there; one system call takes them all instead of one call
//! each plus one that finds the socket empty. The kernel's timestamps keep
//! interarrival jitter exact although the datagrams are read late and
//! together. std and socket2 offer neither call; this is the small unsafe
//! shim, kept in one place.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Datagrams taken per system call: the 200 ms of 20 ms packets a
/// recording session's read finds, and reordering slack; more simply waits
/// for the next call.
pub const BATCH: usize = 16;
/// Larger than any RTP packet we accept (G.711 at 20 ms is 172 bytes).
pub const DATAGRAM_BYTES: usize = 1500;

/// Ask the kernel to timestamp arriving datagrams (nanoseconds, realtime).
pub fn enable_timestamps(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to a c_int of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One received datagram: where it came from, how long, when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub from: SocketAddr,
    pub len: usize,
    pub at: Instant,
}

/// Reusable buffers for [`ReceiveBatch::recv`]; one per worker thread.
pub struct ReceiveBatch {
    bufs: Box<[[u8; DATAGRAM_BYTES]; BATCH]>,
    addrs: [libc::sockaddr_storage; BATCH],
    // Room for one timespec control message per datagram (u64-aligned).
    controls: [[u64; 8]; BATCH],
    received: Vec<Received>,
}

impl Default for ReceiveBatch {
    fn default() -> Self {
        ReceiveBatch {
            bufs: Box::new([[0; DATAGRAM_BYTES]; BATCH]),
            // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
            addrs: unsafe { zeroed() },
            controls: [[0; 8]; BATCH],
            received: Vec::with_capacity(BATCH),
        }
    }
}

impl ReceiveBatch {
    /// Take up to [`BATCH`] queued datagrams without blocking and return how
    /// many were taken ([`ReceiveBatch::get`] reads them); 0 means nothing
    /// was queued. Datagrams from an address family we cannot represent are
    /// skipped.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.recv_from(socket, None)
    }

    /// As [`recv`](Self::recv), for a socket connected to `peer` whose queue
    /// holds nothing from before the connect: the kernel then delivers only
    /// `peer`'s datagrams, so their source is not asked for (one copy to
    /// user space and its bounds check fewer per datagram).
    pub fn recv_connected(&mut self, socket: &UdpSocket, peer: SocketAddr) -> io::Result<usize> {
        self.recv_from(socket, Some(peer))
    }

    fn recv_from(&mut self, socket: &UdpSocket, peer: Option<SocketAddr>) -> io::Result<usize> {
        self.received.clear();
        // SAFETY: mmsghdr/iovec are plain old data; every pointer set below
        // points into `self`, which outlives the call, with the lengths of
        // the buffers it points to.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovecs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovecs[i].iov_len = DATAGRAM_BYTES;
            let h = &mut msgs[i].msg_hdr;
            if peer.is_none() {
                h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
            h.msg_iov = &mut iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; 8]>() as _;
        }
        // SAFETY: `msgs` holds BATCH initialised headers (see above).
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        // The kernel's timestamps are realtime; map them onto Instant once.
        let (now, wall) = (Instant::now(), SystemTime::now());
        for (i, m) in msgs.iter().enumerate().take(n as usize) {
            let Some(from) = peer.or_else(|| socket_addr(&self.addrs[i])) else {
                continue;
            };
            let at = arrival(&m.msg_hdr)
                .and_then(|ts| wall.duration_since(ts).ok())
                .and_then(|ago| now.checked_sub(ago))
                .unwrap_or(now);
            self.received.push(Received {
                from,
                len: (m.msg_len as usize).min(DATAGRAM_BYTES),
                at,
            });
        }
        Ok(self.received.len())
    }

    /// The `i`-th datagram of the last [`ReceiveBatch::recv`] and its payload.
    pub fn get(&self, i: usize) -> (Received, &[u8]) {
        let r = self.received[i];
        (r, &self.bufs[i][..r.len])
    }
}

/// The SO_TIMESTAMPNS control message of a received header, if any.
fn arrival(h: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // bounded by msg_controllen; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return UNIX_EPOCH.checked_add(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { *(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { *(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_every_queued_datagram_in_one_call_with_its_source_and_time() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = ReceiveBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 0, "nothing queued yet");
        let before = Instant::now();
        for i in 0..3u8 {
            tx.send_to(&[i; 172], rx.local_addr().unwrap()).unwrap();
        }
        // Loopback delivery is synchronous, but allow for a slow machine.
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(&rx).unwrap();
            for i in 0..n {
                let (d, data) = batch.get(i);
                got.push((d.from, data.to_vec(), d.at));
            }
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got.len(), 3);
        for (i, (from, data, at)) in got.iter().enumerate() {
            assert_eq!(*from, tx.local_addr().unwrap());
            assert_eq!(data.len(), 172);
            assert!(data.iter().all(|b| *b == i as u8));
            // The kernel's stamp, mapped onto Instant: near the send.
            let d = at.saturating_duration_since(before);
            assert!(d < Duration::from_secs(2), "arrival {d:?} after the sends");
        }
    }

    #[test]
    fn a_connected_socket_is_read_without_asking_for_the_source() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = tx.local_addr().unwrap();
        rx.connect(peer).unwrap();
        tx.send_to(&[7; 172], rx.local_addr().unwrap()).unwrap();
        // Not from the peer: the kernel drops it.
        other.send_to(&[9; 172], rx.local_addr().unwrap()).unwrap();
        tx.send_to(&[8; 160], rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = ReceiveBatch::default();
        assert_eq!(batch.recv_connected(&rx, peer).unwrap(), 2);
        let (first, data) = batch.get(0);
        assert_eq!((first.from, data), (peer, &[7u8; 172][..]));
        let (second, data) = batch.get(1);
        assert_eq!((second.from, data), (peer, &[8u8; 160][..]));
        assert_eq!(batch.recv_connected(&rx, peer).unwrap(), 0);
    }

    #[test]
    fn more_than_a_batch_waits_for_the_next_call() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..(BATCH + 2) {
            tx.send_to(&[i as u8; 20], rx.local_addr().unwrap())
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = ReceiveBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), BATCH);
        assert_eq!(batch.get(0).1, &[0u8; 20]);
        assert_eq!(batch.recv(&rx).unwrap(), 2);
        assert_eq!(batch.get(1).1, &[(BATCH + 1) as u8; 20]);
        assert_eq!(batch.recv(&rx).unwrap(), 0);
    }
}
