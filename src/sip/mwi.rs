//! Message-waiting indication: RFC 3842 `message-summary` over RFC 6665
//! subscriptions.
//!
//! Sans-IO: [`MwiNotifier::on_subscribe`] takes a parsed SUBSCRIBE and says
//! what to answer and which NOTIFY to send; [`MwiNotifier::notify_all`]
//! builds the NOTIFYs for a mailbox whose counts changed. The caller answers
//! with `Endpoint::respond`, sends NOTIFYs with `Endpoint::send_request` and
//! reports their outcome to [`MwiNotifier::on_notify_result`]. Each
//! subscription is a dialog (Call-ID, our tag, their tag, their Contact and
//! route set, our CSeq); [`MwiNotifier::snapshot`] and
//! [`MwiNotifier::restore`] carry them, and the last counts of each box,
//! across a restart.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::endpoint::{Peer, TransportKind};
use super::message::{SipRequest, header_param, random_token};
use super::registrar::{SavedPeer, from_unix, to_unix};

/// The event package we serve.
pub const EVENT: &str = "message-summary";
/// The body type of its NOTIFYs.
pub const CONTENT_TYPE: &str = "application/simple-message-summary";
/// Subscription lifetime when the phone asks for none.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Shorter subscriptions get 423 Interval Too Brief.
pub const MIN_EXPIRES: u32 = 60;
/// Longer subscriptions are shortened to this.
pub const MAX_EXPIRES: u32 = 7200;
/// Subscriptions held at once; more get 503.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;
/// Subscriptions to one mailbox; more get 503.
pub const MAX_SUBSCRIPTIONS_PER_BOX: usize = 32;

/// What a mailbox holds, as a message-summary says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Unheard messages (the inbox).
    pub new: u32,
    /// Heard messages kept (the old folder).
    pub old: u32,
}

/// A NOTIFY to send with `Endpoint::send_request(now, peer, &branch, bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub peer: Peer,
    pub branch: String,
    pub bytes: Vec<u8>,
}

impl Notify {
    /// The request as text (tests, logs).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// What to answer a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeReply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
    /// The To tag: our side of the dialog on 200, a throwaway otherwise.
    pub to_tag: Option<String>,
}

impl SubscribeReply {
    fn new(status: u16, reason: &'static str) -> Self {
        SubscribeReply {
            status,
            reason,
            headers: Vec::new(),
            to_tag: Some(random_token()),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One subscription: a dialog from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub call_id: String,
    pub local_tag: String,
    /// Our side, the SUBSCRIBE's To with our tag: From of our NOTIFYs.
    pub local: String,
    /// Their side, the SUBSCRIBE's From with their tag: To of our NOTIFYs.
    pub remote: String,
    /// Their Contact URI: the Request-URI of our NOTIFYs.
    pub target: String,
    /// Their Record-Route, in order: our Route set.
    pub route: Vec<String>,
    /// Where the SUBSCRIBE came from: our NOTIFYs go there.
    pub peer: Peer,
    /// Our last CSeq in this dialog.
    pub cseq: u32,
    /// Their last CSeq.
    pub remote_cseq: u32,
    pub expires_at: Instant,
    /// The mailbox watched.
    pub mailbox: String,
    /// The Event header's `id`, echoed in our NOTIFYs.
    pub event_id: Option<String>,
}

type Key = (String, String); // (Call-ID, our tag)

/// Every subscription, and the last counts told for each box.
#[derive(Debug)]
pub struct MwiNotifier {
    /// Host of `Message-Account: sip:<box>@<host>`; the local address of
    /// each phone's path when `None`.
    account_host: Option<String>,
    user_agent: String,
    subs: HashMap<Key, Subscription>,
    counts: HashMap<String, Counts>,
    /// NOTIFYs in flight by branch, to match their outcome.
    in_flight: HashMap<String, Key>,
}

impl MwiNotifier {
    pub fn new(account_host: Option<IpAddr>, user_agent: impl Into<String>) -> Self {
        MwiNotifier {
            account_host: account_host.map(host_of),
            user_agent: user_agent.into(),
            subs: HashMap::new(),
            counts: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }

    /// New Message-Account host and User-Agent (a config reload).
    pub fn set_identity(&mut self, account_host: Option<IpAddr>, user_agent: impl Into<String>) {
        self.account_host = account_host.map(host_of);
        self.user_agent = user_agent.into();
    }

    /// Answer a SUBSCRIBE. `lookup` gives the counts of a mailbox, or `None`
    /// when there is no such box. A successful (or final, `Expires: 0`)
    /// subscription comes with the NOTIFY that must follow at once.
    pub fn on_subscribe(
        &mut self,
        now: Instant,
        req: &SipRequest,
        peer: Peer,
        lookup: impl FnOnce(&str) -> Option<Counts>,
    ) -> (SubscribeReply, Option<Notify>) {
        let event = req
            .header("Event")
            .or_else(|| req.header("o"))
            .unwrap_or("");
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case(EVENT) {
            let mut r = SubscribeReply::new(489, "Bad Event");
            r.headers.push(("Allow-Events", EVENT.to_owned()));
            return (r, None);
        }
        let event_id = header_param(event, "id").map(str::to_owned);
        if let Some(accept) = req.header("Accept")
            && !accepts_summary(accept)
        {
            let mut r = SubscribeReply::new(406, "Not Acceptable");
            r.headers.push(("Accept", CONTENT_TYPE.to_owned()));
            return (r, None);
        }
        let expires = match req.header("Expires").map(str::trim) {
            None => DEFAULT_EXPIRES,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => n.min(u64::from(MAX_EXPIRES)) as u32,
                Err(_) => return (SubscribeReply::new(400, "Bad Expires"), None),
            },
        };
        if expires != 0 && expires < MIN_EXPIRES {
            let mut r = SubscribeReply::new(423, "Interval Too Brief");
            r.headers.push(("Min-Expires", MIN_EXPIRES.to_string()));
            return (r, None);
        }
        match req.to_tag.clone() {
            Some(tag) => self.refresh(now, req, peer, tag, expires, lookup),
            None => self.subscribe(now, req, peer, expires, event_id, lookup),
        }
    }

    fn subscribe(
        &mut self,
        now: Instant,
        req: &SipRequest,
        peer: Peer,
        expires: u32,
        event_id: Option<String>,
        lookup: impl FnOnce(&str) -> Option<Counts>,
    ) -> (SubscribeReply, Option<Notify>) {
        let Some(mailbox) = watched_mailbox(req) else {
            return (SubscribeReply::new(404, "Not Found"), None);
        };
        let Some(counts) = lookup(&mailbox) else {
            return (SubscribeReply::new(404, "Not Found"), None);
        };
        let Some(target) = req.contact.clone() else {
            return (SubscribeReply::new(400, "Missing Contact"), None);
        };
        let full = self.subs.len() >= MAX_SUBSCRIPTIONS
            || self.subs.values().filter(|s| s.mailbox == mailbox).count()
                >= MAX_SUBSCRIPTIONS_PER_BOX;
        if expires > 0 && full {
            return (SubscribeReply::new(503, "Service Unavailable"), None);
        }
        self.counts.insert(mailbox.clone(), counts);
        let local_tag = random_token();
        let mut sub = Subscription {
            call_id: req.call_id.clone(),
            local: format!("{};tag={local_tag}", req.to),
            local_tag: local_tag.clone(),
            remote: req.from.clone(),
            target,
            route: req.record_route.clone(),
            peer,
            cseq: u32::from(rand::random::<u16>()),
            remote_cseq: req.cseq,
            expires_at: now + Duration::from_secs(expires.into()),
            mailbox,
            event_id,
        };
        let reply = self.ok(&sub, expires, local_tag);
        let notify = if expires == 0 {
            // A fetch: one NOTIFY with the state, and no subscription.
            self.build(&mut sub, now, counts, Some("timeout"))
        } else {
            let key = (sub.call_id.clone(), sub.local_tag.clone());
            let n = self.build(&mut sub, now, counts, None);
            self.in_flight.insert(n.branch.clone(), key.clone());
            self.subs.insert(key, sub);
            n
        };
        (reply, Some(notify))
    }

    fn refresh(
        &mut self,
        now: Instant,
        req: &SipRequest,
        peer: Peer,
        tag: String,
        expires: u32,
        lookup: impl FnOnce(&str) -> Option<Counts>,
    ) -> (SubscribeReply, Option<Notify>) {
        let key = (req.call_id.clone(), tag);
        let Some(sub) = self.subs.get(&key) else {
            return (
                SubscribeReply::new(481, "Subscription Does Not Exist"),
                None,
            );
        };
        if sub.remote_tag() != req.from_tag.as_deref() {
            return (
                SubscribeReply::new(481, "Subscription Does Not Exist"),
                None,
            );
        }
        if req.cseq <= sub.remote_cseq {
            return (SubscribeReply::new(500, "Out Of Order Request"), None);
        }
        let Some(counts) = lookup(&sub.mailbox) else {
            // The box is gone: end the subscription.
            let mut sub = self.subs.remove(&key).expect("checked above");
            let n = self.build(&mut sub, now, Counts::default(), Some("noresource"));
            let reply = self.ok(&sub, 0, key.1);
            return (reply, Some(n));
        };
        let mut sub = self.subs.remove(&key).expect("checked above");
        self.counts.insert(sub.mailbox.clone(), counts);
        sub.remote_cseq = req.cseq;
        sub.peer = peer;
        if let Some(c) = &req.contact {
            sub.target = c.clone();
        }
        sub.expires_at = now + Duration::from_secs(expires.into());
        let reply = self.ok(&sub, expires, key.1.clone());
        if expires == 0 {
            let n = self.build(&mut sub, now, counts, Some("timeout"));
            return (reply, Some(n));
        }
        let n = self.build(&mut sub, now, counts, None);
        self.in_flight.insert(n.branch.clone(), key.clone());
        self.subs.insert(key, sub);
        (reply, Some(n))
    }

    fn ok(&self, sub: &Subscription, expires: u32, tag: String) -> SubscribeReply {
        let mut r = SubscribeReply::new(200, "OK");
        r.to_tag = Some(tag);
        r.headers.push(("Expires", expires.to_string()));
        r.headers
            .push(("Contact", local_contact(&sub.mailbox, sub.peer)));
        r
    }

    /// The NOTIFY for one subscription; `terminated` gives the reason when
    /// it ends the subscription.
    fn build(
        &self,
        sub: &mut Subscription,
        now: Instant,
        counts: Counts,
        terminated: Option<&str>,
    ) -> Notify {
        sub.cseq = sub.cseq.wrapping_add(1).max(1);
        let left = sub.expires_at.saturating_duration_since(now).as_secs();
        let state = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None if left == 0 => "terminated;reason=timeout".to_owned(),
            None => format!("active;expires={left}"),
        };
        let host = self.host_for(sub.peer);
        let body = summary_body(&sub.mailbox, &host, counts);
        let branch = format!("z9hG4bK{}", random_token());
        let mut s = String::with_capacity(700);
        let _ = write!(
            s,
            "NOTIFY {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
            sub.target,
            via_transport(sub.peer),
            sub.peer.local
        );
        for r in &sub.route {
            let _ = write!(s, "Route: {r}\r\n");
        }
        let event = match &sub.event_id {
            Some(id) => format!("{EVENT};id={id}"),
            None => EVENT.to_owned(),
        };
        let _ = write!(
            s,
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} NOTIFY\r\nContact: {}\r\n\
             Event: {event}\r\nSubscription-State: {state}\r\nUser-Agent: {}\r\n\
             Content-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n{body}",
            sub.local,
            sub.remote,
            sub.call_id,
            sub.cseq,
            local_contact(&sub.mailbox, sub.peer),
            self.user_agent,
            body.len()
        );
        Notify {
            peer: sub.peer,
            branch,
            bytes: s.into_bytes(),
        }
    }

    fn host_for(&self, peer: Peer) -> String {
        self.account_host
            .clone()
            .unwrap_or_else(|| host_of(peer.local.ip()))
    }

    /// New counts for `mailbox`: a NOTIFY for each live subscription to it.
    pub fn notify_all(&mut self, now: Instant, mailbox: &str, counts: Counts) -> Vec<Notify> {
        self.counts.insert(mailbox.to_owned(), counts);
        let keys: Vec<Key> = self
            .subs
            .iter()
            .filter(|(_, s)| s.mailbox == mailbox && s.expires_at > now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut sub = self.subs.remove(&key).expect("listed above");
            let n = self.build(&mut sub, now, counts, None);
            self.in_flight.insert(n.branch.clone(), key.clone());
            self.subs.insert(key, sub);
            out.push(n);
        }
        out
    }

    /// The counts last told for `mailbox`.
    pub fn counts(&self, mailbox: &str) -> Option<Counts> {
        self.counts.get(mailbox).copied()
    }

    /// Boxes with at least one subscription, sorted.
    pub fn watched_mailboxes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.subs.values().map(|s| s.mailbox.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Live subscriptions to `mailbox`.
    pub fn subscriptions(&self, mailbox: &str) -> Vec<&Subscription> {
        self.subs
            .values()
            .filter(|s| s.mailbox == mailbox)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// End subscriptions past their expiry, each with a final NOTIFY
    /// (`terminated;reason=timeout`).
    pub fn expire(&mut self, now: Instant) -> Vec<Notify> {
        let keys: Vec<Key> = self
            .subs
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mut sub = self.subs.remove(&key).expect("listed above");
            let counts = self.counts(&sub.mailbox).unwrap_or_default();
            out.push(self.build(&mut sub, now, counts, Some("timeout")));
        }
        out
    }

    /// The earliest subscription expiry, for the caller's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.subs.values().map(|s| s.expires_at).min()
    }

    /// Drop subscriptions to boxes that no longer exist (a config reload).
    pub fn retain_mailboxes(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.subs.retain(|_, s| keep(&s.mailbox));
        self.counts.retain(|b, _| keep(b));
    }

    /// The final status of a NOTIFY we sent. A subscription whose NOTIFY
    /// failed for good (481, a timeout, most 4xx-6xx) is dropped, as RFC
    /// 6665 §4.2.2 asks; returns whether one was.
    pub fn on_notify_result(&mut self, branch: &str, status: u16) -> bool {
        let Some(key) = self.in_flight.remove(branch) else {
            return false;
        };
        let fatal = status >= 300 && !matches!(status, 401 | 407 | 491 | 500 | 503);
        fatal && self.subs.remove(&key).is_some()
    }

    /// Subscriptions (absolute expiry) and counts as plain data.
    pub fn snapshot(&self, now: Instant, wall: jiff::Timestamp) -> MwiState {
        let mut subscriptions: Vec<SavedSubscription> = self
            .subs
            .values()
            .map(|s| SavedSubscription {
                call_id: s.call_id.clone(),
                local_tag: s.local_tag.clone(),
                local: s.local.clone(),
                remote: s.remote.clone(),
                target: s.target.clone(),
                route: s.route.clone(),
                peer: SavedPeer::from(s.peer),
                cseq: s.cseq,
                remote_cseq: s.remote_cseq,
                expires_unix: to_unix(now, wall, s.expires_at),
                mailbox: s.mailbox.clone(),
                event_id: s.event_id.clone(),
            })
            .collect();
        subscriptions.sort_by(|a, b| (&a.mailbox, &a.call_id).cmp(&(&b.mailbox, &b.call_id)));
        MwiState {
            subscriptions,
            counts: self.counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// Put back saved state. Expired subscriptions and stream (TCP) ones,
    /// whose connections died with the old process, are left out. CSeqs
    /// jump ahead in case NOTIFYs went out after the state was saved.
    pub fn restore(&mut self, state: MwiState, now: Instant, wall: jiff::Timestamp) {
        for s in state.subscriptions {
            let Some(expires_at) = from_unix(now, wall, s.expires_unix) else {
                continue;
            };
            let Some(peer) = s.peer.to_peer() else {
                continue;
            };
            if self.subs.len() >= MAX_SUBSCRIPTIONS {
                break;
            }
            let key = (s.call_id.clone(), s.local_tag.clone());
            self.subs.insert(
                key,
                Subscription {
                    call_id: s.call_id,
                    local_tag: s.local_tag,
                    local: s.local,
                    remote: s.remote,
                    target: s.target,
                    route: s.route,
                    peer,
                    cseq: s.cseq.wrapping_add(100),
                    remote_cseq: s.remote_cseq,
                    expires_at,
                    mailbox: s.mailbox,
                    event_id: s.event_id,
                },
            );
        }
        self.counts.extend(state.counts);
    }
}

impl Subscription {
    fn remote_tag(&self) -> Option<&str> {
        header_param(&self.remote, "tag")
    }
}

/// Saved subscriptions and counts (the `mwi` part of the state file).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MwiState {
    pub subscriptions: Vec<SavedSubscription>,
    pub counts: BTreeMap<String, Counts>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedSubscription {
    pub call_id: String,
    pub local_tag: String,
    pub local: String,
    pub remote: String,
    pub target: String,
    pub route: Vec<String>,
    pub peer: SavedPeer,
    pub cseq: u32,
    pub remote_cseq: u32,
    /// Unix seconds.
    pub expires_unix: i64,
    pub mailbox: String,
    pub event_id: Option<String>,
}

/// The mailbox a SUBSCRIBE watches: the Request-URI's user, else To's.
pub fn watched_mailbox(req: &SipRequest) -> Option<String> {
    req.uri_user
        .clone()
        .or_else(|| req.to_user.clone())
        .filter(|u| !u.is_empty())
}

/// The RFC 3842 body.
pub fn summary_body(mailbox: &str, host: &str, counts: Counts) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: sip:{mailbox}@{host}\r\nVoice-Message: {}/{} (0/0)\r\n",
        if counts.new > 0 { "yes" } else { "no" },
        counts.new,
        counts.old
    )
}

/// An out-of-dialog NOTIFY to a registered contact that never subscribed
/// (what Asterisk calls unsolicited MWI). `host` is the Message-Account
/// host; `None` uses our local address on the phone's path.
pub fn unsolicited_notify(
    contact: &str,
    peer: Peer,
    mailbox: &str,
    host: Option<IpAddr>,
    counts: Counts,
    user_agent: &str,
) -> Notify {
    let host = host_of(host.unwrap_or(peer.local.ip()));
    let body = summary_body(mailbox, &host, counts);
    let branch = format!("z9hG4bK{}", random_token());
    let text = format!(
        "NOTIFY {contact} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{mailbox}@{host}>;tag={}\r\nTo: <{contact}>\r\nCall-ID: {}@{host}\r\n\
         CSeq: 1 NOTIFY\r\nContact: {}\r\nEvent: {EVENT}\r\nSubscription-State: active\r\n\
         User-Agent: {user_agent}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n{body}",
        via_transport(peer),
        peer.local,
        random_token(),
        random_token(),
        local_contact(mailbox, peer),
        body.len()
    );
    Notify {
        peer,
        branch,
        bytes: text.into_bytes(),
    }
}

fn accepts_summary(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case(CONTENT_TYPE)
            || t.eq_ignore_ascii_case("application/*")
            || t == "*/*"
    })
}

fn local_contact(mailbox: &str, peer: Peer) -> String {
    let transport = match peer.transport {
        TransportKind::Udp => "",
        TransportKind::Tcp => ";transport=tcp",
    };
    format!("<sip:{mailbox}@{}{transport}>", peer.local)
}

fn via_transport(peer: Peer) -> &'static str {
    match peer.transport {
        TransportKind::Udp => "UDP",
        TransportKind::Tcp => "TCP",
    }
}

fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Method;

    fn peer() -> Peer {
        Peer {
            transport: TransportKind::Udp,
            remote: "10.0.0.5:5062".parse().unwrap(),
            local: "10.0.0.1:5060".parse().unwrap(),
            connection: 0,
        }
    }

    fn tcp_peer() -> Peer {
        Peer {
            transport: TransportKind::Tcp,
            remote: "10.0.0.9:40000".parse().unwrap(),
            local: "10.0.0.1:5060".parse().unwrap(),
            connection: 3,
        }
    }

    /// A SUBSCRIBE; `to_tag` makes it a refresh; `extra` adds header lines.
    fn subscribe(
        call_id: &str,
        cseq: u32,
        to_tag: Option<&str>,
        expires: u32,
        extra: &str,
    ) -> SipRequest {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let text = format!(
            "SUBSCRIBE sip:1001@10.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{call_id}-{cseq}\r\n\
             From: \"Alice\" <sip:1001@10.0.0.1>;tag=ph1\r\n\
             To: <sip:1001@10.0.0.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: <sip:1001@10.0.0.5:5062>\r\n\
             Max-Forwards: 70\r\n\
             Event: message-summary\r\n\
             Accept: application/simple-message-summary\r\n\
             Expires: {expires}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        SipRequest::parse(text.as_bytes()).unwrap()
    }

    fn counts(new: u32, old: u32) -> impl FnOnce(&str) -> Option<Counts> {
        move |b: &str| (b == "1001" || b == "1002").then_some(Counts { new, old })
    }

    fn notifier() -> MwiNotifier {
        MwiNotifier::new(None, "voxmail-test")
    }

    /// A NOTIFY we built, read back with the same parser phones' requests go
    /// through: it must be a well-formed request.
    fn parse(n: &Notify) -> SipRequest {
        SipRequest::parse(&n.bytes).unwrap_or_else(|e| panic!("{e}: {}", n.text()))
    }

    fn body(n: &Notify) -> String {
        String::from_utf8(parse(n).body).unwrap()
    }

    #[test]
    fn subscribe_is_answered_and_notified_at_once() {
        let mut m = notifier();
        let now = Instant::now();
        let (reply, notify) = m.on_subscribe(
            now,
            &subscribe("c1", 1, None, 3600, ""),
            peer(),
            counts(2, 1),
        );
        assert_eq!((reply.status, reply.reason), (200, "OK"));
        let tag = reply.to_tag.clone().unwrap();
        assert_eq!(reply.header("Expires"), Some("3600"));
        assert_eq!(reply.header("Contact"), Some("<sip:1001@10.0.0.1:5060>"));
        let n = notify.unwrap();
        assert_eq!(n.peer, peer());
        assert!(n.branch.starts_with("z9hG4bK"));
        let text = n.text();
        assert!(
            text.starts_with("NOTIFY sip:1001@10.0.0.5:5062 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!(";branch={};rport\r\n", n.branch)));
        assert!(text.contains("Subscription-State: active;expires=3600\r\n"));
        assert!(text.contains("Event: message-summary\r\n"));
        assert!(text.contains("Content-Type: application/simple-message-summary\r\n"));
        let req = parse(&n);
        assert_eq!(req.method, Method::Notify);
        assert_eq!(req.call_id, "c1");
        assert_eq!(
            req.from_tag.as_deref(),
            Some(tag.as_str()),
            "From carries our tag"
        );
        assert_eq!(req.to_tag.as_deref(), Some("ph1"), "To carries theirs");
        assert_eq!(req.to_user.as_deref(), Some("1001"));
        assert_eq!(req.contact.as_deref(), Some("sip:1001@10.0.0.1:5060"));
        assert_eq!(
            String::from_utf8(req.body).unwrap(),
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@10.0.0.1\r\nVoice-Message: 2/1 (0/0)\r\n"
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m.counts("1001"), Some(Counts { new: 2, old: 1 }));
        assert_eq!(m.watched_mailboxes(), ["1001"]);
        assert_eq!(m.next_expiry(), Some(now + Duration::from_secs(3600)));
    }

    #[test]
    fn refusals() {
        let mut m = notifier();
        let now = Instant::now();
        let presence = subscribe("c1", 1, None, 3600, "").clone();
        let mut p = presence.clone();
        p.headers.retain(|(n, _)| n != "Event");
        p.headers.push(("Event".into(), "presence".into()));
        let (r, n) = m.on_subscribe(now, &p, peer(), counts(0, 0));
        assert_eq!(
            (r.status, r.header("Allow-Events")),
            (489, Some("message-summary"))
        );
        assert!(n.is_none());
        p.headers.retain(|(n, _)| n != "Event");
        assert_eq!(
            m.on_subscribe(now, &p, peer(), counts(0, 0)).0.status,
            489,
            "no Event at all"
        );
        let mut unknown = presence.clone();
        unknown.uri_user = Some("4040".into());
        assert_eq!(
            m.on_subscribe(now, &unknown, peer(), counts(0, 0)).0.status,
            404
        );
        let mut no_contact = presence.clone();
        no_contact.contact = None;
        assert_eq!(
            m.on_subscribe(now, &no_contact, peer(), counts(0, 0))
                .0
                .status,
            400
        );
        let mut xml = presence.clone();
        xml.headers.retain(|(n, _)| n != "Accept");
        xml.headers
            .push(("Accept".into(), "application/pidf+xml".into()));
        let (r, _) = m.on_subscribe(now, &xml, peer(), counts(0, 0));
        assert_eq!((r.status, r.header("Accept")), (406, Some(CONTENT_TYPE)));
        let (r, _) = m.on_subscribe(now, &subscribe("c2", 1, None, 10, ""), peer(), counts(0, 0));
        assert_eq!((r.status, r.header("Min-Expires")), (423, Some("60")));
        // An in-dialog SUBSCRIBE for a dialog we do not have.
        assert_eq!(
            m.on_subscribe(
                now,
                &subscribe("c3", 2, Some("nope"), 3600, ""),
                peer(),
                counts(0, 0)
            )
            .0
            .status,
            481
        );
        assert!(m.is_empty());
        // The Request-URI names the box; To is the fallback.
        let mut by_to = presence;
        by_to.uri_user = None;
        assert_eq!(watched_mailbox(&by_to).as_deref(), Some("1001"));
    }

    #[test]
    fn notify_all_reaches_each_subscriber_of_the_box_with_rising_cseq() {
        let mut m = notifier();
        let now = Instant::now();
        let (_, first) = m.on_subscribe(
            now,
            &subscribe("c1", 1, None, 600, ""),
            peer(),
            counts(0, 0),
        );
        m.on_subscribe(
            now,
            &subscribe("c2", 1, None, 3600, ""),
            peer(),
            counts(0, 0),
        );
        let mut other = subscribe("c3", 1, None, 3600, "");
        other.uri_user = Some("1002".into());
        m.on_subscribe(now, &other, peer(), counts(0, 0));
        assert_eq!(
            body(&first.clone().unwrap()).lines().next(),
            Some("Messages-Waiting: no")
        );
        let first_cseq = parse(&first.unwrap()).cseq;

        let later = now + Duration::from_secs(100);
        let sent = m.notify_all(later, "1001", Counts { new: 1, old: 4 });
        assert_eq!(sent.len(), 2);
        let mut ids: Vec<String> = sent.iter().map(|n| parse(n).call_id).collect();
        ids.sort();
        assert_eq!(ids, ["c1", "c2"]);
        for n in &sent {
            let req = parse(n);
            assert!(body(n).contains("Messages-Waiting: yes\r\nMessage-Account: sip:1001@10.0.0.1\r\nVoice-Message: 1/4 (0/0)"));
            if req.call_id == "c1" {
                assert_eq!(req.cseq, first_cseq + 1);
                assert!(
                    n.text()
                        .contains("Subscription-State: active;expires=500\r\n")
                );
            }
        }
        assert_ne!(sent[0].branch, sent[1].branch);
        // After c1 expired only c2 hears about changes.
        let sent = m.notify_all(
            now + Duration::from_secs(700),
            "1001",
            Counts { new: 0, old: 5 },
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(parse(&sent[0]).call_id, "c2");
        assert!(m.notify_all(now, "9999", Counts::default()).is_empty());
    }

    #[test]
    fn one_box_takes_a_bounded_number_of_subscriptions() {
        let mut m = notifier();
        let now = Instant::now();
        for i in 0..MAX_SUBSCRIPTIONS_PER_BOX {
            let (r, _) = m.on_subscribe(
                now,
                &subscribe(&format!("c{i}"), 1, None, 3600, ""),
                peer(),
                counts(0, 0),
            );
            assert_eq!(r.status, 200);
        }
        let (r, n) = m.on_subscribe(
            now,
            &subscribe("one-more", 1, None, 3600, ""),
            peer(),
            counts(0, 0),
        );
        assert_eq!(r.status, 503);
        assert!(n.is_none());
        // A fetch keeps nothing, so it is still answered.
        assert_eq!(
            m.on_subscribe(
                now,
                &subscribe("fetch", 1, None, 0, ""),
                peer(),
                counts(0, 0)
            )
            .0
            .status,
            200
        );
        let mut other = subscribe("other-box", 1, None, 3600, "");
        other.uri_user = Some("1002".into());
        assert_eq!(
            m.on_subscribe(now, &other, peer(), counts(0, 0)).0.status,
            200
        );
    }

    #[test]
    fn refresh_and_unsubscribe_in_the_dialog() {
        let mut m = notifier();
        let now = Instant::now();
        let (r, _) = m.on_subscribe(
            now,
            &subscribe("c1", 1, None, 600, ""),
            peer(),
            counts(1, 0),
        );
        let tag = r.to_tag.unwrap();
        let later = now + Duration::from_secs(300);
        let (r, n) = m.on_subscribe(
            later,
            &subscribe("c1", 2, Some(&tag), 3600, ""),
            peer(),
            counts(3, 0),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.to_tag.as_deref(), Some(tag.as_str()));
        assert_eq!(r.header("Expires"), Some("3600"));
        let n = n.unwrap();
        assert!(
            n.text()
                .contains("Subscription-State: active;expires=3600\r\n")
        );
        assert!(body(&n).contains("Voice-Message: 3/0"));
        assert_eq!(m.next_expiry(), Some(later + Duration::from_secs(3600)));
        // Replayed or reordered: refused, nothing changes.
        assert_eq!(
            m.on_subscribe(
                later,
                &subscribe("c1", 2, Some(&tag), 60, ""),
                peer(),
                counts(3, 0)
            )
            .0
            .status,
            500
        );
        // Their tag must match too.
        let mut wrong = subscribe("c1", 3, Some(&tag), 3600, "");
        wrong.from_tag = Some("someone-else".into());
        assert_eq!(
            m.on_subscribe(later, &wrong, peer(), counts(3, 0)).0.status,
            481
        );
        // Expires: 0 ends it with a final NOTIFY.
        let (r, n) = m.on_subscribe(
            later,
            &subscribe("c1", 4, Some(&tag), 0, ""),
            peer(),
            counts(3, 0),
        );
        assert_eq!((r.status, r.header("Expires")), (200, Some("0")));
        assert!(
            n.unwrap()
                .text()
                .contains("Subscription-State: terminated;reason=timeout\r\n")
        );
        assert!(m.is_empty());
        assert!(m.notify_all(later, "1001", Counts::default()).is_empty());
    }

    #[test]
    fn fetch_with_expires_zero_keeps_nothing() {
        let mut m = notifier();
        let now = Instant::now();
        let (r, n) = m.on_subscribe(now, &subscribe("c1", 1, None, 0, ""), peer(), counts(0, 2));
        assert_eq!(r.status, 200);
        let n = n.unwrap();
        assert!(
            n.text()
                .contains("Subscription-State: terminated;reason=timeout\r\n")
        );
        assert!(body(&n).contains("Voice-Message: 0/2 (0/0)"));
        assert!(m.is_empty());
    }

    #[test]
    fn expiry_sends_a_final_notify() {
        let mut m = notifier();
        let now = Instant::now();
        m.on_subscribe(
            now,
            &subscribe("c1", 1, None, 120, ""),
            peer(),
            counts(1, 1),
        );
        assert!(m.expire(now + Duration::from_secs(119)).is_empty());
        let gone = m.expire(now + Duration::from_secs(120));
        assert_eq!(gone.len(), 1);
        assert!(
            gone[0]
                .text()
                .contains("Subscription-State: terminated;reason=timeout\r\n")
        );
        assert!(body(&gone[0]).contains("Voice-Message: 1/1"));
        assert!(m.is_empty());
        assert_eq!(m.next_expiry(), None);
    }

    #[test]
    fn failed_notifies_drop_the_subscription() {
        let mut m = notifier();
        let now = Instant::now();
        let (_, n1) = m.on_subscribe(
            now,
            &subscribe("c1", 1, None, 3600, ""),
            peer(),
            counts(0, 0),
        );
        let (_, n2) = m.on_subscribe(
            now,
            &subscribe("c2", 1, None, 3600, ""),
            peer(),
            counts(0, 0),
        );
        let (_, n3) = m.on_subscribe(
            now,
            &subscribe("c3", 1, None, 3600, ""),
            peer(),
            counts(0, 0),
        );
        assert!(!m.on_notify_result(&n1.unwrap().branch, 200));
        assert!(!m.on_notify_result("z9hG4bKunknown", 481));
        assert_eq!(m.len(), 3);
        assert!(m.on_notify_result(&n2.unwrap().branch, 481));
        assert_eq!(m.len(), 2);
        let n3 = n3.unwrap();
        // A transient error keeps it; a later timeout drops it.
        let again = m.notify_all(now, "1001", Counts::default());
        assert!(!m.on_notify_result(&n3.branch, 503));
        let c3 = again.iter().find(|n| parse(n).call_id == "c3").unwrap();
        assert!(m.on_notify_result(&c3.branch, 408));
        let left: Vec<String> = m
            .subscriptions("1001")
            .iter()
            .map(|s| s.call_id.clone())
            .collect();
        assert_eq!(left, ["c1"]);
    }

    #[test]
    fn route_set_and_event_id_are_kept() {
        let mut m = MwiNotifier::new(Some("203.0.113.10".parse().unwrap()), "vm");
        let now = Instant::now();
        let mut req = subscribe(
            "c1",
            1,
            None,
            3600,
            "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n",
        );
        req.headers.retain(|(n, _)| n != "Event");
        req.headers
            .push(("Event".into(), "message-summary;id=7".into()));
        let (_, n) = m.on_subscribe(now, &req, peer(), counts(0, 0));
        let text = n.unwrap().text();
        assert!(
            text.contains("Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\n"),
            "{text}"
        );
        assert!(text.contains("Event: message-summary;id=7\r\n"));
        assert!(text.contains("Message-Account: sip:1001@203.0.113.10\r\n"));
    }

    #[test]
    fn state_survives_a_restart() {
        let mut m = notifier();
        let now = Instant::now();
        let wall: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let (r, n) = m.on_subscribe(
            now,
            &subscribe("c1", 1, None, 3600, ""),
            peer(),
            counts(2, 0),
        );
        let tag = r.to_tag.unwrap();
        let cseq = parse(&n.unwrap()).cseq;
        m.on_subscribe(
            now,
            &subscribe("c2", 1, None, 3600, ""),
            tcp_peer(),
            counts(2, 0),
        );
        let state = m.snapshot(now, wall);
        assert_eq!(state.subscriptions.len(), 2);
        assert_eq!(state.counts.get("1001"), Some(&Counts { new: 2, old: 0 }));
        let json = serde_json::to_string_pretty(&state).unwrap();
        let back: MwiState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);

        // A new process, 20 minutes later.
        let now2 = Instant::now() + Duration::from_secs(1);
        let mut m2 = notifier();
        m2.restore(
            back.clone(),
            now2,
            wall + jiff::SignedDuration::from_secs(1200),
        );
        assert_eq!(m2.len(), 1, "the TCP subscription cannot be reached again");
        assert_eq!(m2.counts("1001"), Some(Counts { new: 2, old: 0 }));
        let sent = m2.notify_all(now2, "1001", Counts { new: 0, old: 2 });
        assert_eq!(sent.len(), 1);
        let req = parse(&sent[0]);
        assert_eq!(req.call_id, "c1");
        assert_eq!(req.from_tag.as_deref(), Some(tag.as_str()));
        assert!(req.cseq > cseq, "CSeq keeps rising across the restart");
        assert!(
            sent[0]
                .text()
                .contains("Subscription-State: active;expires=2400\r\n")
        );
        // An in-dialog refresh still finds it.
        let (r, _) = m2.on_subscribe(
            now2,
            &subscribe("c1", 2, Some(&tag), 3600, ""),
            peer(),
            counts(0, 2),
        );
        assert_eq!(r.status, 200);
        // Restored after everything expired: nothing.
        let mut m3 = notifier();
        m3.restore(back, now2, wall + jiff::SignedDuration::from_secs(3600));
        assert!(m3.is_empty());
    }

    #[test]
    fn unsolicited_notify_is_a_well_formed_out_of_dialog_request() {
        let n = unsolicited_notify(
            "sip:1001@10.0.0.5:5062;line=x",
            peer(),
            "1001",
            None,
            Counts { new: 1, old: 0 },
            "vm",
        );
        let req = parse(&n);
        assert_eq!(req.method, Method::Notify);
        assert_eq!(req.uri, "sip:1001@10.0.0.5:5062;line=x");
        assert_eq!(req.to_tag, None);
        assert!(req.from_tag.is_some());
        assert_eq!(req.header("Event"), Some("message-summary"));
        assert_eq!(req.branch, n.branch);
        assert_eq!(
            String::from_utf8(req.body).unwrap(),
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@10.0.0.1\r\nVoice-Message: 1/0 (0/0)\r\n"
        );
        let v6 = unsolicited_notify(
            "sip:a@b",
            peer(),
            "1001",
            Some("2001:db8::1".parse().unwrap()),
            Counts::default(),
            "vm",
        );
        assert!(
            v6.text()
                .contains("Message-Account: sip:1001@[2001:db8::1]\r\n")
        );
    }
}
