"""Outgoing RTP timing from a loopback capture (tcpdump -w, nanosecond
stamps): the gap between consecutive packets of each stream.

Only gaps between packets that follow each other in the stream are counted
(sequence +1 and timestamp +160, one 20 ms PCMU/PCMA frame): a planned pause
(silence suppression while a message is recorded, hold) is not jitter.
"""

import struct


def read_pcap(path):
    """Yield (time_seconds, frame_bytes) from a pcap file."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic == 0xA1B23C4D:
            endian, scale = "<", 1e-9
        elif magic == 0xA1B2C3D4:
            endian, scale = "<", 1e-6
        elif magic == 0x4D3CB2A1:
            endian, scale = ">", 1e-9
        else:
            endian, scale = ">", 1e-6
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        rec = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _ = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                return
            yield sec + frac * scale, linktype, data


def udp_payloads(path):
    """Yield (time, src_port, dst_port, payload) for UDP over IPv4."""
    for t, linktype, data in read_pcap(path):
        off = {1: 14, 113: 16}.get(linktype)  # Ethernet (Linux lo), Linux cooked (any)
        if off is None or len(data) < off + 28 or data[off] >> 4 != 4 or data[off + 9] != 17:
            continue
        u = off + (data[off] & 0x0F) * 4
        yield t, int.from_bytes(data[u:u + 2], "big"), int.from_bytes(data[u + 2:u + 4], "big"), data[u + 8:]


def rtp_packets(path):
    """Yield (time, src_port, dst_port, ssrc, seq, ts) for RTP over IPv4/UDP."""
    for t, sport, dport, r in udp_payloads(path):
        if len(r) < 12 or r[0] >> 6 != 2:
            continue
        seq, ts, ssrc = struct.unpack("!HII", r[2:12])
        yield t, sport, dport, ssrc, seq, ts


def gaps_ms(path, frame_samples=160):
    """Inter-packet gaps in ms of consecutive frames, over all streams, and
    the number of streams seen."""
    last = {}
    gaps = []
    for t, sport, dport, ssrc, seq, ts in rtp_packets(path):
        key = (sport, dport, ssrc)
        prev = last.get(key)
        if prev is not None:
            pt, pseq, pts = prev
            if seq == (pseq + 1) & 0xFFFF and ts == (pts + frame_samples) & 0xFFFFFFFF:
                gaps.append((t - pt) * 1000.0)
        last[key] = (t, seq, ts)
    return gaps, len(last)


def summary(gaps):
    if not gaps:
        return None
    s = sorted(gaps)

    def pct(p):
        return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]

    return {
        "count": len(s),
        "p50": pct(50),
        "p99": pct(99),
        "p1": pct(1),
        "max": s[-1],
        "over_40ms": sum(1 for g in s if g > 40.0),
    }
