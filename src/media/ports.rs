//! The RTP port range: one even port per call, handed out and taken back.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free RTP port in {0}-{1}")]
    Exhausted(u16, u16),
}

/// Even ports of a range (RTCP would take the odd one above). Released ports
/// go to the back of the queue, so a port is not reused while late packets
/// of its previous call may still arrive.
#[derive(Clone)]
pub struct PortPool {
    free: Arc<Mutex<VecDeque<u16>>>,
    range: (u16, u16),
}

/// A port taken from the pool; returned when dropped.
pub struct PortLease {
    port: u16,
    pool: Arc<Mutex<VecDeque<u16>>>,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.lock() {
            free.push_back(self.port);
        }
    }
}

impl PortPool {
    pub fn new(min: u16, max: u16) -> PortPool {
        let first = min + (min % 2);
        let free = (first..=max).step_by(2).collect();
        PortPool {
            free: Arc::new(Mutex::new(free)),
            range: (min, max),
        }
    }

    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Bind a UDP socket on `ip` at the next free port. Ports another
    /// program holds are skipped (and put back for later).
    pub fn bind(&self, ip: IpAddr) -> Result<(UdpSocket, PortLease), PortError> {
        let attempts = self.available();
        for _ in 0..attempts {
            let port = {
                let mut free = self
                    .free
                    .lock()
                    .map_err(|_| PortError::Exhausted(self.range.0, self.range.1))?;
                match free.pop_front() {
                    Some(p) => p,
                    None => break,
                }
            };
            let lease = PortLease {
                port,
                pool: self.free.clone(),
            };
            match UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => return Ok((socket, lease)),
                Err(_) => continue, // lease drop puts it back at the end
            }
        }
        Err(PortError::Exhausted(self.range.0, self.range.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_even_ports_and_returns_them() {
        let pool = PortPool::new(41001, 41010);
        assert_eq!(pool.available(), 5); // 41002..41010 even
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (s1, l1) = pool.bind(ip).unwrap();
        assert_eq!(l1.port() % 2, 0);
        assert_eq!(s1.local_addr().unwrap().port(), l1.port());
        assert_eq!(pool.available(), 4);
        drop((s1, l1));
        assert_eq!(pool.available(), 5);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let pool = PortPool::new(41020, 41022);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = pool.bind(ip).unwrap();
        let b = pool.bind(ip).unwrap();
        assert!(matches!(pool.bind(ip), Err(PortError::Exhausted(..))));
        drop((a, b));
    }
}
