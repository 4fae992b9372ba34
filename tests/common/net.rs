//! Free local ports on 127.0.0.1.
//!
//! Single ports come from the kernel (bind to port 0). Blocks of consecutive
//! ports (RTP ranges for the server, SIPp's media ports) are taken below the
//! Linux ephemeral range, from a per-process starting point, and each port of
//! a block is checked to be bindable over UDP and TCP before it is handed out.

use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// A port that is currently free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind(("127.0.0.1", 0)).expect("bind udp :0");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP+TCP port found on 127.0.0.1");
}

const BLOCK_AREA_START: u32 = 20_000;
const BLOCK_AREA_END: u32 = 32_000; // below the default ephemeral range (32768+)

static NEXT_BLOCK: Mutex<Option<u32>> = Mutex::new(None);

fn port_is_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
        && UdpSocket::bind(("0.0.0.0", port)).is_ok()
        && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The first port of `len` consecutive free ports (even, as RTP likes).
/// Blocks handed out by this process never overlap.
pub fn free_port_block(len: u16) -> u16 {
    let len = u32::from(len);
    let mut next = NEXT_BLOCK.lock().unwrap();
    let area = BLOCK_AREA_END - BLOCK_AREA_START;
    let mut cursor = next.unwrap_or_else(|| {
        // Spread concurrent test processes over the area.
        BLOCK_AREA_START + (std::process::id() * 97) % (area / 2) / 2 * 2
    });
    for _ in 0..(area / 2) {
        if cursor + len >= BLOCK_AREA_END {
            cursor = BLOCK_AREA_START;
        }
        let base = cursor;
        cursor += len + (len % 2);
        if (base..base + len).all(|p| port_is_free(p as u16)) {
            *next = Some(cursor);
            return base as u16;
        }
    }
    panic!("no block of {len} free ports in {BLOCK_AREA_START}..{BLOCK_AREA_END}");
}
