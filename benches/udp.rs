//! The kernel's share of a packet: what one RTP datagram costs to send and
//! to receive over loopback on this machine, before voxmail does anything
//! with it. The load runs' CPU per call cannot go under these times the
//! packets a call sends and receives (BENCHMARKS.md, "the floor").
//!
//! `cargo bench --bench udp` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voxmail::media::udp::{ReceiveBatch, enable_timestamps};

/// A G.711 packet at 20 ms: 12-byte header and 160 bytes of audio.
const PACKET: [u8; 172] = [0x55; 172];
/// What a recording session's read finds waiting (200 ms of packets).
const PER_READ: usize = 10;

/// Two loopback sockets connected to each other, as a latched call's are;
/// the receiver stamps arrivals, as voxmail's do.
fn pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    enable_timestamps(&b).unwrap();
    (a, b)
}

fn drain(socket: &UdpSocket, batch: &mut ReceiveBatch) -> usize {
    let mut n = 0;
    loop {
        match batch.recv(socket).unwrap() {
            0 => return n,
            k => n += k,
        }
    }
}

fn bench_udp(c: &mut Criterion) {
    let mut g = c.benchmark_group("udp_loopback");
    g.throughput(Throughput::Elements(PER_READ as u64));

    // Ten sends timed, then the receiver emptied untimed (a full queue
    // would drop, which is cheaper than delivering).
    g.bench_function("send_172B_connected_x10", |b| {
        let (tx, rx) = pair();
        let mut batch = ReceiveBatch::default();
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                for _ in 0..PER_READ {
                    black_box(tx.send(&PACKET).unwrap());
                }
                spent += t.elapsed();
                assert_eq!(drain(&rx, &mut batch), PER_READ);
            }
            spent
        });
    });

    // Ten datagrams queued untimed, then taken with one recvmmsg: asking
    // for each source (an unconnected or newly connected socket) or not.
    for connected in [false, true] {
        let name = if connected {
            "recvmmsg_172B_x10/peer_only"
        } else {
            "recvmmsg_172B_x10/with_source"
        };
        g.bench_function(name, |b| {
            let (tx, rx) = pair();
            let peer = tx.local_addr().unwrap();
            let mut batch = ReceiveBatch::default();
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..PER_READ {
                        tx.send(&PACKET).unwrap();
                    }
                    let t = Instant::now();
                    let n = if connected {
                        batch.recv_connected(&rx, peer).unwrap()
                    } else {
                        batch.recv(&rx).unwrap()
                    };
                    spent += t.elapsed();
                    assert_eq!(n, PER_READ);
                }
                spent
            });
        });
    }
    g.finish();
}

/// Calls up at once in the load runs: the same costs with the state of
/// that many sockets and their queues competing for the caches, as under
/// load (one pair's figures above are the warm-cache floor).
const SOCKETS: usize = 4000;

/// `n` connected pairs, fewer if the open-file limit cannot hold them.
fn many_pairs(n: usize) -> Vec<(UdpSocket, UdpSocket)> {
    // SAFETY: getrlimit/setrlimit with a valid struct for this process.
    let fit = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        (lim.rlim_cur as usize).saturating_sub(64) / 2
    };
    if fit < n {
        eprintln!("open-file limit: {fit} socket pairs instead of {n}");
    }
    (0..n.min(fit)).map(|_| pair()).collect()
}

fn bench_udp_many(c: &mut Criterion) {
    let pairs = many_pairs(SOCKETS);
    let mut batch = ReceiveBatch::default();
    let mut g = c.benchmark_group(format!("udp_loopback_{}_sockets", pairs.len()));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));

    // One packet on every socket in turn, as a media tick sends them.
    g.throughput(Throughput::Elements(pairs.len() as u64));
    g.bench_function("send_172B_connected_each", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                for (tx, _) in &pairs {
                    black_box(tx.send(&PACKET).unwrap());
                }
                spent += t.elapsed();
                for (_, rx) in &pairs {
                    assert_eq!(drain(rx, &mut batch), 1);
                }
            }
            spent
        });
    });

    // Ten datagrams queued on every socket, then each socket read once,
    // as a recording session's read cycle does.
    g.throughput(Throughput::Elements((pairs.len() * PER_READ) as u64));
    // Each socket's peer, known beforehand as a session's latch is.
    let peers: Vec<_> = pairs
        .iter()
        .map(|(tx, _)| tx.local_addr().unwrap())
        .collect();
    g.bench_function("recvmmsg_172B_x10_each/peer_only", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for (tx, _) in &pairs {
                    for _ in 0..PER_READ {
                        tx.send(&PACKET).unwrap();
                    }
                }
                let t = Instant::now();
                for ((_, rx), &peer) in pairs.iter().zip(&peers) {
                    black_box(batch.recv_connected(rx, peer).unwrap());
                }
                spent += t.elapsed();
            }
            spent
        });
    });
    g.finish();
}

criterion_group!(benches, bench_udp, bench_udp_many);
criterion_main!(benches);
