"""A phone watching a mailbox's lamp during a load (--watch).

Subscribes to message-summary for one box on voxmail's SIP port, answers
every NOTIFY with 200 OK and keeps what they said, so that a deposit load
into a watched box (the usual case: a phone watches its own box) shows what
message-waiting costs, and whether the lamp ends on the true count.
Loopback only, one UDP socket, stopped by the run.
"""

import re
import socket
import threading
import time


class Watcher(threading.Thread):
    def __init__(self, sip_port, mailbox):
        super().__init__(daemon=True)
        self.sip = ("127.0.0.1", sip_port)
        self.mailbox = mailbox
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.subscribed = threading.Event()
        self.notifies = 0
        self.last_new = None
        self.first_notify_at = None

    def subscribe(self, timeout=5.0):
        """Send the SUBSCRIBE and wait for its 200 and first NOTIFY."""
        self.start()
        msg = (f"SUBSCRIBE sip:{self.mailbox}@127.0.0.1:{self.sip[1]} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-load-watch;rport\r\n"
               "Max-Forwards: 70\r\n"
               "From: <sip:watcher@127.0.0.1>;tag=load-watch\r\n"
               f"To: <sip:{self.mailbox}@127.0.0.1>\r\n"
               "Call-ID: load-watch@127.0.0.1\r\n"
               "CSeq: 1 SUBSCRIBE\r\n"
               f"Contact: <sip:watcher@127.0.0.1:{self.port}>\r\n"
               "Event: message-summary\r\n"
               "Accept: application/simple-message-summary\r\n"
               "Expires: 3600\r\n"
               "Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.sip)
        if not self.subscribed.wait(timeout):
            raise RuntimeError("voxmail did not accept the SUBSCRIBE of --watch")

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            head, _, body = text.partition("\r\n\r\n")
            lines = head.split("\r\n")
            if lines[0].startswith("SIP/2.0 "):
                if lines[0].split(" ")[1] == "200":
                    self.subscribed.set()
                continue
            if not lines[0].startswith("NOTIFY "):
                continue
            self.notifies += 1
            if self.first_notify_at is None:
                self.first_notify_at = time.time()
            m = re.search(r"Voice-Message:\s*(\d+)/(\d+)", body)
            if m:
                self.last_new = int(m.group(1))
            keep = [l for l in lines[1:] if re.match(r"(?i)(via|v|from|f|to|t|call-id|i|cseq):", l)]
            reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
            self.sock.sendto(reply.encode(), addr)

    def finish(self):
        self.stop = True
        self.join(timeout=2)
        self.sock.close()
