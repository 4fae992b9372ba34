//! Counters the server increments and `/metrics` renders in the Prometheus
//! text format. Plain atomics for what is bumped per packet; small locked
//! maps for labelled counters that change a few times per call.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crate::media::dtmf::DtmfSource;

/// Direction of RTP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpDirection {
    /// Received from the caller.
    In,
    /// Sent to the caller.
    Out,
}

/// Process-wide counters. Share one as `Arc<Metrics>`; every method takes
/// `&self` and never blocks for long.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    messages_recorded: AtomicU64,
    active_calls: AtomicI64,
    rtp_in: AtomicU64,
    rtp_out: AtomicU64,
    rtp_lost: AtomicU64,
    media_late_ticks: AtomicU64,
    playback_underruns: AtomicU64,
    calls: Mutex<BTreeMap<String, u64>>,
    sip_responses: Mutex<BTreeMap<u16, u64>>,
    dtmf: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, n: u64) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(key).or_insert(0) += n;
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            messages_recorded: AtomicU64::new(0),
            active_calls: AtomicI64::new(0),
            rtp_in: AtomicU64::new(0),
            rtp_out: AtomicU64::new(0),
            rtp_lost: AtomicU64::new(0),
            media_late_ticks: AtomicU64::new(0),
            playback_underruns: AtomicU64::new(0),
            calls: Mutex::new(BTreeMap::new()),
            sip_responses: Mutex::new(BTreeMap::new()),
            // Every source from the start, so a scraper sees zeros rather
            // than missing series.
            dtmf: Mutex::new(
                DtmfSource::ALL
                    .iter()
                    .map(|s| (s.label().to_owned(), 0))
                    .collect(),
            ),
        }
    }

    /// A message was saved into a mailbox.
    pub fn message_recorded(&self) {
        self.messages_recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// A call was answered: the active-calls gauge goes up.
    pub fn call_started(&self) {
        self.active_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A call that [`Metrics::call_started`] counted has ended with
    /// `outcome` (a short, fixed word chosen by the server, e.g.
    /// `message_left`, `no_message`, `failed`): the gauge goes down and
    /// `voxmail_calls_total{outcome}` up.
    pub fn call_ended(&self, outcome: &str) {
        self.active_calls.fetch_sub(1, Ordering::Relaxed);
        self.call_finished(outcome);
    }

    /// Counts a call in `voxmail_calls_total{outcome}` without touching the
    /// gauge (calls rejected before being answered).
    pub fn call_finished(&self, outcome: &str) {
        bump(&self.calls, outcome.to_owned(), 1);
    }

    /// `n` RTP packets received or sent.
    pub fn rtp_packets(&self, direction: RtpDirection, n: u64) {
        let c = match direction {
            RtpDirection::In => &self.rtp_in,
            RtpDirection::Out => &self.rtp_out,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` RTP packets declared lost by a jitter buffer.
    pub fn rtp_lost(&self, n: u64) {
        self.rtp_lost.fetch_add(n, Ordering::Relaxed);
    }

    /// The media workers' count of 20 ms ticks that started late (a worker
    /// overloaded or descheduled): the first sign of media overload.
    pub fn set_media_late_ticks(&self, total: u64) {
        self.media_late_ticks.store(total, Ordering::Relaxed);
    }

    /// The media workers' count of 20 ms frames of streamed messages
    /// (retrieval playback) that were not read from disk in time.
    pub fn set_playback_underruns(&self, total: u64) {
        self.playback_underruns.store(total, Ordering::Relaxed);
    }

    /// A SIP response we sent, by status code.
    pub fn sip_response(&self, code: u16) {
        bump(&self.sip_responses, code, 1);
    }

    /// A DTMF digit detected, by source label (`rfc4733`, `sip_info`, `inband`).
    pub fn dtmf(&self, source: &str) {
        bump(&self.dtmf, source.to_owned(), 1);
    }

    /// `n` DTMF digits from `source`. The call registry's once-a-second
    /// sweep adds what each media session counted (every digit, including
    /// those that barged into a prompt).
    pub fn dtmf_digits(&self, source: DtmfSource, n: u64) {
        bump(&self.dtmf, source.label().to_owned(), n);
    }

    /// Calls in progress now.
    pub fn active_calls(&self) -> i64 {
        self.active_calls.load(Ordering::Relaxed)
    }

    /// Everything in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, kind: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |v: String| vec![(String::new(), v)];
        counter(
            "voxmail_messages_recorded_total",
            "Messages saved into mailboxes.",
            "counter",
            &plain(self.messages_recorded.load(Ordering::Relaxed).to_string()),
        );
        counter(
            "voxmail_active_calls",
            "Calls in progress.",
            "gauge",
            &plain(self.active_calls().to_string()),
        );
        counter(
            "voxmail_calls_total",
            "Finished calls by outcome.",
            "counter",
            &labelled("outcome", &self.calls),
        );
        counter(
            "voxmail_rtp_packets_total",
            "RTP packets by direction.",
            "counter",
            &[
                (
                    "{direction=\"in\"}".to_owned(),
                    self.rtp_in.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "{direction=\"out\"}".to_owned(),
                    self.rtp_out.load(Ordering::Relaxed).to_string(),
                ),
            ],
        );
        counter(
            "voxmail_rtp_packets_lost_total",
            "RTP packets declared lost by the jitter buffers.",
            "counter",
            &plain(self.rtp_lost.load(Ordering::Relaxed).to_string()),
        );
        counter(
            "voxmail_media_late_ticks_total",
            "Media ticks (20 ms) that started late.",
            "counter",
            &plain(self.media_late_ticks.load(Ordering::Relaxed).to_string()),
        );
        counter(
            "voxmail_playback_underruns_total",
            "20 ms frames of messages played from their files that were not read in time (sent as silence).",
            "counter",
            &plain(self.playback_underruns.load(Ordering::Relaxed).to_string()),
        );
        counter(
            "voxmail_sip_responses_total",
            "SIP responses sent by status code.",
            "counter",
            &labelled("code", &self.sip_responses),
        );
        counter(
            "voxmail_dtmf_total",
            "DTMF digits detected by source.",
            "counter",
            &labelled("source", &self.dtmf),
        );
        counter(
            "voxmail_uptime_seconds",
            "Seconds since the process started.",
            "gauge",
            &plain(format!("{:.3}", self.started.elapsed().as_secs_f64())),
        );
        out
    }
}

fn labelled<K: ToString + Ord>(
    label: &str,
    map: &Mutex<BTreeMap<K, u64>>,
) -> Vec<(String, String)> {
    let m = map.lock().unwrap_or_else(|p| p.into_inner());
    m.iter()
        .map(|(k, v)| {
            (
                format!("{{{label}=\"{}\"}}", escape_label(&k.to_string())),
                v.to_string(),
            )
        })
        .collect()
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let m = Metrics::new();
        m.call_started();
        m.call_started();
        m.call_ended("message_left");
        m.call_finished("rejected");
        m.message_recorded();
        m.rtp_packets(RtpDirection::In, 50);
        m.rtp_packets(RtpDirection::Out, 49);
        m.rtp_lost(1);
        m.set_playback_underruns(4);
        m.sip_response(200);
        m.sip_response(200);
        m.sip_response(486);
        m.dtmf("rfc4733");
        m.dtmf_digits(DtmfSource::SipInfo, 3);
        m.dtmf_digits(DtmfSource::Rfc4733, 2);
        m.dtmf("we\"ird\\");
        let text = m.render();
        for line in [
            "voxmail_messages_recorded_total 1",
            "voxmail_active_calls 1",
            "voxmail_calls_total{outcome=\"message_left\"} 1",
            "voxmail_calls_total{outcome=\"rejected\"} 1",
            "voxmail_rtp_packets_total{direction=\"in\"} 50",
            "voxmail_rtp_packets_total{direction=\"out\"} 49",
            "voxmail_rtp_packets_lost_total 1",
            "voxmail_playback_underruns_total 4",
            "voxmail_sip_responses_total{code=\"200\"} 2",
            "voxmail_sip_responses_total{code=\"486\"} 1",
            "voxmail_dtmf_total{source=\"rfc4733\"} 3",
            "voxmail_dtmf_total{source=\"sip_info\"} 3",
            "voxmail_dtmf_total{source=\"inband\"} 0",
            "voxmail_dtmf_total{source=\"we\\\"ird\\\\\"} 1",
            "# TYPE voxmail_active_calls gauge",
            "# TYPE voxmail_calls_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
