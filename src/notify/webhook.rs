//! Webhooks: every event POSTed as JSON to each `[[webhook]]`, signed with
//! HMAC-SHA256 of the body, retried with exponential backoff.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::WebhookConfig;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Voxmail-Signature";
/// The header carrying the event name, for receivers that route on it.
pub const EVENT_HEADER: &str = "X-Voxmail-Event";

/// How often and how patiently a delivery is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled before each next one.
    pub first_delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// One try and three retries, 1 s, 2 s and 4 s apart.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `attempt` (0-based; 0 waits nothing).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        self.first_delay
            .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{url}: gave up after {attempts} attempts, last: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: String,
    },
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a signature header value in constant time, as a receiver should.
pub fn verify_signature(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(sig) = unhex(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// POSTs `body` to the hook until it answers 2xx, at most
/// `policy.attempts` times. Returns the number of tries it took.
pub async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    event_name: &str,
    body: bytes::Bytes,
    policy: &RetryPolicy,
) -> Result<u32, WebhookError> {
    let sig = signature(&hook.secret, &body);
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for attempt in 0..attempts {
        tokio::time::sleep(policy.delay_before(attempt)).await;
        let sent = client
            .post(&hook.url)
            .timeout(policy.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &sig)
            .header(EVENT_HEADER, event_name)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(attempt + 1),
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(e) => last = e.to_string(),
        }
        tracing::debug!(url = %hook.url, attempt = attempt + 1, error = %last, "webhook delivery failed");
    }
    Err(WebhookError::GaveUp {
        url: hook.url.clone(),
        attempts,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_signature(
            "Jefe",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature(
            "Jefe",
            b"what do ya want for nothing!",
            &sig
        ));
        assert!(!verify_signature(
            "jefe",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_signature("Jefe", b"x", "sha1=00"));
        assert!(!verify_signature("Jefe", b"x", "sha256=zz"));
        assert!(!verify_signature("Jefe", b"x", "sha256=abc"));
    }

    #[test]
    fn backoff_doubles() {
        let p = RetryPolicy::default();
        let d: Vec<u64> = (0..4).map(|a| p.delay_before(a).as_secs()).collect();
        assert_eq!(d, [0, 1, 2, 4]);
        // Absurd attempt numbers saturate instead of overflowing.
        assert!(p.delay_before(200) >= Duration::from_secs(1 << 20));
    }
}
