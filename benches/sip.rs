//! SIP signalling costs on a realistic INVITE (a softphone's, with SDP):
//! raw inspection, full parse, the endpoint's whole INVITE → 100 Trying path,
//! and building a 200 OK with SDP.
//!
//! `cargo bench --bench sip` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voxmail::sip::frame;
use voxmail::sip::message::ResponseBuilder;
use voxmail::sip::{Endpoint, EndpointConfig, Peer, SipEvent, SipRequest, TransportKind};

const SDP: &str = "v=0\r\n\
o=Z 1718094762148 1 IN IP4 192.168.1.50\r\n\
s=Z\r\n\
c=IN IP4 192.168.1.50\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// A Zoiper-like INVITE; `n` makes the branch, tag and Call-ID unique.
fn invite(n: u64) -> Vec<u8> {
    format!(
        "INVITE sip:1001@192.168.1.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.50:52634;branch=z9hG4bK-524287-1---{n:016x};rport\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:2000@192.168.1.50:52634;transport=UDP>\r\n\
         To: <sip:1001@192.168.1.10>\r\n\
         From: \"Alice Example\" <sip:2000@192.168.1.10>;tag={n:08x}\r\n\
         Call-ID: NjE3ZmQ4YjY0ZGQ2ZTY3ZTRkNDhiMmQ2ZTY4{n:012x}\r\n\
         CSeq: 1 INVITE\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
         Content-Type: application/sdp\r\n\
         Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
         User-Agent: Z 5.6.6 v2.10.20.3\r\n\
         Allow-Events: presence, kpml, talk, as-feature-event\r\n\
         Content-Length: {}\r\n\
         \r\n\
         {SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        remote: "192.168.1.50:52634".parse().unwrap(),
        local: "192.168.1.10:5060".parse().unwrap(),
        connection: 0,
    }
}

fn bench_sip(c: &mut Criterion) {
    let msg = invite(1);
    let len = msg.len() as u64;
    assert!((850..=1000).contains(&len), "INVITE is {len} bytes");
    let source: SocketAddr = peer().remote;

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Bytes(len));

    // (a) Raw checks and framing only.
    assert!(frame::inspect(&msg).is_ok());
    g.bench_function("inspect_invite", |b| {
        b.iter(|| frame::inspect(black_box(&msg)).is_ok())
    });

    // (b) The full parse into our SipRequest.
    let req = SipRequest::parse(&msg).expect("the INVITE parses");
    assert!(req.sdp().is_some());
    g.bench_function("parse_invite", |b| {
        b.iter(|| SipRequest::parse(black_box(&msg)).unwrap())
    });

    // (c) The endpoint's whole path for a new INVITE: inspect, parse,
    // transaction and dialog bookkeeping, 100 Trying, IncomingCall event.
    // Messages carry distinct branches and Call-IDs; the endpoint is
    // replaced (outside the timing) every CALLS_PER_ENDPOINT messages so its
    // maps stay the size of a busy but bounded server.
    const CALLS_PER_ENDPOINT: usize = 64;
    let invites: Vec<Vec<u8>> = (0..CALLS_PER_ENDPOINT as u64)
        .map(|n| invite(1000 + n))
        .collect();
    {
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_message(Instant::now(), peer(), &invites[0]);
        let t = ep.poll_transmit().expect("a response");
        assert!(t.data.starts_with(b"SIP/2.0 100 Trying\r\n"));
        assert!(matches!(
            ep.poll_event(),
            Some(SipEvent::IncomingCall { .. })
        ));
    }
    g.bench_function("endpoint_new_invite_to_100_trying", |b| {
        b.iter_custom(|iters| {
            let now = Instant::now();
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let mut ep = Endpoint::new(EndpointConfig::default());
                let batch = (iters - done).min(CALLS_PER_ENDPOINT as u64) as usize;
                let start = Instant::now();
                for m in &invites[..batch] {
                    ep.handle_message(now, peer(), black_box(m));
                    while let Some(t) = ep.poll_transmit() {
                        black_box(t);
                    }
                    while let Some(e) = ep.poll_event() {
                        black_box(e);
                    }
                }
                total += start.elapsed();
                done += batch as u64;
                drop(ep);
            }
            total
        })
    });

    // (d) 200 OK with SDP, as the endpoint builds it on accept.
    let answer = SDP
        .replace("192.168.1.50", "192.168.1.10")
        .replace("Z 1718", "voxmail 1718");
    let build = || {
        ResponseBuilder::new(black_box(&req), source, 200, "OK")
            .to_tag("5f3a9c0e12d4b7a8")
            .header("Contact", "<sip:1001@192.168.1.10:5060>")
            .header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE")
            .header("Supported", "timer")
            .header("Server", "voxmail")
            .body("application/sdp", answer.as_bytes())
            .build()
    };
    g.throughput(Throughput::Bytes(build().len() as u64));
    g.bench_function("build_200_ok_with_sdp", |b| b.iter(build));
    g.finish();
}

criterion_group!(benches, bench_sip);
criterion_main!(benches);
