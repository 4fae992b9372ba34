//! The sans-IO SIP user-agent server: transactions and dialogs for the calls
//! voxmail answers.
//!
//! Driven from outside like `quinn-proto`: feed it datagrams or stream frames
//! with [`Endpoint::handle_message`], let time pass with
//! [`Endpoint::handle_timeout`], and drain [`Endpoint::poll_transmit`] and
//! [`Endpoint::poll_event`]. The application answers calls through
//! [`Endpoint::accept`], [`Endpoint::reject`], [`Endpoint::hangup`] and
//! friends. No sockets, no clock reads, no tasks: every transaction of every
//! call lives in a few hash maps, so thousands of calls cost thousands of
//! small structs, not thousands of tasks.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::frame::{self, Rejection};
use super::message::{Method, ResponseBuilder, SipRequest, header_param, random_token};
use super::timers::{Retransmit, TimerConfig};

/// A call as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }

    fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }
}

/// Where a message came from, and so where its answers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub remote: SocketAddr,
    /// Our address as seen on this path (for Contact, Via and SDP).
    pub local: SocketAddr,
    /// The stream connection it arrived on (0 for UDP).
    pub connection: u64,
}

/// A request handed to the application, or one it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Bytes to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub peer: Peer,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent CANCEL before we answered.
    Cancelled,
    /// The caller hung up (BYE).
    RemoteBye,
    /// We hung up and the BYE completed (or timed out).
    LocalBye,
    /// We answered but no ACK came within 64·T1: we sent BYE.
    NoAck,
    /// We rejected the call.
    Rejected,
    /// We redirected the call (302) before answering.
    Redirected,
}

/// What the application hears from the endpoint.
#[derive(Debug)]
pub enum SipEvent {
    /// A new INVITE. Answer it with `ring`/`accept`/`reject`.
    IncomingCall {
        call: CallHandle,
        request: Box<SipRequest>,
        peer: Peer,
    },
    /// The ACK for our 2xx arrived; for a late offer it carries the answer.
    Confirmed {
        call: CallHandle,
        sdp: Option<String>,
    },
    /// A re-INVITE or UPDATE in the dialog. Answer with `answer_reoffer`.
    Reoffer {
        call: CallHandle,
        sdp: Option<String>,
    },
    /// An INFO in the dialog (already answered 200), e.g. DTMF relay.
    Info {
        call: CallHandle,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The final answer to our REFER (202 accepted; 408 if none came).
    ReferResult { call: CallHandle, status: u16 },
    /// A NOTIFY in the dialog (the progress of a REFER), already answered 200.
    Notify {
        call: CallHandle,
        event: Option<String>,
        body: Vec<u8>,
    },
    /// A REGISTER or SUBSCRIBE for the application; answer with `respond`.
    Request {
        id: RequestId,
        request: Box<SipRequest>,
        peer: Peer,
    },
    /// The final status of a request sent with `send_request` (408 on timeout).
    RequestResult { id: RequestId, status: u16 },
    /// The call is over; sent exactly once per call.
    Terminated { call: CallHandle, reason: EndReason },
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub user_agent: String,
    pub timers: TimerConfig,
    /// Hand REGISTER and SUBSCRIBE to the application (registrar, MWI)
    /// instead of answering 405.
    pub delegate_register_subscribe: bool,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            user_agent: "voxmail".into(),
            timers: TimerConfig::default(),
            delegate_register_subscribe: false,
        }
    }
}

const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
const SUPPORTED: &str = "timer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE received, the application has not answered finally.
    Proceeding,
    /// 2xx sent, waiting for the ACK.
    Accepted,
    /// ACK received: the dialog is up.
    Confirmed,
    /// Non-2xx final sent, waiting for the ACK (timers G/H).
    Rejected,
    /// BYE sent or received; lingering only to absorb retransmissions.
    Ended,
}

/// A re-INVITE or UPDATE waiting for the application's answer.
#[derive(Debug)]
struct PendingReoffer {
    request: SipRequest,
    peer: Peer,
}

#[derive(Debug)]
struct Call {
    peer: Peer,
    invite: SipRequest,
    local_tag: String,
    local_contact: String,
    state: CallState,
    /// Last response to the initial INVITE, for retransmitted INVITEs.
    last_response: Option<Vec<u8>>,
    /// A 2xx (initial or re-INVITE) or non-2xx final being resent until ACK.
    retransmit: Option<Retransmit>,
    /// The CSeq whose ACK we wait for.
    awaiting_ack_cseq: Option<u32>,
    remote_cseq: u32,
    local_cseq: u32,
    reoffer: Option<PendingReoffer>,
    /// Our BYE, resent until answered (timers E/F).
    bye: Option<(String, Retransmit)>,
    /// Our REFER, likewise.
    refer: Option<(String, Retransmit)>,
    /// The INVITE transaction keys filed under this call (initial, re-INVITEs).
    invite_keys: Vec<TxKey>,
    /// When an ended call's state is forgotten.
    linger_until: Option<Instant>,
    /// The key this call is filed under in the timer index.
    timer_key: Option<Instant>,
    terminated_sent: bool,
}

impl Call {
    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.retransmit.as_ref().map(Retransmit::next_wakeup),
            self.bye.as_ref().map(|(_, r)| r.next_wakeup()),
            self.refer.as_ref().map(|(_, r)| r.next_wakeup()),
            self.linger_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

type TxKey = (String, String); // (branch, sent-by)
type OriginKey = (String, Option<String>, u32); // (Call-ID, From tag, CSeq)

fn origin_key(req: &SipRequest) -> OriginKey {
    (req.call_id.clone(), req.from_tag.clone(), req.cseq)
}

pub struct Endpoint {
    config: EndpointConfig,
    next_handle: u64,
    calls: HashMap<CallHandle, Call>,
    /// INVITE server transactions (initial and re-INVITE) by branch + sent-by.
    invites: HashMap<TxKey, CallHandle>,
    /// Dialogs by (Call-ID, our tag).
    dialogs: HashMap<(String, String), CallHandle>,
    /// Calls by their INVITE's (Call-ID, From tag, CSeq), to spot the same
    /// request arriving by another path (RFC 3261 §8.2.2.2) without
    /// comparing every call: a scan was a tenth of the signalling thread's
    /// time at 400 concurrent calls, growing with the calls.
    origins: HashMap<OriginKey, CallHandle>,
    /// Final responses to non-INVITE requests, for their retransmissions
    /// (timer J), with the instant they are forgotten.
    non_invite: HashMap<(String, String, Method), Vec<u8>>,
    non_invite_expiry: VecDeque<(Instant, (String, String, Method))>,
    /// Our client transactions (BYE, REFER) by branch, to match responses.
    client_branches: HashMap<String, CallHandle>,
    /// Requests handed to the application, waiting for `respond`.
    delegated: HashMap<RequestId, (SipRequest, Peer)>,
    /// Requests the application sent outside calls (NOTIFY), by branch.
    outgoing: HashMap<String, (RequestId, Peer, Retransmit)>,
    outgoing_timers: BTreeSet<(Instant, String)>,
    next_request: u64,
    /// (wakeup, call) for every call with a timer running.
    timers: BTreeSet<(Instant, CallHandle)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SipEvent>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            config,
            next_handle: 1,
            calls: HashMap::new(),
            invites: HashMap::new(),
            dialogs: HashMap::new(),
            origins: HashMap::new(),
            non_invite: HashMap::new(),
            non_invite_expiry: VecDeque::new(),
            client_branches: HashMap::new(),
            delegated: HashMap::new(),
            outgoing: HashMap::new(),
            outgoing_timers: BTreeSet::new(),
            next_request: 1,
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SipEvent> {
        self.events.pop_front()
    }

    /// The next instant `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = self.timers.first().map(|(t, _)| *t);
        let cache = self.non_invite_expiry.front().map(|(t, _)| *t);
        let out = self.outgoing_timers.first().map(|(t, _)| *t);
        call.into_iter().chain(cache).chain(out).min()
    }

    /// Calls with any state kept (including lingering ones).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// One complete message: a UDP datagram or a frame cut from a stream.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        let inspected = match frame::inspect(data) {
            Ok(i) => i,
            Err((rejection, raw)) => {
                tracing::debug!(remote = %peer.remote, %rejection, "refused message");
                if let Rejection::Respond { status, reason } = &rejection
                    && let Some(b) = ResponseBuilder::from_raw(&raw, peer.remote, *status, reason)
                {
                    let data = b.header("Server", &self.config.user_agent).build();
                    self.transmits.push_back(Transmit { peer, data });
                }
                return;
            }
        };
        if !inspected.is_request {
            self.handle_response(now, inspected.message);
            return;
        }
        let request = match SipRequest::parse(inspected.message) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(remote = %peer.remote, error = %e, "unparsable request");
                self.respond_raw(peer, inspected.message, 400, &e.to_string());
                return;
            }
        };
        self.handle_request(now, peer, request);
    }

    fn respond_raw(&mut self, peer: Peer, data: &[u8], status: u16, reason: &str) {
        let raw = frame::read_headers(data);
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(120)
            .collect();
        if let Some(b) = ResponseBuilder::from_raw(&raw, peer.remote, status, &reason) {
            let data = b.header("Server", &self.config.user_agent).build();
            self.transmits.push_back(Transmit { peer, data });
        }
    }

    fn send_response(&mut self, peer: Peer, data: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, data });
    }

    fn simple_response(&self, req: &SipRequest, peer: Peer, status: u16, reason: &str) -> Vec<u8> {
        ResponseBuilder::new(req, peer.remote, status, reason)
            .to_tag(&random_token())
            .header("Server", &self.config.user_agent)
            .build()
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, req: SipRequest) {
        match req.method {
            Method::Invite => self.on_invite(now, peer, req),
            Method::Ack => self.on_ack(now, req),
            Method::Cancel => self.on_cancel(now, peer, req),
            _ => self.on_non_invite(now, peer, req),
        }
    }

    fn on_invite(&mut self, now: Instant, peer: Peer, req: SipRequest) {
        let key = (req.branch.clone(), req.sent_by.clone());
        if let Some(handle) = self.invites.get(&key).copied() {
            // A retransmission: resend whatever we last said.
            if let Some(call) = self.calls.get(&handle) {
                let last = if call.invite.cseq == req.cseq {
                    call.last_response.clone()
                } else {
                    call.retransmit.as_ref().map(|r| r.data.clone())
                };
                if let Some(data) = last {
                    self.send_response(peer, data);
                }
            }
            return;
        }
        if req.to_tag.is_some() {
            self.on_reinvite(now, peer, req, key);
            return;
        }
        // RFC 3261 §8.2.2.2: the same request arriving by another path.
        let origin = origin_key(&req);
        if self.origins.contains_key(&origin) {
            let data = self.simple_response(&req, peer, 482, "Loop Detected");
            self.send_response(peer, data);
            return;
        }
        let handle = CallHandle(self.next_handle);
        self.next_handle += 1;
        let local_tag = random_token();
        let user = req.uri_user.clone().unwrap_or_else(|| "voxmail".into());
        let transport_param = match peer.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        let local_contact = format!("<sip:{user}@{}{transport_param}>", peer.local);
        let trying = ResponseBuilder::new(&req, peer.remote, 100, "Trying")
            .header("Server", &self.config.user_agent)
            .build();
        self.send_response(peer, trying.clone());
        self.invites.insert(key.clone(), handle);
        self.dialogs
            .insert((req.call_id.clone(), local_tag.clone()), handle);
        self.origins.insert(origin, handle);
        let call = Call {
            peer,
            remote_cseq: req.cseq,
            local_cseq: rand::random::<u16>() as u32 + 1,
            invite: req.clone(),
            local_tag,
            local_contact,
            state: CallState::Proceeding,
            last_response: Some(trying),
            retransmit: None,
            awaiting_ack_cseq: None,
            reoffer: None,
            bye: None,
            refer: None,
            invite_keys: vec![key],
            linger_until: None,
            timer_key: None,
            terminated_sent: false,
        };
        self.calls.insert(handle, call);
        let body_type = req.content_type.clone().unwrap_or_default();
        if !req.body.is_empty() && req.sdp().is_none() {
            // An offer we cannot read (RFC 3261 §21.4.13); the app never sees it.
            tracing::debug!(content_type = %body_type, "415 for an INVITE body that is not SDP");
            self.final_non2xx(now, handle, 415, "Unsupported Media Type");
            self.calls
                .get_mut(&handle)
                .expect("just inserted")
                .terminated_sent = true;
            return;
        }
        self.events.push_back(SipEvent::IncomingCall {
            call: handle,
            request: Box::new(req),
            peer,
        });
    }

    fn on_reinvite(&mut self, now: Instant, peer: Peer, req: SipRequest, key: TxKey) {
        let Some(handle) = self.find_dialog(&req) else {
            let data = self.simple_response(&req, peer, 481, "Call/Transaction Does Not Exist");
            self.send_response(peer, data);
            return;
        };
        let call = self
            .calls
            .get_mut(&handle)
            .expect("dialog index is consistent");
        let reject = if call.state != CallState::Confirmed && call.state != CallState::Accepted {
            Some((481, "Call/Transaction Does Not Exist"))
        } else if req.cseq <= call.remote_cseq {
            Some((500, "Server Internal Error"))
        } else if call.reoffer.is_some() || call.awaiting_ack_cseq.is_some() {
            // RFC 3261 §14.2: an offer is already in progress.
            Some((491, "Request Pending"))
        } else {
            None
        };
        if let Some((status, reason)) = reject {
            let data = ResponseBuilder::new(&req, peer.remote, status, reason)
                .header("Server", &self.config.user_agent)
                .build();
            self.send_response(peer, data);
            return;
        }
        call.remote_cseq = req.cseq;
        let sdp = req.sdp().map(str::to_string);
        self.invites.insert(key.clone(), handle);
        let call = self.calls.get_mut(&handle).expect("present");
        call.invite_keys.push(key);
        call.reoffer = Some(PendingReoffer { request: req, peer });
        let _ = now;
        self.events
            .push_back(SipEvent::Reoffer { call: handle, sdp });
    }

    fn find_dialog(&self, req: &SipRequest) -> Option<CallHandle> {
        let tag = req.to_tag.as_ref()?;
        let handle = *self.dialogs.get(&(req.call_id.clone(), tag.clone()))?;
        let call = self.calls.get(&handle)?;
        (call.invite.from_tag == req.from_tag).then_some(handle)
    }

    fn on_ack(&mut self, now: Instant, req: SipRequest) {
        // ACK for a non-2xx: same branch as the INVITE (§17.2.1).
        let key = (req.branch.clone(), req.sent_by.clone());
        if let Some(handle) = self.invites.get(&key).copied()
            && let Some(call) = self.calls.get_mut(&handle)
            && call.state == CallState::Rejected
        {
            call.retransmit = None;
            call.state = CallState::Ended;
            // Timer I: absorb further ACKs for T4 on UDP.
            let linger = if call.peer.transport.is_reliable() {
                Duration::ZERO
            } else {
                self.config.timers.t4
            };
            call.linger_until = Some(now + linger);
            self.reschedule(handle);
            return;
        }
        // ACK for a 2xx: matched by dialog and CSeq (§13.2.2.4).
        let Some(handle) = self.find_dialog(&req) else {
            return;
        };
        let call = self
            .calls
            .get_mut(&handle)
            .expect("dialog index is consistent");
        if call.awaiting_ack_cseq != Some(req.cseq) {
            return; // a retransmitted ACK
        }
        call.awaiting_ack_cseq = None;
        call.retransmit = None;
        let initial = call.state == CallState::Accepted;
        if initial {
            call.state = CallState::Confirmed;
        }
        let sdp = req.sdp().map(str::to_string);
        self.reschedule(handle);
        if initial {
            self.events
                .push_back(SipEvent::Confirmed { call: handle, sdp });
        } else if sdp.is_some() {
            // The answer to an offer we made in a re-INVITE's 2xx.
            self.events
                .push_back(SipEvent::Reoffer { call: handle, sdp });
        }
    }

    fn on_cancel(&mut self, now: Instant, peer: Peer, req: SipRequest) {
        if self.absorb_retransmission(peer, &req) {
            return;
        }
        let key = (req.branch.clone(), req.sent_by.clone());
        let Some(handle) = self.invites.get(&key).copied() else {
            let data = self.simple_response(&req, peer, 481, "Call/Transaction Does Not Exist");
            self.finish_non_invite(now, peer, &req, data);
            return;
        };
        let ok = {
            let call = &self.calls[&handle];
            ResponseBuilder::new(&req, peer.remote, 200, "OK")
                .to_tag(&call.local_tag)
                .header("Server", &self.config.user_agent)
                .build()
        };
        self.finish_non_invite(now, peer, &req, ok);
        let proceeding = self.calls[&handle].state == CallState::Proceeding;
        if proceeding {
            self.final_non2xx(now, handle, 487, "Request Terminated");
            self.terminate(handle, EndReason::Cancelled);
        }
    }

    /// Resend the cached answer to a retransmitted non-INVITE request.
    fn absorb_retransmission(&mut self, peer: Peer, req: &SipRequest) -> bool {
        let key = (req.branch.clone(), req.sent_by.clone(), req.method);
        if let Some(data) = self.non_invite.get(&key) {
            let data = data.clone();
            self.send_response(peer, data);
            return true;
        }
        false
    }

    /// Send a non-INVITE final response and remember it for timer J.
    fn finish_non_invite(&mut self, now: Instant, peer: Peer, req: &SipRequest, data: Vec<u8>) {
        if !peer.transport.is_reliable() && !req.branch.is_empty() {
            let key = (req.branch.clone(), req.sent_by.clone(), req.method);
            self.non_invite.insert(key.clone(), data.clone());
            self.non_invite_expiry
                .push_back((now + self.config.timers.transaction_timeout(), key));
        }
        self.send_response(peer, data);
    }

    fn on_non_invite(&mut self, now: Instant, peer: Peer, req: SipRequest) {
        if self.absorb_retransmission(peer, &req) {
            return;
        }
        let in_dialog = req.to_tag.is_some();
        let handle = if in_dialog {
            self.find_dialog(&req)
        } else {
            None
        };
        let ua = self.config.user_agent.clone();
        match req.method {
            Method::Options => {
                let mut b = ResponseBuilder::new(&req, peer.remote, 200, "OK")
                    .header("Allow", ALLOW)
                    .header("Accept", ACCEPT)
                    .header("Supported", SUPPORTED)
                    .header("Accept-Language", "en, fr, es, de")
                    .header("Server", &ua);
                let tag;
                if !in_dialog {
                    tag = random_token();
                    b = b.to_tag(&tag);
                }
                let data = b.build();
                self.finish_non_invite(now, peer, &req, data);
            }
            Method::Notify if handle.is_some() => {
                let data = ResponseBuilder::new(&req, peer.remote, 200, "OK")
                    .header("Server", &ua)
                    .build();
                self.finish_non_invite(now, peer, &req, data);
                self.events.push_back(SipEvent::Notify {
                    call: handle.expect("checked"),
                    event: req.header("Event").map(str::to_string),
                    body: req.body.clone(),
                });
            }
            Method::Bye | Method::Info | Method::Update if in_dialog => {
                let Some(handle) = handle else {
                    let data = ResponseBuilder::new(
                        &req,
                        peer.remote,
                        481,
                        "Call/Transaction Does Not Exist",
                    )
                    .header("Server", &ua)
                    .build();
                    self.finish_non_invite(now, peer, &req, data);
                    return;
                };
                let call = self
                    .calls
                    .get_mut(&handle)
                    .expect("dialog index is consistent");
                if req.cseq <= call.remote_cseq && req.method != Method::Bye {
                    let data =
                        ResponseBuilder::new(&req, peer.remote, 500, "Server Internal Error")
                            .header("Server", &ua)
                            .build();
                    self.finish_non_invite(now, peer, &req, data);
                    return;
                }
                call.remote_cseq = call.remote_cseq.max(req.cseq);
                match req.method {
                    Method::Bye => {
                        let data = ResponseBuilder::new(&req, peer.remote, 200, "OK")
                            .header("Server", &ua)
                            .build();
                        self.finish_non_invite(now, peer, &req, data);
                        self.end_dialog(now, handle);
                        self.terminate(handle, EndReason::RemoteBye);
                    }
                    Method::Info => {
                        let data = ResponseBuilder::new(&req, peer.remote, 200, "OK")
                            .header("Server", &ua)
                            .build();
                        self.finish_non_invite(now, peer, &req, data);
                        self.events.push_back(SipEvent::Info {
                            call: handle,
                            content_type: req.content_type.clone(),
                            body: req.body.clone(),
                        });
                    }
                    _ => {
                        // UPDATE: without SDP it only refreshes; with SDP the
                        // application answers the new offer.
                        match req.sdp().map(str::to_string) {
                            None => {
                                let contact = call.local_contact.clone();
                                let data = ResponseBuilder::new(&req, peer.remote, 200, "OK")
                                    .header("Contact", &contact)
                                    .header("Server", &ua)
                                    .build();
                                self.finish_non_invite(now, peer, &req, data);
                            }
                            Some(sdp) => {
                                if call.reoffer.is_some() {
                                    let data = ResponseBuilder::new(
                                        &req,
                                        peer.remote,
                                        491,
                                        "Request Pending",
                                    )
                                    .header("Server", &ua)
                                    .build();
                                    self.finish_non_invite(now, peer, &req, data);
                                    return;
                                }
                                call.reoffer = Some(PendingReoffer { request: req, peer });
                                self.events.push_back(SipEvent::Reoffer {
                                    call: handle,
                                    sdp: Some(sdp),
                                });
                            }
                        }
                    }
                }
            }
            Method::Bye | Method::Info | Method::Update | Method::PRack | Method::Notify => {
                let data = self.simple_response(&req, peer, 481, "Call/Transaction Does Not Exist");
                self.finish_non_invite(now, peer, &req, data);
            }
            Method::Register | Method::Subscribe if self.config.delegate_register_subscribe => {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                self.delegated.insert(id, (req.clone(), peer));
                self.events.push_back(SipEvent::Request {
                    id,
                    request: Box::new(req),
                    peer,
                });
            }
            _ => {
                // REGISTER, SUBSCRIBE, MESSAGE, PUBLISH, REFER: known, not served here.
                let data = ResponseBuilder::new(&req, peer.remote, 405, "Method Not Allowed")
                    .to_tag(&random_token())
                    .header("Allow", ALLOW)
                    .header("Server", &ua)
                    .build();
                self.finish_non_invite(now, peer, &req, data);
            }
        }
    }

    fn handle_response(&mut self, now: Instant, data: &[u8]) {
        // Only our BYEs expect answers. Read the status and top Via branch.
        let raw = frame::read_headers(data);
        let Some(branch) = raw.get("Via").and_then(|v| header_param(v, "branch")) else {
            return;
        };
        let status: u16 = std::str::from_utf8(&data[..data.len().min(16)])
            .ok()
            .and_then(|s| s.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status < 200 {
            return;
        }
        if let Some((id, _, r)) = self.outgoing.remove(branch) {
            self.outgoing_timers
                .remove(&(r.next_wakeup(), branch.to_string()));
            self.events
                .push_back(SipEvent::RequestResult { id, status });
            return;
        }
        let Some(handle) = self.client_branches.remove(branch) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.bye.as_ref().is_some_and(|(b, _)| b == branch) {
            call.bye = None;
            self.linger(now, handle);
            self.terminate(handle, EndReason::LocalBye);
        } else if call.refer.as_ref().is_some_and(|(b, _)| b == branch) {
            call.refer = None;
            self.reschedule(handle);
            self.events.push_back(SipEvent::ReferResult {
                call: handle,
                status,
            });
        }
    }

    // ---- the application's side ----

    /// Answer a delegated REGISTER/SUBSCRIBE. `to_tag` is added to To when it
    /// has none (a SUBSCRIBE creates a dialog); `headers` are added as given.
    pub fn respond(
        &mut self,
        now: Instant,
        id: RequestId,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
        headers: &[(&str, String)],
    ) {
        let Some((req, peer)) = self.delegated.remove(&id) else {
            return;
        };
        let mut b = ResponseBuilder::new(&req, peer.remote, status, reason);
        if let Some(tag) = to_tag {
            b = b.to_tag(tag);
        }
        for (n, v) in headers {
            b = b.header(n, v);
        }
        let data = b.header("Server", &self.config.user_agent).build();
        self.finish_non_invite(now, peer, &req, data);
    }

    /// Send a request the application built (a NOTIFY), with retransmission
    /// on UDP; its top Via branch must be unique. The outcome comes back as
    /// [`SipEvent::RequestResult`].
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: Peer,
        branch: &str,
        data: Vec<u8>,
    ) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let r = Retransmit::new(
            data.clone(),
            now,
            &self.config.timers,
            peer.transport.is_reliable(),
        );
        self.outgoing_timers
            .insert((r.next_wakeup(), branch.to_string()));
        self.outgoing.insert(branch.to_string(), (id, peer, r));
        self.transmits.push_back(Transmit { peer, data });
        id
    }

    /// Send 180 Ringing.
    pub fn ring(&mut self, call: CallHandle) {
        self.provisional(call, 180, "Ringing");
    }

    fn provisional(&mut self, handle: CallHandle, status: u16, reason: &str) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.state != CallState::Proceeding {
            return;
        }
        let data = ResponseBuilder::new(&call.invite, call.peer.remote, status, reason)
            .to_tag(&call.local_tag)
            .header("Contact", &call.local_contact)
            .header("Server", &self.config.user_agent)
            .build();
        call.last_response = Some(data.clone());
        let peer = call.peer;
        self.send_response(peer, data);
    }

    /// Answer with 200 OK carrying `sdp` (an answer, or an offer for a late-offer INVITE).
    pub fn accept(&mut self, now: Instant, handle: CallHandle, sdp: &[u8]) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.state != CallState::Proceeding {
            return;
        }
        let data = ResponseBuilder::new(&call.invite, call.peer.remote, 200, "OK")
            .to_tag(&call.local_tag)
            .header("Contact", &call.local_contact)
            .header("Allow", ALLOW)
            .header("Supported", SUPPORTED)
            .header("Server", &self.config.user_agent)
            .body("application/sdp", sdp)
            .build();
        call.state = CallState::Accepted;
        call.last_response = Some(data.clone());
        call.awaiting_ack_cseq = Some(call.invite.cseq);
        call.retransmit = Some(Retransmit::new(
            data.clone(),
            now,
            &self.config.timers,
            call.peer.transport.is_reliable(),
        ));
        let peer = call.peer;
        self.send_response(peer, data);
        self.reschedule(handle);
    }

    /// Refuse the call with a final non-2xx response.
    pub fn reject(&mut self, now: Instant, handle: CallHandle, status: u16, reason: &str) {
        if self.calls.get(&handle).map(|c| c.state) != Some(CallState::Proceeding) {
            return;
        }
        self.final_non2xx(now, handle, status, reason);
        self.terminate(handle, EndReason::Rejected);
    }

    fn final_non2xx(&mut self, now: Instant, handle: CallHandle, status: u16, reason: &str) {
        let call = self.calls.get_mut(&handle).expect("caller checked");
        let data = ResponseBuilder::new(&call.invite, call.peer.remote, status, reason)
            .to_tag(&call.local_tag)
            .header("Server", &self.config.user_agent)
            .build();
        call.state = CallState::Rejected;
        call.last_response = Some(data.clone());
        call.retransmit = Some(Retransmit::new(
            data.clone(),
            now,
            &self.config.timers,
            call.peer.transport.is_reliable(),
        ));
        let peer = call.peer;
        self.send_response(peer, data);
        self.reschedule(handle);
    }

    /// Answer a pending re-INVITE/UPDATE: `Ok(sdp)` for 200, `Err(status)` to refuse it.
    pub fn answer_reoffer(&mut self, now: Instant, handle: CallHandle, answer: Result<&[u8], u16>) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let Some(PendingReoffer { request, peer }) = call.reoffer.take() else {
            return;
        };
        let data = match answer {
            Ok(sdp) => ResponseBuilder::new(&request, peer.remote, 200, "OK")
                .header("Contact", &call.local_contact)
                .header("Allow", ALLOW)
                .header("Server", &self.config.user_agent)
                .body("application/sdp", sdp)
                .build(),
            Err(status) => {
                ResponseBuilder::new(&request, peer.remote, status, reason_phrase(status))
                    .header("Server", &self.config.user_agent)
                    .build()
            }
        };
        if request.method == Method::Invite {
            if answer.is_ok() {
                call.awaiting_ack_cseq = Some(request.cseq);
            }
            // Both 2xx and non-2xx to a re-INVITE are resent until ACKed.
            call.retransmit = Some(Retransmit::new(
                data.clone(),
                now,
                &self.config.timers,
                peer.transport.is_reliable(),
            ));
            self.send_response(peer, data);
            self.reschedule(handle);
        } else {
            self.finish_non_invite(now, peer, &request, data);
        }
    }

    /// End the call: BYE if answered, 480 if not yet.
    pub fn hangup(&mut self, now: Instant, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        match call.state {
            CallState::Proceeding => {
                self.reject(now, handle, 480, "Temporarily Unavailable");
            }
            CallState::Accepted | CallState::Confirmed => self.send_bye(now, handle),
            CallState::Rejected | CallState::Ended => {}
        }
    }

    /// Build an in-dialog request from our side and register its branch.
    fn dialog_request(
        &mut self,
        handle: CallHandle,
        method: &str,
        extra: &str,
    ) -> (String, Vec<u8>) {
        let call = self.calls.get_mut(&handle).expect("caller checked");
        call.local_cseq += 1;
        let branch = format!("z9hG4bK{}", random_token());
        let target = call
            .invite
            .contact
            .clone()
            .unwrap_or_else(|| call.invite.uri.clone());
        let mut s = String::with_capacity(400);
        let _ = write!(
            s,
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
            call.peer.transport.via_name(),
            call.peer.local
        );
        // The route set, in order, from the INVITE's Record-Route (§12.1.1).
        for r in &call.invite.record_route {
            let _ = write!(s, "Route: {r}\r\n");
        }
        // From is our side (the INVITE's To plus our tag); To is theirs.
        let _ = write!(
            s,
            "From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n{extra}User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
            call.invite.to,
            call.local_tag,
            call.invite.from,
            call.invite.call_id,
            call.local_cseq,
            self.config.user_agent
        );
        self.client_branches.insert(branch.clone(), handle);
        (branch, s.into_bytes())
    }

    fn send_bye(&mut self, now: Instant, handle: CallHandle) {
        let (branch, data) = self.dialog_request(handle, "BYE", "");
        let call = self.calls.get_mut(&handle).expect("caller checked");
        // In-dialog requests go back along the path the INVITE came from:
        // the caller's (or its proxy's) source address, which also works
        // behind NAT where the Contact would not.
        call.bye = Some((
            branch,
            Retransmit::new(
                data.clone(),
                now,
                &self.config.timers,
                call.peer.transport.is_reliable(),
            ),
        ));
        call.state = CallState::Ended;
        call.retransmit = None;
        call.awaiting_ack_cseq = None;
        let peer = call.peer;
        self.transmits.push_back(Transmit { peer, data });
        self.reschedule(handle);
    }

    /// Blind transfer of an answered call (RFC 3515): REFER the caller to
    /// `target`. The answer arrives as [`SipEvent::ReferResult`], progress as
    /// [`SipEvent::Notify`].
    pub fn refer(&mut self, now: Instant, handle: CallHandle, target: &str) -> bool {
        let Some(call) = self.calls.get(&handle) else {
            return false;
        };
        if call.state != CallState::Confirmed || call.refer.is_some() {
            return false;
        }
        let extra = format!(
            "Refer-To: <{target}>\r\nContact: {}\r\n",
            call.local_contact
        );
        let (branch, data) = self.dialog_request(handle, "REFER", &extra);
        let call = self.calls.get_mut(&handle).expect("checked above");
        call.refer = Some((
            branch,
            Retransmit::new(
                data.clone(),
                now,
                &self.config.timers,
                call.peer.transport.is_reliable(),
            ),
        ));
        let peer = call.peer;
        self.transmits.push_back(Transmit { peer, data });
        self.reschedule(handle);
        true
    }

    /// Redirect a call not yet answered: 302 with `target` as Contact.
    pub fn redirect(&mut self, now: Instant, handle: CallHandle, target: &str) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.state != CallState::Proceeding {
            return;
        }
        let data = ResponseBuilder::new(&call.invite, call.peer.remote, 302, "Moved Temporarily")
            .to_tag(&call.local_tag)
            .header("Contact", &format!("<{target}>"))
            .header("Server", &self.config.user_agent)
            .build();
        call.state = CallState::Rejected;
        call.last_response = Some(data.clone());
        call.retransmit = Some(Retransmit::new(
            data.clone(),
            now,
            &self.config.timers,
            call.peer.transport.is_reliable(),
        ));
        let peer = call.peer;
        self.send_response(peer, data);
        self.reschedule(handle);
        self.terminate(handle, EndReason::Redirected);
    }

    fn end_dialog(&mut self, now: Instant, handle: CallHandle) {
        let call = self.calls.get_mut(&handle).expect("caller checked");
        call.state = CallState::Ended;
        call.retransmit = None;
        call.awaiting_ack_cseq = None;
        call.reoffer = None;
        self.linger(now, handle);
    }

    /// Keep an ended call around for 64·T1 so retransmissions find it.
    fn linger(&mut self, now: Instant, handle: CallHandle) {
        if let Some(call) = self.calls.get_mut(&handle) {
            call.linger_until = Some(now + self.config.timers.transaction_timeout());
            // An ended call lingers 32 s only to absorb retransmissions (by
            // its keys and last response): drop what built requests. At 500
            // calls a second 16,000 lingering calls otherwise held their
            // INVITE's headers and body, ~100 MB.
            call.invite.headers = Vec::new();
            call.invite.body = Vec::new();
            call.invite.vias = Vec::new();
            call.invite.record_route = Vec::new();
            call.reoffer = None;
        }
        self.reschedule(handle);
    }

    fn terminate(&mut self, handle: CallHandle, reason: EndReason) {
        if let Some(call) = self.calls.get_mut(&handle)
            && !call.terminated_sent
        {
            call.terminated_sent = true;
            self.events.push_back(SipEvent::Terminated {
                call: handle,
                reason,
            });
        }
    }

    fn reschedule(&mut self, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if let Some(old) = call.timer_key.take() {
            self.timers.remove(&(old, handle));
        }
        if let Some(at) = call.next_wakeup() {
            call.timer_key = Some(at);
            self.timers.insert((at, handle));
        }
    }

    fn forget(&mut self, handle: CallHandle) {
        if let Some(call) = self.calls.remove(&handle) {
            if let Some(at) = call.timer_key {
                self.timers.remove(&(at, handle));
            }
            self.dialogs
                .remove(&(call.invite.call_id.clone(), call.local_tag.clone()));
            let origin = origin_key(&call.invite);
            if self.origins.get(&origin) == Some(&handle) {
                self.origins.remove(&origin);
            }
            for key in &call.invite_keys {
                self.invites.remove(key);
            }
            for (b, _) in [call.bye, call.refer].into_iter().flatten() {
                self.client_branches.remove(&b);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, branch)) = self.outgoing_timers.first().cloned() {
            if at > now {
                break;
            }
            self.outgoing_timers.remove(&(at, branch.clone()));
            let timers = self.config.timers;
            let Some((id, peer, r)) = self.outgoing.get_mut(&branch) else {
                continue;
            };
            if r.due(now, &timers) {
                let data = r.data.clone();
                let (peer, next) = (*peer, r.next_wakeup());
                self.transmits.push_back(Transmit { peer, data });
                self.outgoing_timers.insert((next, branch));
            } else if r.expired(now) {
                let id = *id;
                self.outgoing.remove(&branch);
                self.events
                    .push_back(SipEvent::RequestResult { id, status: 408 });
            } else {
                let next = r.next_wakeup();
                self.outgoing_timers.insert((next, branch));
            }
        }
        while let Some((at, key)) = self.non_invite_expiry.front() {
            if *at > now {
                break;
            }
            self.non_invite.remove(key);
            self.non_invite_expiry.pop_front();
        }
        while let Some(&(at, handle)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, handle));
            if let Some(call) = self.calls.get_mut(&handle) {
                call.timer_key = None;
            }
            self.on_call_timer(now, handle);
        }
    }

    fn on_call_timer(&mut self, now: Instant, handle: CallHandle) {
        let timers = self.config.timers;
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let peer = call.peer;
        let mut resend = Vec::new();
        let mut no_ack = false;
        let mut bye_gone = false;
        if let Some(r) = call.retransmit.as_mut() {
            if r.due(now, &timers) {
                resend.push(r.data.clone());
            } else if r.expired(now) {
                call.retransmit = None;
                match call.state {
                    // Timer H: the ACK never came; the call is over anyway.
                    CallState::Rejected => call.state = CallState::Ended,
                    CallState::Accepted => no_ack = true,
                    _ => {
                        // A re-INVITE's 2xx was never ACKed: end the call (§14.2).
                        if call.awaiting_ack_cseq.take().is_some() {
                            no_ack = true;
                        }
                    }
                }
            }
        }
        let mut refer_gone = false;
        if let Some((_, r)) = call.refer.as_mut() {
            if r.due(now, &timers) {
                resend.push(r.data.clone());
            } else if r.expired(now) {
                call.refer = None;
                refer_gone = true;
            }
        }
        if let Some((_, r)) = call.bye.as_mut() {
            if r.due(now, &timers) {
                resend.push(r.data.clone());
            } else if r.expired(now) {
                call.bye = None;
                bye_gone = true;
            }
        }
        let linger_over = call.linger_until.is_some_and(|t| now >= t)
            && call.retransmit.is_none()
            && call.bye.is_none()
            && call.refer.is_none();
        let ended_unlingering =
            call.state == CallState::Ended && call.linger_until.is_none() && call.bye.is_none();
        for data in resend {
            self.transmits.push_back(Transmit { peer, data });
        }
        if refer_gone {
            self.events.push_back(SipEvent::ReferResult {
                call: handle,
                status: 408,
            });
        }
        if no_ack {
            tracing::warn!(call = handle.0, "no ACK for our 2xx; hanging up");
            self.send_bye(now, handle);
            self.terminate(handle, EndReason::NoAck);
        }
        if bye_gone {
            self.linger(now, handle);
            self.terminate(handle, EndReason::LocalBye);
        }
        if linger_over {
            self.forget(handle);
            return;
        }
        if ended_unlingering {
            self.linger(now, handle);
        }
        self.reschedule(handle);
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        415 => "Unsupported Media Type",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests;
