//! Registrar and message-waiting glue for the signalling loop.
//!
//! [`Presence`] owns the sans-IO [`Registrar`] and [`MwiNotifier`], answers
//! the REGISTER and SUBSCRIBE requests the endpoint delegates, sends
//! NOTIFYs through the endpoint, counts messages in the store, and keeps
//! subscriptions, bindings and the last counts in `<data>/mwi.json` so that
//! lamps are right again after a restart.
//!
//! Wiring, in the loop that owns the `Endpoint` (built with
//! `delegate_register_subscribe: true`):
//! ```text
//! let mut presence = Presence::new(&config, store.root());
//! presence.on_start(Instant::now(), &mut endpoint, &store);
//! SipEvent::Request { id, request, peer } =>
//!     presence.on_request(now, &mut endpoint, id, &request, peer, &store),
//! SipEvent::RequestResult { id, status } => presence.on_request_result(now, id, status),
//! a mailbox's messages changed => presence.mailbox_changed(now, "1001"),
//! at presence.poll_timeout() => presence.tick(now, &mut endpoint),
//!     then for mailbox in presence.take_recounts(now):
//!         count(&store, mailbox) off the loop, then
//!         presence.counted(now, &mut endpoint, mailbox, counts),
//! *98 from a phone => presence.caller_mailbox_for(peer.remote, request.from_user.as_deref()),
//! on shutdown => presence.flush(Instant::now()),
//! ```
//! State writes are atomic (temp file, fsync, rename) and at most one per
//! [`SAVE_DELAY`] (from `tick`); the file is small (one entry per phone).
//! With [`Presence::save_in_background`] (the server) `tick`'s writes run on
//! a file thread, in order: on ext4 an fsync while recordings are being
//! written back can take tens of milliseconds, which the loop must not
//! spend. Start-up and shutdown write at once.
//!
//! Counting a box lists its folders, which grow with its messages; a burst
//! of deposits into a box a phone watches would list it once per message
//! on the loop. So a change only schedules a recount [`RECOUNT_DELAY`]
//! later, the loop runs it on a file thread, and changes that come while it
//! runs (or waits) are folded into one more recount: at most one listing
//! per box per [`RECOUNT_DELAY`], none on the loop.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::sip::message::Method;
use crate::sip::mwi::{self, Counts, MwiNotifier, MwiState, Notify};
use crate::sip::registrar::{RegisterReply, Registrar, RegistrarState};
use crate::sip::{Endpoint, Peer, RequestId, SipRequest};
use crate::store::{Folder, MailboxId, Store};

/// The state file under the data directory.
pub const STATE_FILE: &str = "mwi.json";
/// Longest a change waits before it is written.
pub const SAVE_DELAY: Duration = Duration::from_secs(1);
/// How long after a mailbox changes its lamps are recounted; the changes
/// in between cost one count.
pub const RECOUNT_DELAY: Duration = Duration::from_millis(200);

/// A box whose counts are to be taken again.
#[derive(Debug, Default, Clone, Copy)]
struct Recount {
    /// When it is due; `None` while a count runs and nothing changed since.
    due: Option<Instant>,
    /// A count was handed out and has not come back.
    running: bool,
}

/// What `mwi.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceState {
    pub version: u32,
    pub mwi: MwiState,
    pub registrar: RegistrarState,
}

/// The registrar, the MWI notifier and their state file.
pub struct Presence {
    registrar: Registrar,
    mwi: MwiNotifier,
    /// Configured mailbox numbers.
    boxes: HashSet<String>,
    unsolicited: bool,
    public_address: Option<IpAddr>,
    user_agent: String,
    path: PathBuf,
    /// The same moment on both clocks, to turn `Instant`s into unix time.
    anchor: (Instant, jiff::Timestamp),
    /// Subscription NOTIFYs in flight: request id → branch.
    pending: HashMap<RequestId, String>,
    /// When unsaved changes are due to be written.
    save_due: Option<Instant>,
    /// Watched boxes that changed, to be counted off the loop.
    recounts: HashMap<String, Recount>,
    /// Writes the state file; `tick`'s saves go to a file thread when set.
    writer: Arc<StateWriter>,
    background: bool,
    /// Numbers the saves, so an older one never overwrites a newer one.
    saves: u64,
}

/// Writes `mwi.json` one save at a time, skipping a save older than the
/// last one written (saves queued on file threads may run out of order).
#[derive(Debug, Default)]
struct StateWriter {
    written: Mutex<u64>,
}

impl StateWriter {
    fn write(&self, number: u64, path: &Path, state: &PresenceState) {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if *written >= number {
            return;
        }
        match write_atomic(path, state) {
            Ok(()) => *written = number,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot save message-waiting state")
            }
        }
    }
}

impl Presence {
    /// Load `<data_dir>/mwi.json` (if any) against `config`, reading the
    /// clocks now.
    pub fn new(config: &Config, data_dir: &Path) -> Presence {
        Presence::open(config, data_dir, Instant::now(), jiff::Timestamp::now())
    }

    /// [`Presence::new`] with the clocks given (`now` and `wall` are the
    /// same moment).
    pub fn open(config: &Config, data_dir: &Path, now: Instant, wall: jiff::Timestamp) -> Presence {
        let mut p = Presence {
            registrar: Registrar::new(config.mwi.realm.clone(), users(config))
                .with_algorithms(&config.mwi.digest_algorithms),
            mwi: MwiNotifier::new(config.sip.public_address, config.sip.user_agent.clone()),
            boxes: config.mailboxes.iter().map(|m| m.number.clone()).collect(),
            unsolicited: config.mwi.unsolicited,
            public_address: config.sip.public_address,
            user_agent: config.sip.user_agent.clone(),
            path: data_dir.join(STATE_FILE),
            anchor: (now, wall),
            pending: HashMap::new(),
            save_due: None,
            recounts: HashMap::new(),
            writer: Arc::default(),
            background: false,
            saves: 0,
        };
        if let Some(state) = p.load() {
            p.registrar.restore(state.registrar, now, wall);
            p.mwi.restore(state.mwi, now, wall);
            let boxes = &p.boxes;
            p.mwi.retain_mailboxes(|b| boxes.contains(b));
            tracing::info!(
                subscriptions = p.mwi.len(),
                registered = p.registrar.registered_users().len(),
                "restored message-waiting state"
            );
        }
        p
    }

    /// Take a new configuration (a reload): users, realm, boxes, options.
    pub fn reload(&mut self, config: &Config) {
        self.registrar
            .set_users(config.mwi.realm.clone(), users(config));
        self.registrar.set_algorithms(&config.mwi.digest_algorithms);
        self.boxes = config.mailboxes.iter().map(|m| m.number.clone()).collect();
        let boxes = &self.boxes;
        self.mwi.retain_mailboxes(|b| boxes.contains(b));
        self.unsolicited = config.mwi.unsolicited;
        self.public_address = config.sip.public_address;
        self.user_agent = config.sip.user_agent.clone();
        self.mwi
            .set_identity(self.public_address, self.user_agent.clone());
    }

    /// The set of boxes changed (created or deleted through the API). A
    /// box that is gone tells its watchers nothing waits any more, then its
    /// subscriptions are dropped.
    pub fn set_mailboxes(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        store: &Store,
        boxes: HashSet<String>,
    ) {
        let removed: Vec<String> = self.boxes.difference(&boxes).cloned().collect();
        for b in &removed {
            // Counted at once: the box's subscriptions go below.
            self.recounts.remove(b);
            if self.watched(b) {
                let counts = count(store, b);
                self.counted_now(now, endpoint, b, counts);
            }
        }
        self.boxes = boxes;
        let boxes = &self.boxes;
        self.mwi.retain_mailboxes(|b| boxes.contains(b));
        if !removed.is_empty() {
            self.mark_dirty(now);
        }
    }

    /// Write the state file from `tick` on a file thread instead of the
    /// caller's (the signalling loop's).
    pub fn save_in_background(&mut self, on: bool) {
        self.background = on;
    }

    /// The state file's path.
    pub fn state_path(&self) -> &Path {
        &self.path
    }

    /// A REGISTER or SUBSCRIBE the endpoint delegated: answer it and send
    /// what follows (the first NOTIFY of a subscription, an unsolicited
    /// NOTIFY to a newly registered phone).
    pub fn on_request(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        id: RequestId,
        req: &SipRequest,
        peer: Peer,
        store: &Store,
    ) {
        match req.method {
            Method::Register => self.on_register(now, endpoint, id, req, peer, store),
            Method::Subscribe => self.on_subscribe(now, endpoint, id, req, peer, store),
            _ => endpoint.respond(
                now,
                id,
                405,
                "Method Not Allowed",
                None,
                &[(
                    "Allow",
                    "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REGISTER, SUBSCRIBE".into(),
                )],
            ),
        }
    }

    fn on_register(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        id: RequestId,
        req: &SipRequest,
        peer: Peer,
        store: &Store,
    ) {
        let reply = self.registrar.handle(now, req, peer);
        respond(now, endpoint, id, &reply);
        if reply.status != 200 {
            tracing::debug!(remote = %peer.remote, status = reply.status, "REGISTER refused");
            return;
        }
        if let Some(user) = &reply.binding_changed {
            tracing::info!(%user, remote = %peer.remote, contacts = self.registrar.bindings(user).len(), "registration changed");
            if self.unsolicited && self.boxes.contains(user) {
                let counts = count(store, user);
                // Keep subscribers in step with what the new phone hears.
                if self.mwi.counts(user) != Some(counts) {
                    for n in self.mwi.notify_all(now, user, counts) {
                        self.send(now, endpoint, n, true);
                    }
                }
                self.send_unsolicited(now, endpoint, user, counts);
            }
        }
        self.mark_dirty(now);
    }

    fn on_subscribe(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        id: RequestId,
        req: &SipRequest,
        peer: Peer,
        store: &Store,
    ) {
        // A box that is also a SIP user only tells its counts to that user.
        // In-dialog refreshes are bound to the dialog that was authenticated.
        if req.to_tag.is_none()
            && let Some(mailbox) = mwi::watched_mailbox(req)
            && self.registrar.is_user(&mailbox)
            && let Err(reply) = self.registrar.authenticate(now, req, &mailbox)
        {
            respond(now, endpoint, id, &reply);
            return;
        }
        let boxes = &self.boxes;
        let (reply, notify) = self.mwi.on_subscribe(now, req, peer, |b| {
            boxes.contains(b).then(|| count(store, b))
        });
        let headers: Vec<(&str, String)> =
            reply.headers.iter().map(|(n, v)| (*n, v.clone())).collect();
        endpoint.respond(
            now,
            id,
            reply.status,
            reply.reason,
            reply.to_tag.as_deref(),
            &headers,
        );
        if let Some(n) = notify {
            self.send(now, endpoint, n, true);
        }
        if reply.status == 200 {
            self.mark_dirty(now);
        }
    }

    /// The final status of a request we sent (a NOTIFY).
    pub fn on_request_result(&mut self, now: Instant, id: RequestId, status: u16) {
        let Some(branch) = self.pending.remove(&id) else {
            return;
        };
        if self.mwi.on_notify_result(&branch, status) {
            tracing::info!(status, "NOTIFY failed; subscription dropped");
            self.mark_dirty(now);
        }
    }

    /// Something in `mailbox` changed (a message left, heard, moved or
    /// deleted): schedule a recount ([`take_recounts`](Self::take_recounts))
    /// if anyone watches the box — a subscription, or a registration when
    /// unsolicited NOTIFYs are on. Unwatched boxes are counted fresh on
    /// SUBSCRIBE instead.
    pub fn mailbox_changed(&mut self, now: Instant, mailbox: &str) {
        if !self.watched(mailbox) {
            return;
        }
        let r = self.recounts.entry(mailbox.to_string()).or_default();
        r.due.get_or_insert(now + RECOUNT_DELAY);
    }

    fn watched(&self, mailbox: &str) -> bool {
        self.boxes.contains(mailbox)
            && (!self.mwi.subscriptions(mailbox).is_empty()
                || (self.unsolicited && !self.registrar.bindings(mailbox).is_empty()))
    }

    /// The boxes due to be counted now; each is handed out once until its
    /// [`counted`](Self::counted) comes back.
    pub fn take_recounts(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        for (mailbox, r) in &mut self.recounts {
            if !r.running && r.due.is_some_and(|t| t <= now) {
                r.running = true;
                r.due = None;
                due.push(mailbox.clone());
            }
        }
        due
    }

    /// A count handed out by [`take_recounts`](Self::take_recounts) came
    /// back: tell the box's watchers if its counts changed. A change made
    /// while it ran is counted again at its own time.
    pub fn counted(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        mailbox: &str,
        counts: Counts,
    ) {
        if let Some(r) = self.recounts.get_mut(mailbox) {
            r.running = false;
            if r.due.is_none() {
                self.recounts.remove(mailbox);
            }
        }
        if self.watched(mailbox) {
            self.counted_now(now, endpoint, mailbox, counts);
        }
    }

    fn counted_now(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        mailbox: &str,
        counts: Counts,
    ) {
        if self.mwi.counts(mailbox) == Some(counts) {
            return;
        }
        self.notify_box(now, endpoint, mailbox, counts);
        self.mark_dirty(now);
    }

    fn notify_box(&mut self, now: Instant, endpoint: &mut Endpoint, mailbox: &str, counts: Counts) {
        for n in self.mwi.notify_all(now, mailbox, counts) {
            self.send(now, endpoint, n, true);
        }
        if self.unsolicited {
            self.send_unsolicited(now, endpoint, mailbox, counts);
        }
    }

    /// After start: every restored subscription (and, with `unsolicited`,
    /// every restored registration) hears the current counts.
    pub fn on_start(&mut self, now: Instant, endpoint: &mut Endpoint, store: &Store) {
        let mut boxes: Vec<String> = self.mwi.watched_mailboxes();
        if self.unsolicited {
            boxes.extend(self.registrar.registered_users());
        }
        boxes.sort();
        boxes.dedup();
        boxes.retain(|b| self.boxes.contains(b));
        for mailbox in &boxes {
            let counts = count(store, mailbox);
            self.notify_box(now, endpoint, mailbox, counts);
        }
        self.save(now, false);
    }

    /// Expire bindings and subscriptions (ended subscriptions get their
    /// final NOTIFY).
    pub fn tick(&mut self, now: Instant, endpoint: &mut Endpoint) {
        let gone = self.registrar.expire(now);
        let ended = self.mwi.expire(now);
        let changed = !gone.is_empty() || !ended.is_empty();
        for user in gone {
            tracing::info!(%user, "registration expired");
        }
        for n in ended {
            self.send(now, endpoint, n, false);
        }
        if changed {
            self.mark_dirty(now);
        }
        if self.save_due.is_some_and(|t| t <= now) {
            self.save(now, self.background);
        }
    }

    /// Write pending state now (on shutdown).
    pub fn flush(&mut self, now: Instant) {
        if self.save_due.is_some() {
            self.save(now, false);
        }
    }

    /// Changes are written at most once per [`SAVE_DELAY`] (by `tick`), so
    /// a burst of REGISTERs costs one file write, not one each.
    fn mark_dirty(&mut self, now: Instant) {
        self.save_due.get_or_insert(now + SAVE_DELAY);
    }

    /// When `tick` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.registrar.next_expiry(),
            self.mwi.next_expiry(),
            self.save_due,
            self.recounts
                .values()
                .filter(|r| !r.running)
                .filter_map(|r| r.due)
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The mailbox of the registered phone calling from `remote` (`*98`).
    pub fn caller_mailbox(&self, remote: SocketAddr) -> Option<String> {
        self.registrar.user_for(remote)
    }

    /// Like [`Presence::caller_mailbox`], but when several users registered
    /// from that address (phones behind one proxy or SBC) the one named in
    /// the call's From wins: `from_user` is `SipRequest::from_user`.
    pub fn caller_mailbox_for(
        &self,
        remote: SocketAddr,
        from_user: Option<&str>,
    ) -> Option<String> {
        if let Some(user) = from_user
            && self
                .registrar
                .bindings(user)
                .iter()
                .any(|b| b.peer.remote == remote)
        {
            return Some(user.to_owned());
        }
        self.registrar.user_for(remote)
    }

    /// The registrar, for inspection.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The notifier, for inspection.
    pub fn notifier(&self) -> &MwiNotifier {
        &self.mwi
    }

    fn send_unsolicited(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        user: &str,
        counts: Counts,
    ) {
        // Phones that subscribed hear it in their dialog already.
        let subscribed: HashSet<SocketAddr> = self
            .mwi
            .subscriptions(user)
            .iter()
            .map(|s| s.peer.remote)
            .collect();
        for b in self.registrar.bindings(user) {
            if subscribed.contains(&b.peer.remote) {
                continue;
            }
            let n = mwi::unsolicited_notify(
                &b.contact,
                b.peer,
                user,
                self.public_address,
                counts,
                &self.user_agent,
            );
            self.send(now, endpoint, n, false);
        }
    }

    fn send(&mut self, now: Instant, endpoint: &mut Endpoint, n: Notify, track: bool) {
        let id = endpoint.send_request(now, n.peer, &n.branch, n.bytes);
        if track {
            self.pending.insert(id, n.branch);
        }
    }

    fn wall(&self, now: Instant) -> jiff::Timestamp {
        let (at, wall) = self.anchor;
        let ahead = now.saturating_duration_since(at);
        let behind = at.saturating_duration_since(now);
        let d = jiff::SignedDuration::try_from(ahead).unwrap_or(jiff::SignedDuration::MAX)
            - jiff::SignedDuration::try_from(behind).unwrap_or(jiff::SignedDuration::MAX);
        wall.checked_add(d).unwrap_or(wall)
    }

    fn load(&self) -> Option<PresenceState> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read message-waiting state");
                return None;
            }
        };
        match serde_json::from_slice::<PresenceState>(&bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                // Keep the bad file for a human; the next save starts afresh.
                let bad = self.path.with_extension("json.bad");
                tracing::warn!(path = %self.path.display(), error = %e, moved_to = %bad.display(), "corrupt message-waiting state ignored");
                let _ = fs::rename(&self.path, &bad);
                None
            }
        }
    }

    /// Write the state file atomically; failures are logged, not fatal.
    fn save(&mut self, now: Instant, background: bool) {
        self.save_due = None;
        self.saves += 1;
        let number = self.saves;
        if background {
            let (writer, path, state) =
                (self.writer.clone(), self.path.clone(), self.snapshot(now));
            if crate::io_pool::spawn(move || writer.write(number, &path, &state)).is_ok() {
                return;
            }
            // No file threads (shutting down): write it here.
        }
        self.writer.write(number, &self.path, &self.snapshot(now));
    }

    fn snapshot(&self, now: Instant) -> PresenceState {
        let wall = self.wall(now);
        PresenceState {
            version: 1,
            mwi: self.mwi.snapshot(now, wall),
            registrar: self.registrar.snapshot(now, wall),
        }
    }
}

fn users(config: &Config) -> HashMap<String, String> {
    config
        .mwi
        .sip_passwords
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn respond(now: Instant, endpoint: &mut Endpoint, id: RequestId, reply: &RegisterReply) {
    let headers: Vec<(&str, String)> = reply.headers.iter().map(|(n, v)| (*n, v.clone())).collect();
    endpoint.respond(
        now,
        id,
        reply.status,
        reply.reason,
        reply.to_tag.as_deref(),
        &headers,
    );
}

/// New (inbox) and old messages of a box; an unreadable box counts as empty.
pub fn count(store: &Store, mailbox: &str) -> Counts {
    let Ok(id) = MailboxId::try_from(mailbox) else {
        return Counts::default();
    };
    let n = |folder| match store.count_messages(&id, folder) {
        Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
        Err(e) => {
            tracing::warn!(%mailbox, %folder, error = %e, "cannot count messages");
            0
        }
    };
    Counts {
        new: n(Folder::Inbox),
        old: n(Folder::Old),
    }
}

fn write_atomic(path: &Path, state: &PresenceState) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(STATE_FILE);
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rsipstack::dialog::authenticate::compute_digest;
    use rsipstack::sip::headers::auth::{Algorithm, AuthQop};

    use super::*;
    use crate::sip::{EndpointConfig, SipEvent, TransportKind};
    use crate::store::NewMessage;

    const ALICE_PW: &str = "alice-secret";

    fn config(unsolicited: bool) -> Config {
        Config::parse(
            &format!(
                "[mwi]\nunsolicited = {unsolicited}\n\n\
                 [[mailbox]]\nnumber = \"1001\"\npin = \"1234\"\nsip_password = \"{ALICE_PW}\"\n\n\
                 [[mailbox]]\nnumber = \"1002\"\npin = \"5678\"\n"
            ),
            "test.toml",
        )
        .unwrap()
    }

    fn phone() -> Peer {
        Peer {
            transport: TransportKind::Udp,
            remote: "10.0.0.5:5062".parse().unwrap(),
            local: "10.0.0.1:5060".parse().unwrap(),
            connection: 0,
        }
    }

    struct H {
        ep: Endpoint,
        now: Instant,
        store: Store,
        presence: Presence,
    }

    impl H {
        fn new(dir: &Path, unsolicited: bool) -> H {
            let now = Instant::now();
            H::at(
                dir,
                unsolicited,
                now,
                "2026-05-01T08:00:00Z".parse().unwrap(),
            )
        }

        fn at(dir: &Path, unsolicited: bool, now: Instant, wall: jiff::Timestamp) -> H {
            let store = Store::open(dir).unwrap();
            H {
                ep: Endpoint::new(EndpointConfig {
                    delegate_register_subscribe: true,
                    ..EndpointConfig::default()
                }),
                now,
                presence: Presence::open(&config(unsolicited), store.root(), now, wall),
                store,
            }
        }

        /// Feed a request from the phone; returns everything sent back.
        fn feed(&mut self, text: &str) -> Vec<String> {
            self.ep.handle_message(self.now, phone(), text.as_bytes());
            self.pump()
        }

        /// Dispatch endpoint events to presence as the loop will; drain sends.
        fn pump(&mut self) -> Vec<String> {
            while let Some(e) = self.ep.poll_event() {
                match e {
                    SipEvent::Request { id, request, peer } => self.presence.on_request(
                        self.now,
                        &mut self.ep,
                        id,
                        &request,
                        peer,
                        &self.store,
                    ),
                    SipEvent::RequestResult { id, status } => {
                        self.presence.on_request_result(self.now, id, status)
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            std::iter::from_fn(|| self.ep.poll_transmit())
                .map(|t| String::from_utf8(t.data).unwrap())
                .collect()
        }

        /// A change, then the recount when it is due, as the loop does it.
        fn changed(&mut self, mailbox: &str) -> Vec<String> {
            self.presence.mailbox_changed(self.now, mailbox);
            self.now += RECOUNT_DELAY;
            for mb in self.presence.take_recounts(self.now) {
                let counts = count(&self.store, &mb);
                self.presence.counted(self.now, &mut self.ep, &mb, counts);
            }
            self.pump()
        }

        /// The phone answers a NOTIFY we sent.
        fn answer(&mut self, notify: &str, status: u16) {
            let branch = notify
                .split("branch=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            let resp = format!(
                "SIP/2.0 {status} Whatever\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
                 From: <sip:1001@10.0.0.1>;tag=a\r\nTo: <sip:1001@10.0.0.5>;tag=b\r\n\
                 Call-ID: x\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n"
            );
            self.ep.handle_message(self.now, phone(), resp.as_bytes());
            assert!(self.pump().is_empty());
        }
    }

    /// The To tag our answer to a SUBSCRIBE for `mailbox` gave.
    fn to_tag(answer: &str, mailbox: &str) -> String {
        answer
            .split(&format!("To: <sip:{mailbox}@10.0.0.1>;tag="))
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .to_owned()
    }

    fn status(msg: &str) -> u16 {
        msg.split(' ').nth(1).unwrap().parse().unwrap()
    }

    fn deposit(store: &Store, mailbox: &str) -> MailboxId {
        let mb = MailboxId::try_from(mailbox).unwrap();
        let mut w = store
            .begin_message(NewMessage {
                mailbox: mb.clone(),
                caller_number: "+3225550100".into(),
                caller_name: None,
                called_number: mailbox.into(),
                call_id: "dep@test".into(),
                codec: "PCMU".into(),
                started_at: jiff::Timestamp::now(),
            })
            .unwrap();
        w.write(&[100i16; 8000]).unwrap();
        w.finish(0).unwrap().unwrap();
        mb
    }

    fn request(method: &str, user: &str, call_id: &str, cseq: u32, extra: &str) -> String {
        format!(
            "{method} sip:{user}@10.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{call_id}-{cseq}\r\n\
             From: <sip:{user}@10.0.0.1>;tag=ph-{call_id}\r\n\
             To: <sip:{user}@10.0.0.1>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
             Contact: <sip:{user}@10.0.0.5:5062>\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn subscribe(user: &str, call_id: &str, cseq: u32, extra: &str) -> String {
        request(
            "SUBSCRIBE",
            user,
            call_id,
            cseq,
            &format!("Event: message-summary\r\n{extra}"),
        )
    }

    /// The Authorization line answering the MD5 challenge in `challenge`.
    fn answer_challenge(challenge: &str, method: Method, user: &str, password: &str) -> String {
        let line = challenge
            .lines()
            .find(|l| l.starts_with("WWW-Authenticate:") && l.contains("algorithm=MD5"))
            .unwrap();
        let nonce = line
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let uri = format!("sip:{user}@10.0.0.1:5060");
        let qop = AuthQop::Auth {
            cnonce: "0a1b".into(),
            nc: 1,
        };
        let response = compute_digest(
            user,
            password,
            "voxmail",
            nonce,
            &method,
            &uri,
            Algorithm::Md5,
            Some(&qop),
        );
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"voxmail\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"0a1b\"\r\n"
        )
    }

    /// REGISTER 1001 through challenge and answer; returns what the answer produced.
    fn register(h: &mut H, call_id: &str) -> Vec<String> {
        let ch = h.feed(&request("REGISTER", "1001", call_id, 1, ""));
        assert_eq!(ch.len(), 1);
        assert_eq!(status(&ch[0]), 401);
        let auth = answer_challenge(&ch[0], Method::Register, "1001", ALICE_PW);
        h.feed(&request("REGISTER", "1001", call_id, 2, &auth))
    }

    #[test]
    fn register_with_digest_then_star98_lookup_and_unsolicited_notify() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), true);
        deposit(&h.store, "1001");
        let ch = h.feed(&request("REGISTER", "1001", "reg-1", 1, ""));
        let challenges: Vec<&str> = ch[0]
            .lines()
            .filter(|l| l.starts_with("WWW-Authenticate: Digest"))
            .collect();
        assert_eq!(challenges.len(), 2, "{}", ch[0]);
        assert!(
            challenges[0].contains("algorithm=MD5") && challenges[1].contains("algorithm=SHA-256")
        );
        assert_eq!(h.presence.caller_mailbox(phone().remote), None);

        let sent = register(&mut h, "reg-1");
        assert_eq!(sent.len(), 2, "{sent:#?}");
        assert_eq!(status(&sent[0]), 200);
        assert!(sent[0].contains("Contact: <sip:1001@10.0.0.5:5062>;expires=3600\r\n"));
        assert!(
            sent[1].starts_with("NOTIFY sip:1001@10.0.0.5:5062 SIP/2.0\r\n"),
            "{}",
            sent[1]
        );
        assert!(sent[1].contains("Messages-Waiting: yes\r\nMessage-Account: sip:1001@10.0.0.1\r\nVoice-Message: 1/0 (0/0)\r\n"));
        assert_eq!(
            h.presence.caller_mailbox(phone().remote).as_deref(),
            Some("1001")
        );
        assert_eq!(
            h.presence.caller_mailbox("10.0.0.6:5062".parse().unwrap()),
            None
        );
        assert_eq!(
            h.presence
                .caller_mailbox_for(phone().remote, Some("1001"))
                .as_deref(),
            Some("1001")
        );
        assert_eq!(
            h.presence
                .caller_mailbox_for(phone().remote, Some("1002"))
                .as_deref(),
            Some("1001")
        );
        // Written once, a moment later, not on every request.
        assert!(!h.presence.state_path().exists());
        assert_eq!(h.presence.poll_timeout(), Some(h.now + SAVE_DELAY));
        h.now += SAVE_DELAY;
        h.presence.tick(h.now, &mut h.ep);
        let saved: PresenceState =
            serde_json::from_slice(&fs::read(h.presence.state_path()).unwrap()).unwrap();
        assert_eq!(saved.registrar.bindings.len(), 1);
        assert_eq!(
            saved.registrar.bindings[0].contact,
            "sip:1001@10.0.0.5:5062"
        );

        // A wrong password is refused, and 1002 is no SIP user at all.
        let ch = h.feed(&request("REGISTER", "1001", "reg-2", 1, ""));
        let bad = answer_challenge(&ch[0], Method::Register, "1001", "not-the-password");
        assert_eq!(
            status(&h.feed(&request("REGISTER", "1001", "reg-2", 2, &bad))[0]),
            403
        );
        let ch = h.feed(&request("REGISTER", "1002", "reg-3", 1, ""));
        let any = answer_challenge(&ch[0], Method::Register, "1002", "whatever1");
        assert_eq!(
            status(&h.feed(&request("REGISTER", "1002", "reg-3", 2, &any))[0]),
            403
        );

        // A new message: the registered phone hears it (unsolicited is on).
        deposit(&h.store, "1001");
        let sent = h.changed("1001");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("Voice-Message: 2/0 (0/0)"));
    }

    #[test]
    fn background_saves_land_in_order_and_an_older_one_never_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        h.presence.save_in_background(true);
        let sent = h.feed(&subscribe("1002", "sub-1", 1, "Expires: 600\r\n"));
        h.answer(&sent[1], 200);
        h.now += SAVE_DELAY;
        h.presence.tick(h.now, &mut h.ep);
        // Written by a file thread: wait for it.
        let path = h.presence.state_path().to_path_buf();
        let until = Instant::now() + Duration::from_secs(5);
        while !path.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let saved: PresenceState = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(saved.mwi.subscriptions.len(), 1);

        // A save numbered before the last one written is skipped.
        let writer = StateWriter::default();
        let empty = PresenceState::default();
        writer.write(2, &path, &saved);
        writer.write(1, &path, &empty);
        let now: PresenceState = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(now, saved);
    }

    #[test]
    fn a_burst_of_changes_to_a_watched_box_is_counted_once_off_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        let sent = h.feed(&subscribe("1002", "sub-1", 1, "Expires: 600\r\n"));
        h.answer(&sent[1], 200);
        // An unwatched box schedules nothing.
        h.presence.mailbox_changed(h.now, "1001");
        assert!(h.presence.take_recounts(h.now + RECOUNT_DELAY).is_empty());

        // Ten messages in quick succession: one recount, due RECOUNT_DELAY
        // after the first, and nothing sent before it comes back.
        let t0 = h.now;
        for i in 0..10 {
            deposit(&h.store, "1002");
            h.presence
                .mailbox_changed(t0 + Duration::from_millis(i * 10), "1002");
        }
        assert_eq!(h.presence.poll_timeout(), Some(t0 + RECOUNT_DELAY));
        assert!(h.presence.take_recounts(t0 + RECOUNT_DELAY / 2).is_empty());
        h.now = t0 + RECOUNT_DELAY;
        assert_eq!(h.presence.take_recounts(h.now), ["1002"]);
        assert!(
            h.presence.take_recounts(h.now).is_empty(),
            "handed out once"
        );
        assert!(h.pump().is_empty());

        // Another message while the count runs: counted again afterwards,
        // not at the same time.
        deposit(&h.store, "1002");
        h.presence.mailbox_changed(h.now, "1002");
        assert!(h.presence.take_recounts(h.now + RECOUNT_DELAY).is_empty());
        let stale = Counts { new: 10, old: 0 };
        h.presence.counted(h.now, &mut h.ep, "1002", stale);
        let sent = h.pump();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("Voice-Message: 10/0 (0/0)"));
        h.answer(&sent[0], 200);
        h.now += RECOUNT_DELAY;
        assert_eq!(h.presence.take_recounts(h.now), ["1002"]);
        let fresh = count(&h.store, "1002");
        assert_eq!(fresh, Counts { new: 11, old: 0 });
        h.presence.counted(h.now, &mut h.ep, "1002", fresh);
        let sent = h.pump();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("Voice-Message: 11/0 (0/0)"));
        // Nothing left to do.
        assert!(
            h.presence
                .take_recounts(h.now + RECOUNT_DELAY * 10)
                .is_empty()
        );
    }

    #[test]
    fn subscription_lamp_follows_the_box() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        let sent = h.feed(&subscribe("1002", "sub-1", 1, "Expires: 600\r\n"));
        assert_eq!(sent.len(), 2, "{sent:#?}");
        assert_eq!(status(&sent[0]), 200);
        assert!(sent[0].contains("Expires: 600\r\n"));
        let tag = to_tag(&sent[0], "1002");
        assert!(sent[1].starts_with("NOTIFY sip:1002@10.0.0.5:5062 SIP/2.0\r\n"));
        assert!(sent[1].contains(&format!("From: <sip:1002@10.0.0.1>;tag={tag}\r\n")));
        assert!(sent[1].contains("Messages-Waiting: no\r\n"));
        assert!(sent[1].contains("Voice-Message: 0/0 (0/0)"));
        h.answer(&sent[1], 200);

        let mb = deposit(&h.store, "1002");
        let sent = h.changed("1002");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("Call-ID: sub-1\r\n"));
        assert!(sent[0].contains("Messages-Waiting: yes\r\n"));
        assert!(sent[0].contains("Voice-Message: 1/0 (0/0)"));
        h.answer(&sent[0], 200);
        assert!(
            h.changed("1002").is_empty(),
            "nothing changed, nothing sent"
        );

        // Heard: the message moves to Old and the lamp goes out.
        let msg = h.store.list_messages(&mb, Folder::Inbox).unwrap().remove(0);
        h.store
            .move_message(
                &mb,
                Folder::Inbox,
                Folder::Old,
                &msg.id.as_str().try_into().unwrap(),
            )
            .unwrap();
        let sent = h.changed("1002");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("Messages-Waiting: no\r\n"));
        assert!(sent[0].contains("Voice-Message: 0/1 (0/0)"));
        // Other boxes: nobody subscribed; unknown boxes are ignored.
        deposit(&h.store, "1001");
        assert!(h.changed("1001").is_empty());
        assert!(h.changed("9999").is_empty());
        // Unsubscribe: a final NOTIFY.
        let sent = h.feed(&subscribe("1002", "sub-1", 2, "Expires: 0\r\n").replace(
            "To: <sip:1002@10.0.0.1>\r\n",
            &format!("To: <sip:1002@10.0.0.1>;tag={tag}\r\n"),
        ));
        assert_eq!(status(&sent[0]), 200);
        assert!(sent[1].contains("Subscription-State: terminated;reason=timeout\r\n"));
        assert!(h.presence.notifier().is_empty());
    }

    #[test]
    fn boxes_created_and_deleted_through_the_api_follow() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        let boxes = |b: &[&str]| b.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        // Not a box yet: the subscription is refused.
        let sent = h.feed(&subscribe("2000", "sub-2", 1, "Expires: 600\r\n"));
        assert_ne!(status(&sent[0]), 200, "{sent:#?}");
        h.presence
            .set_mailboxes(h.now, &mut h.ep, &h.store, boxes(&["1001", "1002", "2000"]));
        let mb = deposit(&h.store, "2000");
        let sent = h.feed(&subscribe("2000", "sub-3", 1, "Expires: 600\r\n"));
        assert_eq!(status(&sent[0]), 200, "{sent:#?}");
        assert!(sent[1].contains("Messages-Waiting: yes\r\n"));
        h.answer(&sent[1], 200);
        // Deleted: its folder goes, the watcher hears nothing waits, and
        // the subscription is dropped.
        h.store.remove_mailbox(&mb).unwrap();
        h.presence
            .set_mailboxes(h.now, &mut h.ep, &h.store, boxes(&["1001", "1002"]));
        let sent = h.pump();
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert!(sent[0].contains("Messages-Waiting: no\r\n"), "{}", sent[0]);
        assert!(h.presence.notifier().is_empty());
    }

    #[test]
    fn subscribing_to_a_sip_users_box_needs_its_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        let ch = h.feed(&subscribe("1001", "sub-a", 1, ""));
        assert_eq!(ch.len(), 1);
        assert_eq!(status(&ch[0]), 401);
        assert!(h.presence.notifier().is_empty());
        let auth = answer_challenge(&ch[0], Method::Subscribe, "1001", ALICE_PW);
        let sent = h.feed(&subscribe("1001", "sub-a", 2, &auth));
        assert_eq!(status(&sent[0]), 200);
        assert!(sent[1].starts_with("NOTIFY "));
        assert_eq!(h.presence.notifier().len(), 1);
        // Wrong password.
        let ch = h.feed(&subscribe("1001", "sub-b", 1, ""));
        let bad = answer_challenge(&ch[0], Method::Subscribe, "1001", "nope-nope");
        assert_eq!(
            status(&h.feed(&subscribe("1001", "sub-b", 2, &bad))[0]),
            403
        );
        // Unknown box, other event packages.
        assert_eq!(status(&h.feed(&subscribe("4040", "sub-c", 1, ""))[0]), 404);
        let presence_pkg = request("SUBSCRIBE", "1002", "sub-d", 1, "Event: presence\r\n");
        let r = h.feed(&presence_pkg);
        assert_eq!(status(&r[0]), 489);
        assert!(r[0].contains("Allow-Events: message-summary\r\n"));
        assert_eq!(h.presence.notifier().len(), 1);
    }

    #[test]
    fn subscriptions_registrations_and_lamps_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let wall: jiff::Timestamp = "2026-05-01T08:00:00Z".parse().unwrap();
        let (tag, first_cseq) = {
            let mut h = H::at(dir.path(), true, Instant::now(), wall);
            let sent = h.feed(&subscribe("1002", "sub-1", 1, ""));
            assert_eq!(status(&sent[0]), 200);
            let tag = sent[0]
                .split(";tag=")
                .nth(2)
                .unwrap()
                .split("\r\n")
                .next()
                .unwrap()
                .to_owned();
            let cseq: u32 = sent[1]
                .split("CSeq: ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(status(&register(&mut h, "reg-1")[0]), 200);
            h.presence.flush(h.now);
            (tag, cseq)
        };
        // Messages arrive while voxmail is down.
        deposit(&Store::open(dir.path()).unwrap(), "1002");
        deposit(&Store::open(dir.path()).unwrap(), "1001");

        let now = Instant::now() + Duration::from_secs(1);
        let mut h = H::at(
            dir.path(),
            true,
            now,
            wall + jiff::SignedDuration::from_secs(90),
        );
        assert_eq!(
            h.presence.caller_mailbox(phone().remote).as_deref(),
            Some("1001")
        );
        assert_eq!(h.presence.notifier().len(), 1);
        h.presence.on_start(h.now, &mut h.ep, &h.store);
        let sent = h.pump();
        assert_eq!(sent.len(), 2, "{sent:#?}");
        let sub = sent
            .iter()
            .find(|m| m.contains("Call-ID: sub-1\r\n"))
            .expect("in-dialog NOTIFY");
        assert!(sub.contains(&format!("From: <sip:1002@10.0.0.1>;tag={tag}\r\n")));
        assert!(
            sub.contains("Subscription-State: active;expires=3510\r\n"),
            "{sub}"
        );
        assert!(sub.contains("Voice-Message: 1/0 (0/0)"));
        let cseq: u32 = sub
            .split("CSeq: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(cseq > first_cseq);
        let reg = sent
            .iter()
            .find(|m| !m.contains("Call-ID: sub-1\r\n"))
            .unwrap();
        assert!(reg.starts_with("NOTIFY sip:1001@10.0.0.5:5062 SIP/2.0\r\n"));
        assert!(reg.contains("Voice-Message: 1/0 (0/0)"));
        // The restored subscription still takes in-dialog refreshes.
        let refresh = subscribe("1002", "sub-1", 2, "").replace(
            "To: <sip:1002@10.0.0.1>\r\n",
            &format!("To: <sip:1002@10.0.0.1>;tag={tag}\r\n"),
        );
        assert_eq!(status(&h.feed(&refresh)[0]), 200);
    }

    #[test]
    fn a_failed_notify_ends_the_subscription_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        let sent = h.feed(&subscribe("1002", "sub-1", 1, ""));
        h.presence.flush(h.now);
        assert_eq!(H::new(dir.path(), false).presence.notifier().len(), 1);
        h.answer(&sent[1], 481);
        assert!(h.presence.notifier().is_empty());
        deposit(&h.store, "1002");
        assert!(h.changed("1002").is_empty());
        h.presence.flush(h.now);
        drop(h);
        let h = H::new(dir.path(), false);
        assert!(
            h.presence.notifier().is_empty(),
            "the saved state forgot it too"
        );
    }

    #[test]
    fn tick_expires_subscriptions_and_registrations() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        h.feed(&subscribe("1002", "sub-1", 1, "Expires: 60\r\n"));
        let ch = h.feed(&request("REGISTER", "1001", "reg-1", 1, ""));
        let auth = answer_challenge(&ch[0], Method::Register, "1001", ALICE_PW);
        let ok = h.feed(&request(
            "REGISTER",
            "1001",
            "reg-1",
            2,
            &format!("Expires: 120\r\n{auth}"),
        ));
        assert_eq!(status(&ok[0]), 200);
        let start = h.now;
        // First the pending save, then the subscription's expiry.
        assert_eq!(h.presence.poll_timeout(), Some(start + SAVE_DELAY));
        h.presence.tick(start + SAVE_DELAY, &mut h.ep);
        assert!(h.pump().is_empty());
        assert_eq!(
            h.presence.poll_timeout(),
            Some(start + Duration::from_secs(60))
        );
        h.now = start + Duration::from_secs(61);
        h.presence.tick(h.now, &mut h.ep);
        let sent = h.pump();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("Subscription-State: terminated;reason=timeout\r\n"));
        assert!(h.presence.notifier().is_empty());
        assert_eq!(
            h.presence.caller_mailbox(phone().remote).as_deref(),
            Some("1001")
        );
        h.now = start + Duration::from_secs(121);
        h.presence.tick(h.now, &mut h.ep);
        assert_eq!(h.presence.caller_mailbox(phone().remote), None);
        h.presence.tick(h.now + SAVE_DELAY, &mut h.ep);
        assert_eq!(h.presence.poll_timeout(), None);
        let saved: PresenceState =
            serde_json::from_slice(&fs::read(h.presence.state_path()).unwrap()).unwrap();
        assert!(saved.registrar.bindings.is_empty());
        assert!(saved.mwi.subscriptions.is_empty());
    }

    #[test]
    fn reload_forgets_removed_boxes_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = H::new(dir.path(), false);
        assert_eq!(status(&register(&mut h, "reg-1")[0]), 200);
        assert_eq!(status(&h.feed(&subscribe("1002", "sub-1", 1, ""))[0]), 200);
        let only_1001 = Config::parse(
            "[sip]\npublic_address = \"203.0.113.7\"\n[[mailbox]]\nnumber = \"1001\"\npin = \"1234\"\n",
            "t.toml",
        )
        .unwrap();
        h.presence.reload(&only_1001);
        assert!(h.presence.notifier().is_empty(), "1002 is gone");
        assert_eq!(
            h.presence.caller_mailbox(phone().remote),
            None,
            "1001 lost its password"
        );
        assert_eq!(status(&h.feed(&subscribe("1002", "sub-2", 1, ""))[0]), 404);
        // 1001 no longer needs credentials, and the new public address shows.
        let sent = h.feed(&subscribe("1001", "sub-3", 1, ""));
        assert_eq!(status(&sent[0]), 200);
        assert!(sent[1].contains("Message-Account: sip:1001@203.0.113.7\r\n"));
    }

    #[test]
    fn a_corrupt_state_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{ not json").unwrap();
        let mut h = H::new(dir.path(), false);
        assert!(h.presence.notifier().is_empty());
        assert!(dir.path().join("mwi.json.bad").exists());
        assert_eq!(status(&h.feed(&subscribe("1002", "sub-1", 1, ""))[0]), 200);
        h.presence.flush(h.now);
        let saved: PresenceState =
            serde_json::from_slice(&fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(saved.version, 1);
        assert_eq!(saved.mwi.subscriptions.len(), 1);
    }
}
