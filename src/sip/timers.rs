//! RFC 3261 §17 timer values and the retransmission schedule they drive.

use std::time::{Duration, Instant};

/// T1, T2, T4 of RFC 3261 Table 4.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: timers B, F, H, J and the wait for an ACK to a 2xx.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// A message resent at T1, 2·T1, 4·T1 … capped at T2, until `deadline`
/// (timers A/B, E/F, G/H and the UAS 2xx retransmission of §13.3.1.4 all
/// share this shape). On a reliable transport nothing is resent, but the
/// deadline still applies.
#[derive(Debug, Clone)]
pub struct Retransmit {
    pub data: Vec<u8>,
    interval: Duration,
    next: Option<Instant>,
    pub deadline: Instant,
}

impl Retransmit {
    pub fn new(data: Vec<u8>, now: Instant, timers: &TimerConfig, reliable: bool) -> Self {
        Retransmit {
            data,
            interval: timers.t1,
            next: (!reliable).then_some(now + timers.t1),
            deadline: now + timers.transaction_timeout(),
        }
    }

    /// The earliest instant this needs attention.
    pub fn next_wakeup(&self) -> Instant {
        match self.next {
            Some(n) if n < self.deadline => n,
            _ => self.deadline,
        }
    }

    /// Called when `now` has reached `next_wakeup()`: true if the message is
    /// due to be sent again (and the schedule advanced), false otherwise.
    pub fn due(&mut self, now: Instant, timers: &TimerConfig) -> bool {
        match self.next {
            Some(n) if now >= n && now < self.deadline => {
                self.interval = (self.interval * 2).min(timers.t2);
                self.next = Some(n + self.interval);
                true
            }
            _ => false,
        }
    }

    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_t2_then_expires() {
        let t = TimerConfig::default();
        let start = Instant::now();
        let mut r = Retransmit::new(vec![1], start, &t, false);
        let mut sends = Vec::new();
        let mut now = start;
        while !r.expired(now) {
            now = r.next_wakeup();
            if r.due(now, &t) {
                sends.push(now - start);
            }
        }
        assert_eq!(sends[0], Duration::from_millis(500));
        assert_eq!(sends[1], Duration::from_millis(1500));
        assert_eq!(sends[2], Duration::from_millis(3500));
        assert_eq!(sends[3], Duration::from_millis(7500));
        assert_eq!(sends[4], Duration::from_millis(11500)); // capped at T2 = 4 s
        assert!(sends.iter().all(|d| *d < Duration::from_secs(32)));
        assert_eq!(now - start, Duration::from_secs(32));
    }

    #[test]
    fn reliable_never_resends() {
        let t = TimerConfig::default();
        let start = Instant::now();
        let mut r = Retransmit::new(vec![1], start, &t, true);
        assert_eq!(r.next_wakeup(), start + Duration::from_secs(32));
        assert!(!r.due(start + Duration::from_secs(1), &t));
    }
}
