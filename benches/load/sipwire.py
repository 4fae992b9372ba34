"""voxmail's own INVITE→200 OK time, from a loopback capture of its SIP port.

SIPp's response times include SIPp's own delay in reading the 200 OK; on
loopback a capture stamps the INVITE when SIPp sends it and the 200 when
voxmail sends it, so the difference is voxmail's share (its socket queue
included). The first INVITE and the first 200 to it of each Call-ID count.
"""

import re

import rtpgaps

CALL_ID = re.compile(rb"\r\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+)", re.IGNORECASE)
CSEQ = re.compile(rb"\r\n(?:cseq)[ \t]*:[ \t]*\d+[ \t]+([A-Z]+)", re.IGNORECASE)


def invite_to_200_ms(path, server_port):
    """Milliseconds from each call's INVITE reaching voxmail's port to
    voxmail's 200 OK, and how many INVITEs were seen."""
    invited, answered = {}, {}
    for t, sport, dport, payload in rtpgaps.udp_payloads(path):
        m = CALL_ID.search(payload)
        if not m:
            continue
        cid = m.group(1).strip()
        if dport == server_port and payload.startswith(b"INVITE "):
            invited.setdefault(cid, t)
        elif sport == server_port and payload.startswith(b"SIP/2.0 200"):
            c = CSEQ.search(payload)
            if c and c.group(1) == b"INVITE":
                answered.setdefault(cid, t)
    times = [(answered[c] - t) * 1000.0 for c, t in invited.items() if c in answered]
    return times, len(invited)
