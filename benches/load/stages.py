"""Per-call stage times of a deposit, from voxmail's log.

With `RUST_LOG=...,voxmail::server::signalling=info,voxmail::apps::deposit=debug`
voxmail logs, for each call (its Call-ID in the span), when the INVITE was
taken, when the greeting and the beep started and when recording began.
Under load these show whether a message lost its first seconds because the
application's steps ran late (CPU starvation of the control path) rather
than because of the media path.
"""

import datetime
import re

LOG_FILTER = "voxmail::server::signalling=info,voxmail::apps::deposit=debug"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"^(\S+?)Z\s.*?call_id=([^}\s]+).*?"
                  r"(incoming call|greeting starts|beep starts|recording starts)")


def stage_times(log_path):
    """{call_id: {stage: unix time}} from a voxmail log."""
    calls = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            m = LINE.search(ANSI.sub("", line))
            if m:
                t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
                calls.setdefault(m.group(2), {}).setdefault(m.group(3), t)
    return calls


def stage_delays_ms(calls):
    """Lists of milliseconds: INVITE→greeting, greeting→beep, beep→recording."""
    out = {"invite_to_greeting": [], "greeting_to_beep": [], "beep_to_recording": []}
    pairs = [("invite_to_greeting", "incoming call", "greeting starts"),
             ("greeting_to_beep", "greeting starts", "beep starts"),
             ("beep_to_recording", "beep starts", "recording starts")]
    for stages in calls.values():
        for key, a, b in pairs:
            if a in stages and b in stages:
                out[key].append((stages[b] - stages[a]) * 1000.0)
    return out
