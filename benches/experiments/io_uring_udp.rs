//! Experiment, not built with voxmail: would io_uring make a media tick's
//! UDP system calls cheaper? Per-packet cost of loopback sends and reads
//! across 4,000 connected socket pairs (the calls of the load runs), plain
//! system calls against io_uring with registered sockets (one submission
//! for all of a tick's sends; one RECV per datagram, 64 in flight). Results
//! and conclusion: BENCHMARKS.md, "the kernel's floor".
//!
//! Run it as a project of its own (io-uring is not a voxmail dependency):
//!
//!     cargo new iou && cd iou && cargo add io-uring@0.7 libc@0.2
//!     cp ../voxmail/benches/experiments/io_uring_udp.rs src/main.rs
//!     cargo run --release
use io_uring::{IoUring, opcode, types};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Instant;

const N: usize = 4000;
const PKT: [u8; 172] = [0x55; 172];
const PER: usize = 10;

/// Queues PER datagrams on every pair's receiving socket (untimed).
fn queue_per_socket(pairs: &[(UdpSocket, UdpSocket)]) {
    for (tx, _) in pairs {
        for _ in 0..PER {
            tx.send(&PKT).unwrap();
        }
    }
}

fn main() {
    let pairs: Vec<(UdpSocket, UdpSocket)> = (0..N)
        .map(|_| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.connect(b.local_addr().unwrap()).unwrap();
            b.connect(a.local_addr().unwrap()).unwrap();
            b.set_nonblocking(true).unwrap();
            (a, b)
        })
        .collect();
    let mut ring = IoUring::new(8192).unwrap();
    let fds: Vec<i32> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_raw_fd(), b.as_raw_fd()])
        .collect();
    ring.submitter().register_files(&fds).unwrap();
    let mut buf = vec![[0u8; 1500]; 64];
    let drain = |pairs: &Vec<(UdpSocket, UdpSocket)>| {
        let mut b = [0u8; 1500];
        for (_, rx) in pairs {
            while rx.recv(&mut b).is_ok() {}
        }
    };
    for round in 0..5 {
        // plain sends
        let t = Instant::now();
        for (tx, _) in &pairs {
            tx.send(&PKT).unwrap();
        }
        let plain_send = t.elapsed().as_nanos() as f64 / N as f64;
        drain(&pairs);
        // io_uring sends, one submit
        let t = Instant::now();
        for i in 0..N {
            let e = opcode::Send::new(types::Fixed((2 * i) as u32), PKT.as_ptr(), PKT.len() as u32)
                .build()
                .user_data(i as u64);
            unsafe {
                ring.submission().push(&e).unwrap();
            }
        }
        ring.submit_and_wait(N).unwrap();
        let n = ring.completion().filter(|c| c.result() == 172).count();
        let uring_send = t.elapsed().as_nanos() as f64 / N as f64;
        assert_eq!(n, N);
        drain(&pairs);
        // reads: PER queued on each
        queue_per_socket(&pairs);
        let t = Instant::now();
        let mut got = 0;
        for (_, rx) in &pairs {
            let mut b = [0u8; 1500];
            while rx.recv(&mut b).is_ok() {
                got += 1;
            }
        }
        let plain_recv = t.elapsed().as_nanos() as f64 / (N * PER) as f64;
        assert_eq!(got, N * PER);
        queue_per_socket(&pairs);
        let t = Instant::now();
        let mut got = 0usize;
        for (_, rx) in &pairs {
            let mut iov: [libc::iovec; 16] = unsafe { std::mem::zeroed() };
            let mut msgs: [libc::mmsghdr; 16] = unsafe { std::mem::zeroed() };
            for k in 0..16 {
                iov[k].iov_base = buf[k].as_mut_ptr().cast();
                iov[k].iov_len = 1500;
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            let n = unsafe {
                libc::recvmmsg(
                    rx.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    16,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            got += n.max(0) as usize;
        }
        let mmsg_recv = t.elapsed().as_nanos() as f64 / (N * PER) as f64;
        assert_eq!(got, N * PER);
        queue_per_socket(&pairs);
        let t = Instant::now();
        let mut got = 0;
        // one RECV per datagram, submitted in chunks of 64 (buffer count)
        let total = N * PER;
        let mut sub = 0;
        while sub < total {
            let k = 64.min(total - sub);
            for j in 0..k {
                let i = (sub + j) / PER;
                let e =
                    opcode::Recv::new(types::Fixed((2 * i + 1) as u32), buf[j].as_mut_ptr(), 1500)
                        .build();
                unsafe {
                    ring.submission().push(&e).unwrap();
                }
            }
            ring.submit_and_wait(k).unwrap();
            got += ring.completion().filter(|c| c.result() == 172).count();
            sub += k;
        }
        let uring_recv = t.elapsed().as_nanos() as f64 / total as f64;
        assert_eq!(got, total);
        println!(
            "round {round}: send plain {plain_send:.0} ns, io_uring {uring_send:.0} ns; read per datagram: recv {plain_recv:.0} ns, recvmmsg x10 {mmsg_recv:.0} ns, io_uring recv {uring_recv:.0} ns"
        );
    }
}
