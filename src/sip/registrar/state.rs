//! Bindings as plain data for the state file, and the clock arithmetic
//! that carries their expiry across a restart.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::endpoint::{Peer, TransportKind};

/// Saved bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistrarState {
    pub bindings: Vec<SavedBinding>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedBinding {
    pub user: String,
    pub contact: String,
    pub peer: SavedPeer,
    /// Unix seconds.
    pub expires_unix: i64,
    pub call_id: String,
    pub cseq: u32,
}

/// A [`Peer`] in a state file. Only datagram peers can be used again after
/// a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedPeer {
    /// "udp" or "tcp".
    pub transport: String,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

impl From<Peer> for SavedPeer {
    fn from(p: Peer) -> Self {
        SavedPeer {
            transport: match p.transport {
                TransportKind::Udp => "udp",
                TransportKind::Tcp => "tcp",
            }
            .to_owned(),
            remote: p.remote,
            local: p.local,
        }
    }
}

impl SavedPeer {
    /// The peer to use after a restart; `None` for a stream peer.
    pub fn to_peer(&self) -> Option<Peer> {
        self.transport.eq_ignore_ascii_case("udp").then_some(Peer {
            transport: TransportKind::Udp,
            remote: self.remote,
            local: self.local,
            connection: 0,
        })
    }
}

/// `at` (on the monotonic clock) as unix seconds, given that `now` is `wall`.
pub fn to_unix(now: Instant, wall: jiff::Timestamp, at: Instant) -> i64 {
    let ahead = at.saturating_duration_since(now).as_secs();
    let behind = now.saturating_duration_since(at).as_secs();
    wall.as_second()
        .saturating_add(i64::try_from(ahead).unwrap_or(i64::MAX))
        .saturating_sub(i64::try_from(behind).unwrap_or(i64::MAX))
}

/// Unix seconds back on the monotonic clock; `None` when already past.
pub fn from_unix(now: Instant, wall: jiff::Timestamp, unix: i64) -> Option<Instant> {
    let left = unix.checked_sub(wall.as_second())?;
    if left <= 0 {
        return None;
    }
    now.checked_add(Duration::from_secs(left as u64))
}
