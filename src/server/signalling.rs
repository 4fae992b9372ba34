//! The signalling loop: owns the sans-IO SIP endpoint, turns its events into
//! media sessions and application tasks, and carries the applications'
//! requests back to SIP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedSender};

use crate::apps;
use crate::call::{Call, CallInfo, CallSignal, Control};
use crate::media::dtmf::DtmfSource;
use crate::media::engine::{MediaEngine, MediaSession};
use crate::media::g711::G711;
use crate::media::ports::PortPool;
use crate::media::session::{MediaParams, SessionEvent};
use crate::sdp::{self, AudioCodec, Direction, LocalMedia, NegotiatedAudio, SessionDescription};
use crate::sip::transport::{Inbound, SipTransport};
use crate::sip::{CallHandle, EndReason, Endpoint, EndpointConfig, Peer, SipEvent, SipRequest};

use super::AppContext;
use super::calls::NewCall;
use super::presence::{self, Presence};
use crate::sip::mwi::Counts;

/// Per-call state the loop keeps beside the endpoint's.
struct CallControl {
    media: MediaSession,
    local: LocalMedia,
    /// The 200 OK body, kept while an answer is delayed.
    answer: Vec<u8>,
    /// What the app gets when the call is confirmed.
    pending_app: Option<PendingApp>,
    signals: Option<UnboundedSender<CallSignal>>,
    /// Whether the remote's media parameters are known (false until the
    /// ACK of a late-offer call).
    known: bool,
    /// We hung up because the far end sent no RTP (the call's outcome).
    media_timed_out: bool,
}

struct PendingApp {
    info: CallInfo,
    media_events: mpsc::UnboundedReceiver<SessionEvent>,
    route: apps::Route,
}

pub struct Signalling {
    ctx: Arc<AppContext>,
    endpoint: Endpoint,
    transport: SipTransport,
    engine: MediaEngine,
    ports: PortPool,
    calls: HashMap<CallHandle, CallControl>,
    control_tx: UnboundedSender<Control>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Registrar and message-waiting subscriptions.
    presence: Presence,
    /// Mailbox counts taken on a file thread, back to the loop.
    counts_tx: UnboundedSender<(String, Counts)>,
    counts_rx: mpsc::UnboundedReceiver<(String, Counts)>,
    /// The mailbox directory's generation the presence knows.
    mailboxes_seen: u64,
    lag: LoopLag,
}

/// How late the loop is: the longest a SIP message queued before the loop
/// took it, and the longest one turn ran. A stalled loop is what turns into
/// retransmissions and late answers under load, so it is logged (at most
/// once a second) when either passes [`LoopLag::REPORT`].
struct LoopLag {
    queued: Duration,
    turn: Duration,
    since: Instant,
}

impl LoopLag {
    const REPORT: Duration = Duration::from_millis(100);

    fn new(now: Instant) -> Self {
        LoopLag {
            queued: Duration::ZERO,
            turn: Duration::ZERO,
            since: now,
        }
    }

    fn message(&mut self, now: Instant, received: Instant) {
        self.queued = self.queued.max(now.saturating_duration_since(received));
    }

    /// Ends a loop turn; once a second, the worst queue wait and turn of
    /// that second if either passed [`LoopLag::REPORT`].
    fn turn_ended(&mut self, started: Instant, now: Instant) -> Option<(Duration, Duration)> {
        self.turn = self.turn.max(now.saturating_duration_since(started));
        if now.saturating_duration_since(self.since) < Duration::from_secs(1) {
            return None;
        }
        let worst = (self.queued, self.turn);
        *self = LoopLag::new(now);
        (worst.0 >= Self::REPORT || worst.1 >= Self::REPORT).then_some(worst)
    }
}

impl Signalling {
    pub fn new(
        ctx: Arc<AppContext>,
        transport: SipTransport,
        engine: MediaEngine,
        ports: PortPool,
    ) -> Self {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (counts_tx, counts_rx) = mpsc::unbounded_channel();
        let endpoint = Endpoint::new(EndpointConfig {
            user_agent: ctx.config.sip.user_agent.clone(),
            delegate_register_subscribe: true,
            ..EndpointConfig::default()
        });
        let mailboxes_seen = ctx.mailboxes.generation();
        let mut presence = Presence::new(&ctx.mailboxes.config(), ctx.store.root());
        presence.save_in_background(true);
        Signalling {
            mailboxes_seen,
            ctx,
            endpoint,
            transport,
            engine,
            ports,
            calls: HashMap::new(),
            control_tx,
            control_rx,
            presence,
            counts_tx,
            counts_rx,
            lag: LoopLag::new(Instant::now()),
        }
    }

    pub async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>) -> anyhow::Result<()> {
        let mut events = self.ctx.events.subscribe();
        // Lamps reflect what is on disk now, for every restored subscription.
        self.presence
            .on_start(Instant::now(), &mut self.endpoint, &self.ctx.store);
        self.flush();
        loop {
            let timeout = [self.endpoint.poll_timeout(), self.presence.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match timeout {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = inbound.recv() => {
                    let Some(m) = m else { return Ok(()) };
                    self.take(m);
                    // Take whatever else is already queued before flushing.
                    while let Ok(m) = inbound.try_recv() {
                        self.take(m);
                    }
                }
                c = self.control_rx.recv() => {
                    if let Some(c) = c {
                        self.on_control(c);
                    }
                }
                e = events.recv() => match e {
                    Ok(e) => {
                        // A message arrived, was heard, moved or deleted: relight the lamps.
                        self.presence.mailbox_changed(Instant::now(), &e.mailbox);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "message events missed; recounting every box");
                        for mb in &self.ctx.mailboxes.config().mailboxes {
                            self.presence.mailbox_changed(Instant::now(), &mb.number);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                },
                Some((mailbox, counts)) = self.counts_rx.recv() => {
                    self.presence.counted(Instant::now(), &mut self.endpoint, &mailbox, counts);
                }
                _ = sleep => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    self.presence.tick(now, &mut self.endpoint);
                    self.start_recounts(now);
                }
            }
            let started = Instant::now();
            self.sync_mailboxes();
            self.flush();
            if let Some((queued, turn)) = self.lag.turn_ended(started, Instant::now()) {
                tracing::warn!(
                    queued_ms = queued.as_millis() as u64,
                    turn_ms = turn.as_millis() as u64,
                    "signalling loop running late"
                );
            }
        }
    }

    /// Count the boxes whose lamps are due on a file thread: a listing of
    /// a full box must not hold up SIP.
    fn start_recounts(&mut self, now: Instant) {
        for mailbox in self.presence.take_recounts(now) {
            let (store, tx) = (self.ctx.store.clone(), self.counts_tx.clone());
            let job_box = mailbox.clone();
            let queued = crate::io_pool::spawn(move || {
                let counts = presence::count(&store, &job_box);
                let _ = tx.send((job_box, counts));
            });
            if let Err(e) = queued {
                // No file threads (shutting down): count here rather than
                // leave the lamp stale.
                tracing::debug!(error = %e, "counting on the signalling loop");
                let counts = presence::count(&self.ctx.store, &mailbox);
                self.presence
                    .counted(now, &mut self.endpoint, &mailbox, counts);
            }
        }
    }

    fn take(&mut self, m: Inbound) {
        let now = Instant::now();
        self.lag.message(now, m.received);
        self.endpoint.handle_message(now, m.peer, &m.data);
    }

    /// A box was created or deleted through the API: lamps and
    /// subscriptions follow (after this loop turn's events were counted).
    fn sync_mailboxes(&mut self) {
        let generation = self.ctx.mailboxes.generation();
        if generation == self.mailboxes_seen {
            return;
        }
        self.mailboxes_seen = generation;
        let boxes = self
            .ctx
            .mailboxes
            .config()
            .mailboxes
            .iter()
            .map(|m| m.number.clone())
            .collect();
        self.presence
            .set_mailboxes(Instant::now(), &mut self.endpoint, &self.ctx.store, boxes);
    }

    /// Send what the endpoint produced and act on its events, until quiet.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                if let Some(code) = t.data.strip_prefix(b"SIP/2.0 ").and_then(|r| r.get(..3)) {
                    let code = std::str::from_utf8(code).ok().and_then(|c| c.parse().ok());
                    if let Some(code) = code {
                        self.ctx.metrics.sip_response(code);
                    }
                }
                self.transport.send(t);
                progressed = true;
            }
            while let Some(e) = self.endpoint.poll_event() {
                self.on_event(e);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_control(&mut self, c: Control) {
        let now = Instant::now();
        match c {
            Control::Hangup(h) => self.endpoint.hangup(now, h),
            Control::MediaTimeout(h) => {
                if let Some(cc) = self.calls.get_mut(&h) {
                    cc.media_timed_out = true;
                }
                self.endpoint.hangup(now, h);
            }
            Control::Refer(h, target) => {
                if !self.endpoint.refer(now, h, &target)
                    && let Some(tx) = self.calls.get(&h).and_then(|c| c.signals.as_ref())
                {
                    let _ = tx.send(CallSignal::ReferResult(481));
                }
            }
            Control::Accept(h) => {
                if let Some(cc) = self.calls.get(&h) {
                    let answer = cc.answer.clone();
                    self.endpoint.accept(now, h, &answer);
                }
            }
        }
    }

    fn on_event(&mut self, e: SipEvent) {
        let now = Instant::now();
        match e {
            SipEvent::IncomingCall {
                call,
                request,
                peer,
            } => self.on_incoming(now, call, *request, peer),
            SipEvent::Confirmed { call, sdp } => self.on_confirmed(now, call, sdp),
            SipEvent::Reoffer { call, sdp } => self.on_reoffer(now, call, sdp),
            SipEvent::Info {
                call,
                content_type,
                body,
            } => {
                if let Some(cc) = self.calls.get(&call)
                    && let Some(digit) = dtmf_from_info(content_type.as_deref(), &body)
                {
                    cc.media.digit(digit, DtmfSource::SipInfo);
                }
            }
            SipEvent::Request { id, request, peer } => {
                self.presence.on_request(
                    now,
                    &mut self.endpoint,
                    id,
                    &request,
                    peer,
                    &self.ctx.store,
                );
            }
            SipEvent::RequestResult { id, status } => {
                self.presence.on_request_result(now, id, status)
            }
            SipEvent::ReferResult { call, status } => {
                self.signal(call, CallSignal::ReferResult(status))
            }
            SipEvent::Notify { call, body, .. } => {
                let frag = String::from_utf8_lossy(&body)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.signal(call, CallSignal::ReferProgress(frag));
            }
            SipEvent::Terminated { call, reason } => {
                tracing::info!(call = call.0, ?reason, "call ended");
                if let Some(mut cc) = self.calls.remove(&call) {
                    let outcome = if cc.media_timed_out {
                        "media_timeout"
                    } else {
                        end_outcome(reason)
                    };
                    self.ctx.metrics.call_ended(outcome);
                    self.ctx.calls.call_ended(now, call, outcome);
                    // Closing the session hands any recording back to the app.
                    cc.media.close();
                    if let Some(tx) = cc.signals.take()
                        && reason != EndReason::LocalBye
                    {
                        let _ = tx.send(CallSignal::Hangup);
                    }
                }
            }
        }
    }

    /// Refuse a call before it was set up (no media, no app).
    fn refuse(&mut self, now: Instant, call: CallHandle, status: u16, reason: &str) {
        self.endpoint.reject(now, call, status, reason);
        self.ctx.metrics.call_finished("rejected");
    }

    fn signal(&self, call: CallHandle, signal: CallSignal) {
        if let Some(tx) = self.calls.get(&call).and_then(|c| c.signals.as_ref()) {
            let _ = tx.send(signal);
        }
    }

    fn on_incoming(&mut self, now: Instant, call: CallHandle, req: SipRequest, peer: Peer) {
        let span = tracing::info_span!("call", call_id = %req.call_id);
        let _enter = span.enter();
        let called = req.uri_user.clone().unwrap_or_default();
        let caller = req.from_user.clone().unwrap_or_default();
        let plan = self.ctx.dialplan.current();
        // A PBX forwarding busy/no-answer says for whom (Diversion,
        // History-Info, RFC 4458): that box, whatever number was dialed.
        let diversion = crate::dialplan::diverted_target(&req.uri, &req.headers)
            .filter(|d| self.ctx.mailboxes.get(&d.mailbox).is_some());
        let Some(entry) = plan.route_call(&called, diversion) else {
            tracing::info!(%called, "no route for this number");
            self.refuse(now, call, 404, "Not Found");
            return;
        };
        if let Some(target) = plan.redirect_target(&entry, &caller, jiff::Timestamp::now()) {
            tracing::info!(%target, "redirecting (302)");
            self.endpoint.redirect(now, call, &target);
            self.ctx.metrics.call_finished("redirected");
            return;
        }
        // A deposit into no existing box (one deleted through the API, a
        // number nobody has) is refused before answering.
        if let Some(boxes) = deposit_mailboxes(&plan, &entry, &caller, jiff::Timestamp::now()) {
            let config = self.ctx.mailboxes.config();
            if !boxes.iter().any(|b| config.mailbox(b).is_some()) {
                tracing::info!(?boxes, "deposit into no existing mailbox");
                self.refuse(now, call, 404, "Not Found");
                return;
            }
        }
        let registered = self
            .presence
            .caller_mailbox_for(peer.remote, req.from_user.as_deref());
        let trusted_network = self
            .ctx
            .mailboxes
            .config()
            .login
            .trusted_networks
            .iter()
            .any(|n| n.contains(peer.remote.ip()));
        let from_box = self.ctx.mailboxes.get(&caller).map(|m| m.number);
        let (caller_box, trusted) = own_box(registered, from_box, trusted_network);
        let route = apps::Route {
            plan,
            entry,
            caller_box,
            trusted,
        };
        let offer = match req.sdp().map(SessionDescription::parse) {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                tracing::info!(error = %e, "bad SDP offer");
                self.refuse(now, call, 488, "Not Acceptable Here");
                return;
            }
            None => None,
        };
        let (socket, lease) = match self.ports.bind(peer.local.ip()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "refusing call");
                self.refuse(now, call, 503, "Service Unavailable");
                return;
            }
        };
        let local = LocalMedia {
            address: peer.local.ip(),
            rtp_port: lease.port(),
            session_id: rand::random::<u32>() as u64,
            session_version: 1,
            codecs: vec![AudioCodec::Pcmu, AudioCodec::Pcma],
            telephone_event_pt: 101,
            user_agent: self.ctx.config.sip.user_agent.clone(),
        };
        let (params, answer, codec_name) = match &offer {
            Some(offer) => match sdp::answer(offer, &local) {
                Ok((negotiated, text)) => {
                    let name = codec_name(negotiated.codec);
                    (Some(media_params(&negotiated)), text.into_bytes(), name)
                }
                Err(e) => {
                    tracing::info!(error = %e, "no common codec");
                    self.refuse(now, call, 488, "Not Acceptable Here");
                    return;
                }
            },
            // Late offer: we offer in the 200 OK, the answer comes in the ACK.
            None => (None, sdp::offer(&local).into_bytes(), "PCMU"),
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let media = match self.engine.open(socket, lease, params, events_tx) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "media engine refused a session");
                self.refuse(now, call, 503, "Service Unavailable");
                return;
            }
        };
        let info = CallInfo {
            handle: call,
            call_id: req.call_id.clone(),
            caller_number: req.from_user.clone().unwrap_or_default(),
            caller_name: req.from_display.clone(),
            called_number: called,
            codec: codec_name.to_string(),
        };
        tracing::info!(caller = %info.caller_number, called = %info.called_number, "incoming call");
        self.ctx.metrics.call_started();
        self.ctx.calls.call_started(
            now,
            NewCall {
                handle: call,
                call_id: info.call_id.clone(),
                from: info.caller_number.clone(),
                to: info.called_number.clone(),
            },
            Some(media.handle()),
        );
        self.calls.insert(
            call,
            CallControl {
                media,
                local,
                answer,
                pending_app: Some(PendingApp {
                    info,
                    media_events: events_rx,
                    route,
                }),
                signals: None,
                known: offer.is_some(),
                media_timed_out: false,
            },
        );
        let delay = self.ctx.config.sip.answer_delay_ms;
        if delay == 0 {
            let answer = self.calls[&call].answer.clone();
            self.endpoint.accept(now, call, &answer);
        } else {
            self.endpoint.ring(call);
            let tx = self.control_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let _ = tx.send(Control::Accept(call));
            });
        }
    }

    fn on_confirmed(&mut self, now: Instant, call: CallHandle, sdp: Option<String>) {
        let Some(cc) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(mut pending) = cc.pending_app.take() else {
            return;
        };
        if !cc.known {
            // Late offer: the ACK must carry the answer.
            let negotiated = sdp
                .as_deref()
                .map(SessionDescription::parse)
                .and_then(Result::ok)
                .and_then(|a| sdp::accept_answer(&a, &cc.local).ok());
            match negotiated {
                Some(n) => {
                    pending.info.codec = codec_name(n.codec).to_string();
                    cc.media.update(media_params(&n));
                    cc.known = true;
                }
                None => {
                    tracing::info!(call = call.0, "no usable answer in the ACK; hanging up");
                    self.endpoint.hangup(now, call);
                    return;
                }
            }
        }
        self.ctx.calls.call_answered(now, call);
        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        cc.signals = Some(signals_tx);
        let app_call = Call::new(
            pending.info,
            cc.media.handle(),
            pending.media_events,
            signals_rx,
            self.control_tx.clone(),
        );
        let ctx = self.ctx.clone();
        let span = tracing::info_span!("call", call_id = %app_call.info.call_id);
        tokio::spawn(tracing::Instrument::instrument(
            apps::run(pending.route, app_call, ctx),
            span,
        ));
    }

    fn on_reoffer(&mut self, now: Instant, call: CallHandle, sdp: Option<String>) {
        let Some(cc) = self.calls.get_mut(&call) else {
            self.endpoint.answer_reoffer(now, call, Err(481));
            return;
        };
        let Some(offer) = sdp.as_deref().map(SessionDescription::parse) else {
            // A re-INVITE without SDP asks us to offer (RFC 3264 §8.4 aside, we
            // re-offer what we have).
            cc.local.session_version += 1;
            let offer = sdp::offer(&cc.local);
            self.endpoint
                .answer_reoffer(now, call, Ok(offer.as_bytes()));
            return;
        };
        match offer.map_err(|_| 488).and_then(|o| {
            cc.local.session_version += 1;
            sdp::answer(&o, &cc.local).map_err(|_| 488)
        }) {
            Ok((negotiated, text)) => {
                tracing::info!(call = call.0, direction = ?negotiated.remote_direction, "media renegotiated");
                cc.media.update(media_params(&negotiated));
                cc.known = true;
                self.endpoint.answer_reoffer(now, call, Ok(text.as_bytes()));
            }
            Err(status) => self.endpoint.answer_reoffer(now, call, Err(status)),
        }
    }
}

/// The `outcome` label of `voxmail_calls_total`.
fn end_outcome(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Cancelled => "cancelled",
        EndReason::RemoteBye => "caller_hung_up",
        EndReason::LocalBye => "completed",
        EndReason::NoAck => "no_ack",
        EndReason::Rejected => "rejected",
        EndReason::Redirected => "redirected",
    }
}

fn codec_name(c: AudioCodec) -> &'static str {
    match c {
        AudioCodec::Pcmu => "PCMU",
        AudioCodec::Pcma => "PCMA",
    }
}

fn media_params(n: &NegotiatedAudio) -> MediaParams {
    MediaParams {
        codec: match n.codec {
            AudioCodec::Pcmu => G711::Pcmu,
            AudioCodec::Pcma => G711::Pcma,
        },
        payload_type: n.payload_type,
        telephone_event: n.telephone_event,
        remote: n.remote_rtp,
        send: matches!(n.local_direction, Direction::SendRecv | Direction::SendOnly)
            && n.remote_rtp.is_some(),
        // Held by a=sendonly / inactive, or by c=0.0.0.0 (RFC 2543): the
        // phone may send nothing.
        expect_media: n.remote_direction == Direction::SendRecv && n.remote_rtp.is_some(),
    }
}

/// DTMF in a SIP INFO body: `application/dtmf-relay` ("Signal=5") or
/// `application/dtmf` ("5").
fn dtmf_from_info(content_type: Option<&str>, body: &[u8]) -> Option<char> {
    let ct = content_type?.to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let value = if ct.starts_with("application/dtmf-relay") {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ct.starts_with("application/dtmf") {
        text.trim()
    } else {
        return None;
    };
    let c = match value {
        "10" => '*',
        "11" => '#',
        v => v.chars().next()?,
    };
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d').then(|| c.to_ascii_uppercase())
}

impl Drop for Signalling {
    fn drop(&mut self) {
        // Registrations and subscriptions are saved at most once a second;
        // write the last changes on the way out.
        self.presence.flush(Instant::now());
    }
}

/// When a call's flow, before anything is played, is a `voicemail` node
/// (possibly behind `goto`, `language` and `schedule` nodes): the boxes it
/// deposits into.
fn deposit_mailboxes(
    plan: &crate::dialplan::DialPlan,
    entry: &crate::dialplan::RouteMatch,
    caller: &str,
    now: jiff::Timestamp,
) -> Option<Vec<String>> {
    use crate::dialplan::NodeKind;
    let vars = crate::dialplan::model::Vars::for_call(entry, caller);
    let mut name = entry.node.as_str();
    for _ in 0..64 {
        match &plan.nodes.get(name)?.kind {
            NodeKind::Goto(g) => name = &g.target,
            NodeKind::Language(l) => name = &l.next,
            NodeKind::Schedule(s) => name = s.target_at(now),
            NodeKind::Voicemail(v) => {
                return Some(v.mailboxes.iter().map(|t| t.render(&vars)).collect());
            }
            _ => return None,
        }
    }
    None
}

/// `*98`'s box and whether the caller is trusted as its owner, from the
/// box registered at the call's address (`registered`: the From user's own
/// binding there, else any user bound there), the box the From user names
/// (`from_box`), and whether the call comes from a `[login]
/// trusted_networks` network. A From naming a box wins over an address
/// that only some other box registered from (a PBX registered as one box
/// relays every extension's calls): that box, with its PIN asked unless
/// the network is trusted.
fn own_box(
    registered: Option<String>,
    from_box: Option<String>,
    trusted_network: bool,
) -> (Option<String>, bool) {
    match (registered, from_box) {
        (Some(r), Some(f)) if r == f => (Some(r), true),
        (_, Some(f)) => (Some(f), trusted_network),
        (Some(r), None) => (Some(r), true),
        (None, None) => (None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star98_box_and_trust() {
        let s = |v: &str| Some(v.to_owned());
        // The box's own registered phone: trusted, wherever it calls from.
        assert_eq!(own_box(s("1001"), s("1001"), false), (s("1001"), true));
        // Registered under a user name that is no box number.
        assert_eq!(own_box(s("1001"), None, false), (s("1001"), true));
        // A PBX registered as 1001 relays 1002's call: 1002, PIN asked...
        assert_eq!(own_box(s("1001"), s("1002"), false), (s("1002"), false));
        // ...unless the PBX's network is trusted to name its callers.
        assert_eq!(own_box(s("1001"), s("1002"), true), (s("1002"), true));
        // Caller id alone: trusted only from a trusted network.
        assert_eq!(own_box(None, s("1002"), false), (s("1002"), false));
        assert_eq!(own_box(None, s("1002"), true), (s("1002"), true));
        assert_eq!(own_box(None, None, true), (None, false));
    }

    #[test]
    fn loop_lag_reports_the_worst_of_each_second_over_the_threshold() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut lag = LoopLag::new(t0);
        // A message that queued 150 ms, in quick turns: reported once the
        // second is over, not before.
        lag.message(t0 + ms(200), t0 + ms(50));
        assert_eq!(lag.turn_ended(t0 + ms(200), t0 + ms(201)), None);
        assert_eq!(
            lag.turn_ended(t0 + ms(1000), t0 + ms(1002)),
            Some((ms(150), ms(2)))
        );
        // The next second starts afresh: short waits are not reported.
        lag.message(t0 + ms(1500), t0 + ms(1460));
        assert_eq!(lag.turn_ended(t0 + ms(2100), t0 + ms(2110)), None);
        // A long turn alone is.
        assert_eq!(
            lag.turn_ended(t0 + ms(2900), t0 + ms(3200)),
            Some((Duration::ZERO, ms(300)))
        );
    }

    #[test]
    fn media_is_expected_only_from_a_far_end_not_holding_the_call() {
        let negotiated = |remote_direction, remote_rtp: Option<&str>| NegotiatedAudio {
            codec: AudioCodec::Pcmu,
            payload_type: 0,
            telephone_event: Some(101),
            remote_rtp: remote_rtp.map(|a| a.parse().unwrap()),
            remote_direction,
            local_direction: Direction::SendRecv,
            ptime: 20,
        };
        let addr = Some("192.0.2.7:4000");
        assert!(media_params(&negotiated(Direction::SendRecv, addr)).expect_media);
        for held in [
            Direction::SendOnly,
            Direction::Inactive,
            Direction::RecvOnly,
        ] {
            assert!(
                !media_params(&negotiated(held, addr)).expect_media,
                "{held:?}"
            );
        }
        // RFC 2543 hold: c=0.0.0.0 with sendrecv.
        assert!(!media_params(&negotiated(Direction::SendRecv, None)).expect_media);
    }

    #[test]
    fn info_dtmf_bodies() {
        assert_eq!(
            dtmf_from_info(
                Some("application/dtmf-relay"),
                b"Signal=5\r\nDuration=160\r\n"
            ),
            Some('5')
        );
        assert_eq!(
            dtmf_from_info(Some("application/dtmf-relay"), b"Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(dtmf_from_info(Some("application/dtmf"), b"11"), Some('#'));
        assert_eq!(dtmf_from_info(Some("application/dtmf"), b"*"), Some('*'));
        assert_eq!(dtmf_from_info(Some("text/plain"), b"5"), None);
        assert_eq!(
            dtmf_from_info(Some("application/dtmf-relay"), b"Signal=x"),
            None
        );
        assert_eq!(dtmf_from_info(None, b"5"), None);
    }
}
