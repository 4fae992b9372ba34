//! `GET /api/v1/calls` and `GET /api/v1/calls/{call_id}`: per-call media
//! statistics for load testers (admin tokens only). What SIPp cannot see
//! itself: the RTP the server received and sent by payload type, loss,
//! jitter, the DTMF digits it heard with their source, and the messages the
//! call left with their checksum. Live calls, and ended ones for a while
//! (see `server::calls`).

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Caller, Scope};
use super::{ApiError, ApiState, blocking, no_store};
use crate::media::dtmf::DtmfSource;
use crate::media::session::{PayloadCounts, SessionStats};
use crate::server::calls::CallReport;

/// Longest Call-ID accepted in a path (RFC 3261 sets none; real ones are
/// well under 100 characters).
pub const CALL_ID_MAX: usize = 256;

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    match caller.scope {
        Scope::Admin => Ok(()),
        Scope::Mailboxes(_) => Err(ApiError::forbidden("call statistics need an admin token")),
    }
}

/// A Call-ID as RFC 3261 §25.1 allows it: visible ASCII, no spaces.
fn check_call_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > CALL_ID_MAX {
        return Err(ApiError::bad_request(
            "invalid_call_id",
            format!("a Call-ID has 1 to {CALL_ID_MAX} characters"),
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_call_id",
            "a Call-ID is visible ASCII without spaces",
        ));
    }
    Ok(())
}

pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let (registry, store) = (state.calls.clone(), state.store.clone());
    let calls: Vec<Value> = blocking(move || {
        let mut reports = registry.live(Instant::now());
        for r in &mut reports {
            registry.checksum_messages(&store, r);
        }
        Ok(reports.iter().map(report_json).collect())
    })
    .await?;
    Ok(no_store(
        Json(json!({"count": calls.len(), "calls": calls})).into_response(),
    ))
}

pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(call_id): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    check_call_id(&call_id)?;
    let mut report = state
        .calls
        .get(Instant::now(), &call_id)
        .ok_or_else(|| ApiError::not_found("no live or recently ended call has this Call-ID"))?;
    let (registry, store) = (state.calls.clone(), state.store.clone());
    let report = blocking(move || {
        registry.checksum_messages(&store, &mut report);
        Ok(report)
    })
    .await?;
    Ok(no_store(Json(report_json(&report)).into_response()))
}

/// The JSON of one call (schema `Call` in the OpenAPI document).
pub fn report_json(r: &CallReport) -> Value {
    json!({
        "call_id": r.call_id,
        "from": r.from,
        "to": r.to,
        "state": r.state,
        "outcome": r.outcome,
        "started_at": r.started_at,
        "answered_at": r.answered_at,
        "ended_at": r.ended_at,
        "duration_s": round3(r.duration_s),
        "rtp": rtp_json(&r.media),
        "dtmf": r.media.dtmf_digits.as_slice().iter().map(|d| json!({
            "digit": d.digit.to_string(),
            "source": d.source.label(),
            "at_ms": d.at_ms,
        })).collect::<Vec<_>>(),
        "dtmf_by_source": DtmfSource::ALL.iter()
            .map(|s| (s.label().to_owned(), json!(r.media.dtmf_by_source[s.index()])))
            .collect::<serde_json::Map<_, _>>(),
        "messages": r.messages,
    })
}

fn rtp_json(s: &SessionStats) -> Value {
    let by_pt = |c: &PayloadCounts| -> Vec<Value> {
        c.as_slice()
            .iter()
            .map(|e| json!({"pt": e.pt, "packets": e.packets, "bytes": e.bytes}))
            .collect()
    };
    json!({
        "received": {"packets": s.packets_in, "bytes": s.bytes_in, "by_payload_type": by_pt(&s.received_by_pt)},
        "sent": {"packets": s.packets_out, "bytes": s.bytes_out, "by_payload_type": by_pt(&s.sent_by_pt)},
        "lost": s.lost,
        "ignored": s.ignored,
        "underruns": s.underruns,
        "jitter_ms": round3(s.jitter_ms()),
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_checked() {
        assert!(check_call_id("a84b4c76e66710@pc33.atlanta.com").is_ok());
        assert!(check_call_id("1-2345@127.0.0.1").is_ok());
        for bad in ["", "has space", "tab\there", "é@x"] {
            let e = check_call_id(bad).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "invalid_call_id"),
                "{bad:?}"
            );
        }
        assert!(check_call_id(&"x".repeat(CALL_ID_MAX)).is_ok());
        assert!(check_call_id(&"x".repeat(CALL_ID_MAX + 1)).is_err());
    }

    #[test]
    fn json_shape() {
        let mut media = SessionStats {
            packets_in: 3,
            ..SessionStats::default()
        };
        media.received_by_pt.add(0, 172);
        media.received_by_pt.add(0, 172);
        media.received_by_pt.add(101, 16);
        media.dtmf_by_source[DtmfSource::SipInfo.index()] = 1;
        media.dtmf_digits.push(crate::media::session::DtmfSeen {
            digit: '#',
            source: DtmfSource::SipInfo,
            at_ms: 1200,
        });
        media.jitter_q4 = 72;
        let r = CallReport {
            call_id: "c@h".into(),
            from: "5551234".into(),
            to: "1001".into(),
            state: crate::server::calls::CallState::Ended,
            started_at: jiff::Timestamp::UNIX_EPOCH,
            answered_at: None,
            ended_at: Some(jiff::Timestamp::UNIX_EPOCH),
            outcome: Some("completed"),
            duration_s: 1.23456,
            media,
            messages: vec![crate::server::calls::StoredMessage {
                mailbox: "1001".into(),
                id: "m".into(),
                audio_seconds: 2.5,
                sha256: Some("ab".into()),
                folder: crate::store::Folder::Inbox,
            }],
        };
        let j = report_json(&r);
        assert_eq!(j["state"], "ended");
        assert_eq!(j["outcome"], "completed");
        assert_eq!(j["duration_s"], 1.235);
        assert_eq!(j["started_at"], "1970-01-01T00:00:00Z");
        assert_eq!(j["answered_at"], Value::Null);
        assert_eq!(
            j["rtp"]["received"]["by_payload_type"],
            json!([{"pt": 0, "packets": 2, "bytes": 344}, {"pt": 101, "packets": 1, "bytes": 16}])
        );
        assert_eq!(j["rtp"]["jitter_ms"], 0.563);
        assert_eq!(
            j["dtmf"],
            json!([{"digit": "#", "source": "sip_info", "at_ms": 1200}])
        );
        assert_eq!(
            j["dtmf_by_source"],
            json!({"rfc4733": 0, "sip_info": 1, "inband": 0})
        );
        assert_eq!(
            j["messages"],
            json!([{"mailbox": "1001", "id": "m", "audio_seconds": 2.5, "sha256": "ab"}])
        );
    }
}
