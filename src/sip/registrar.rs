//! The embedded registrar (RFC 3261 §10.3) with digest authentication
//! (RFC 2617 MD5 and RFC 8760 SHA-256, `qop=auth`). Which algorithms are
//! offered, in which order, is configuration (`[mwi] digest_algorithms`):
//! old phones give up on a challenge list that is not MD5-first or that
//! holds anything but MD5, so the operator chooses between reach and
//! strength.
//!
//! Sans-IO like the endpoint: [`Registrar::handle`] takes a parsed REGISTER,
//! the instant it arrived and where it came from, and says what to answer;
//! the caller sends it with `Endpoint::respond`. Bindings and nonces live in
//! memory; [`Registrar::snapshot`] and [`Registrar::restore`] carry bindings
//! across a restart.
//!
//! Digest arithmetic is rsipstack's `compute_digest`. We parse the
//! `Authorization` value with rsipstack's `AuthTokenizer` rather than its
//! typed `Authorization`, which rejects the RFC 8760 spelling
//! `algorithm=SHA-256` and nonce counts above `ff`, and we hash the nonce
//! count as the client wrote it (rsipstack formats it in decimal, which
//! differs from the hex on the wire from `nc=0000000a` on).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::dialog::authenticate::compute_digest;
use rsipstack::sip::headers::auth::Algorithm;
use rsipstack::sip::typed::tokenizers::AuthTokenizer;
use subtle::ConstantTimeEq;

use super::endpoint::{Peer, TransportKind};
use super::message::{SipRequest, header_param, random_token};

/// Binding lifetime when the phone asks for none (RFC 3261 suggests 3600).
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Shorter registrations get 423 Interval Too Brief.
pub const MIN_EXPIRES: u32 = 60;
/// Longer registrations are shortened to this.
pub const MAX_EXPIRES: u32 = 7200;
/// How long a nonce we handed out stays good.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonces remembered at once; the oldest are forgotten first, so a flood
/// of unauthenticated requests cannot grow memory without bound.
const MAX_NONCES: usize = 20_000;
/// Contacts one user may have registered at once.
pub const MAX_BINDINGS_PER_USER: usize = 10;

/// A digest algorithm the registrar can offer and verify. The `-sess`
/// variants and SHA-512-256 are not implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// RFC 2617: what every phone speaks.
    Md5,
    /// RFC 8760.
    Sha256,
}

impl DigestAlgorithm {
    /// Every algorithm implemented.
    pub const ALL: [DigestAlgorithm; 2] = [DigestAlgorithm::Md5, DigestAlgorithm::Sha256];

    /// Offered when nothing is configured. MD5 first: phones that read only
    /// the first challenge (SIPp 3.6) or take the topmost they support then
    /// use MD5, and SHA-256 is there for phones that speak nothing else.
    /// Phones that give up on any non-MD5 challenge (libre 1.x, i.e.
    /// baresip 1.0) need `[Md5]` alone.
    pub const DEFAULT: [DigestAlgorithm; 2] = [DigestAlgorithm::Md5, DigestAlgorithm::Sha256];

    /// The name in `algorithm=` (RFC 8760 §3).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm `name` means, ignoring case; `SHA256` is an older
    /// spelling some phones write.
    pub fn from_name(name: &str) -> Option<DigestAlgorithm> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") || name.eq_ignore_ascii_case("SHA256") {
            Some(DigestAlgorithm::Sha256)
        } else {
            None
        }
    }

    fn digest(self) -> Algorithm {
        match self {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI, without `<>` or header parameters.
    pub contact: String,
    /// Where the REGISTER came from: requests to this phone go here.
    pub peer: Peer,
    pub expires_at: Instant,
    /// Call-ID and CSeq of the REGISTER that set it (§10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
}

/// What to answer a REGISTER (or a request that failed authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReply {
    pub status: u16,
    pub reason: &'static str,
    /// Extra headers, in order (a header may repeat).
    pub headers: Vec<(&'static str, String)>,
    /// The To tag for the response.
    pub to_tag: Option<String>,
    /// The user whose set of contacts changed (a contact added or removed,
    /// or a phone that re-registered under a new Call-ID, i.e. rebooted);
    /// plain refreshes leave it `None`.
    pub binding_changed: Option<String>,
}

impl RegisterReply {
    fn new(status: u16, reason: &'static str) -> Self {
        RegisterReply {
            status,
            reason,
            headers: Vec::new(),
            to_tag: Some(random_token()),
            binding_changed: None,
        }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
struct NonceEntry {
    expires_at: Instant,
    /// Highest nonce count accepted so far (0: unused).
    nc: u32,
}

/// The registrar: users, their bindings, and the nonces we handed out.
pub struct Registrar {
    realm: String,
    users: HashMap<String, String>,
    /// Offered in this order; a response with any other is refused.
    algorithms: Vec<DigestAlgorithm>,
    nonces: HashMap<String, NonceEntry>,
    /// Nonces in the order handed out (all live for the same time, so also
    /// in expiry order).
    nonce_order: VecDeque<(Instant, String)>,
    bindings: HashMap<String, Vec<Binding>>,
}

impl fmt::Debug for Registrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords stay out of logs.
        f.debug_struct("Registrar")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("bindings", &self.bindings)
            .finish_non_exhaustive()
    }
}

/// What authentication made of a request.
enum Auth {
    /// No usable credentials for our realm: challenge.
    Challenge,
    /// Right password, but the nonce is unknown, expired or replayed.
    Stale,
    /// Unknown user or wrong password.
    Forbidden,
    Ok(String),
}

impl Registrar {
    /// `users`: user name (the mailbox number) → password. Offers
    /// [`DigestAlgorithm::DEFAULT`] until told otherwise.
    pub fn new(realm: impl Into<String>, users: HashMap<String, String>) -> Self {
        Registrar {
            realm: realm.into(),
            users,
            algorithms: DigestAlgorithm::DEFAULT.to_vec(),
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            bindings: HashMap::new(),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// [`Registrar::set_algorithms`] when building.
    pub fn with_algorithms(mut self, algorithms: &[DigestAlgorithm]) -> Self {
        self.set_algorithms(algorithms);
        self
    }

    /// The algorithms to offer, most preferred first (a config reload).
    /// Repeats are dropped; an empty list (which the config refuses) keeps
    /// [`DigestAlgorithm::DEFAULT`] rather than lock every phone out.
    /// Outstanding nonces stay good, but only for the new algorithms.
    pub fn set_algorithms(&mut self, algorithms: &[DigestAlgorithm]) {
        let mut list: Vec<DigestAlgorithm> = Vec::with_capacity(algorithms.len());
        for a in algorithms {
            if !list.contains(a) {
                list.push(*a);
            }
        }
        if list.is_empty() {
            list = DigestAlgorithm::DEFAULT.to_vec();
        }
        self.algorithms = list;
    }

    /// The algorithms offered, in order.
    pub fn algorithms(&self) -> &[DigestAlgorithm] {
        &self.algorithms
    }

    /// Whether `user` may register (has a password).
    pub fn is_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// New users and passwords (a config reload). Bindings of users that are
    /// gone are dropped; the realm change invalidates outstanding nonces.
    pub fn set_users(&mut self, realm: impl Into<String>, users: HashMap<String, String>) {
        let realm = realm.into();
        if realm != self.realm {
            self.nonces.clear();
            self.nonce_order.clear();
        }
        self.realm = realm;
        self.bindings.retain(|u, _| users.contains_key(u));
        self.users = users;
    }

    /// Answer a REGISTER.
    pub fn handle(&mut self, now: Instant, req: &SipRequest, peer: Peer) -> RegisterReply {
        self.forget_nonces(now);
        let user = match self.check(now, req) {
            Auth::Ok(user) => user,
            other => return self.auth_failure(now, other),
        };
        // §10.3 step 6: the authenticated user may only touch its own AOR.
        let aor = req.to_user.as_deref().unwrap_or(&user);
        if aor != user {
            return RegisterReply::new(403, "Forbidden");
        }
        let contacts = match parse_contacts(req) {
            Ok(c) => c,
            Err(reason) => return RegisterReply::new(400, reason),
        };
        let default_expires = match req.header("Expires").map(str::trim) {
            None => DEFAULT_EXPIRES,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => n.min(u64::from(u32::MAX)) as u32,
                Err(_) => return RegisterReply::new(400, "Bad Expires"),
            },
        };
        // Bindings past their time are gone even if `expire` has not run.
        if let Some(list) = self.bindings.get_mut(&user) {
            list.retain(|b| b.expires_at > now);
            if list.is_empty() {
                self.bindings.remove(&user);
            }
        }
        let mut changed = false;
        match contacts {
            Contacts::Star => {
                if default_expires != 0 {
                    return RegisterReply::new(400, "Wildcard Contact Needs Expires 0");
                }
                let existing = self.bindings.remove(&user).unwrap_or_default();
                let before = existing.len();
                // A request older than a binding does not remove it.
                let keep: Vec<Binding> = existing
                    .into_iter()
                    .filter(|b| b.call_id == req.call_id && b.cseq >= req.cseq)
                    .collect();
                changed = keep.len() != before;
                if !keep.is_empty() {
                    self.bindings.insert(user.clone(), keep);
                }
            }
            Contacts::List(list) => {
                // Validate every contact before changing anything.
                let mut updates = Vec::with_capacity(list.len());
                for c in list {
                    let expires = c.expires.unwrap_or(default_expires);
                    if expires != 0 && expires < MIN_EXPIRES {
                        let mut r = RegisterReply::new(423, "Interval Too Brief");
                        r.headers.push(("Min-Expires", MIN_EXPIRES.to_string()));
                        return r;
                    }
                    updates.push((c.uri, expires.min(MAX_EXPIRES)));
                }
                let mut next = self.bindings.get(&user).cloned().unwrap_or_default();
                for (uri, expires) in updates {
                    let pos = next.iter().position(|b| same_uri(&b.contact, &uri));
                    if let Some(i) = pos {
                        let b = &next[i];
                        if b.call_id == req.call_id && req.cseq <= b.cseq {
                            return RegisterReply::new(500, "Out Of Order Request");
                        }
                        if b.call_id != req.call_id {
                            changed = true;
                        }
                        if expires == 0 {
                            next.remove(i);
                            changed = true;
                        } else {
                            let b = &mut next[i];
                            b.expires_at = now + Duration::from_secs(expires.into());
                            b.peer = peer;
                            b.call_id = req.call_id.clone();
                            b.cseq = req.cseq;
                        }
                    } else if expires > 0 {
                        next.push(Binding {
                            contact: uri,
                            peer,
                            expires_at: now + Duration::from_secs(expires.into()),
                            call_id: req.call_id.clone(),
                            cseq: req.cseq,
                        });
                        changed = true;
                    }
                }
                if next.len() > MAX_BINDINGS_PER_USER {
                    return RegisterReply::new(403, "Too Many Contacts");
                }
                if next.is_empty() {
                    self.bindings.remove(&user);
                } else {
                    self.bindings.insert(user.clone(), next);
                }
            }
            Contacts::None => {}
        }
        let mut reply = RegisterReply::new(200, "OK");
        for b in self.bindings.get(&user).into_iter().flatten() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            reply
                .headers
                .push(("Contact", format!("<{}>;expires={left}", b.contact)));
        }
        if changed {
            reply.binding_changed = Some(user);
        }
        reply
    }

    /// Authenticate any request (a SUBSCRIBE) as `user`: `Ok(())` when its
    /// credentials are good for exactly that user, else the challenge or
    /// refusal to send.
    pub fn authenticate(
        &mut self,
        now: Instant,
        req: &SipRequest,
        user: &str,
    ) -> Result<(), RegisterReply> {
        self.forget_nonces(now);
        match self.check(now, req) {
            Auth::Ok(u) if u == user => Ok(()),
            Auth::Ok(_) => Err(RegisterReply::new(403, "Forbidden")),
            other => Err(self.auth_failure(now, other)),
        }
    }

    fn auth_failure(&mut self, now: Instant, auth: Auth) -> RegisterReply {
        match auth {
            Auth::Forbidden => RegisterReply::new(403, "Forbidden"),
            Auth::Stale => self.challenge(now, true),
            Auth::Challenge | Auth::Ok(_) => self.challenge(now, false),
        }
    }

    /// A 401 with a fresh nonce: one `WWW-Authenticate` per configured
    /// algorithm, the preferred first (RFC 8760 §2.4).
    fn challenge(&mut self, now: Instant, stale: bool) -> RegisterReply {
        let nonce = format!("{:032x}", rand::random::<u128>());
        while self.nonce_order.len() >= MAX_NONCES {
            if let Some((_, old)) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        let expires_at = now + NONCE_LIFETIME;
        self.nonces
            .insert(nonce.clone(), NonceEntry { expires_at, nc: 0 });
        self.nonce_order.push_back((expires_at, nonce.clone()));
        let stale = if stale { ", stale=true" } else { "" };
        let mut r = RegisterReply::new(401, "Unauthorized");
        for alg in &self.algorithms {
            r.headers.push((
                "WWW-Authenticate",
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={alg}, qop=\"auth\"{stale}",
                    self.realm
                ),
            ));
        }
        r
    }

    fn forget_nonces(&mut self, now: Instant) {
        while let Some((at, _)) = self.nonce_order.front() {
            if *at > now {
                break;
            }
            if let Some((_, n)) = self.nonce_order.pop_front() {
                self.nonces.remove(&n);
            }
        }
    }

    /// Check the request's credentials for our realm.
    fn check(&mut self, now: Instant, req: &SipRequest) -> Auth {
        let mut found = None;
        for (name, value) in &req.headers {
            if !name.eq_ignore_ascii_case("Authorization") {
                continue;
            }
            if let Ok(tok) = AuthTokenizer::parse(value)
                && tok.scheme.eq_ignore_ascii_case("Digest")
                && param(&tok, "realm") == Some(self.realm.as_str())
            {
                found = Some(tok);
                break;
            }
        }
        let Some(tok) = found else {
            return Auth::Challenge;
        };
        let (Some(username), Some(nonce), Some(uri), Some(response)) = (
            param(&tok, "username"),
            param(&tok, "nonce"),
            param(&tok, "uri"),
            param(&tok, "response"),
        ) else {
            return Auth::Challenge;
        };
        // No `algorithm` means MD5 (RFC 2617 §3.2.2). Only what we offer
        // is verified: a phone must not pick a weaker one than configured.
        let algorithm = match param(&tok, "algorithm") {
            None => Some(DigestAlgorithm::Md5),
            Some(a) => DigestAlgorithm::from_name(a),
        };
        let Some(algorithm) = algorithm.filter(|a| self.algorithms.contains(a)) else {
            return Auth::Challenge;
        };
        // With qop=auth the count is hashed as written: 8 hex digits.
        let qop = match param(&tok, "qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc_raw), Some(cnonce)) = (param(&tok, "nc"), param(&tok, "cnonce"))
                else {
                    return Auth::Challenge;
                };
                let Ok(nc) = u32::from_str_radix(nc_raw, 16) else {
                    return Auth::Challenge;
                };
                if nc_raw.len() != 8 || nc == 0 {
                    return Auth::Challenge;
                }
                Some((nc_raw, nc, cnonce))
            }
            Some(_) => return Auth::Challenge,
        };
        let Some(password) = self.users.get(username) else {
            return Auth::Forbidden;
        };
        // H(HA1:nonce:nc:cnonce:qop:HA2) is compute_digest's qop-less form
        // H(HA1:nonce':HA2) with nonce' = "nonce:nc:cnonce:auth".
        let nonce_part = match qop {
            Some((nc_raw, _, cnonce)) => format!("{nonce}:{nc_raw}:{cnonce}:auth"),
            None => nonce.to_owned(),
        };
        let expected = compute_digest(
            username,
            password,
            &self.realm,
            &nonce_part,
            &req.method,
            uri,
            algorithm.digest(),
            None,
        );
        let given = response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Auth::Forbidden;
        }
        // The password is right; now the nonce must be ours, fresh and not
        // replayed (the count only goes up; without qop a nonce is single-use).
        let nc = qop.map_or(1, |(_, nc, _)| nc);
        match self.nonces.get_mut(nonce) {
            Some(entry) if entry.expires_at > now && nc > entry.nc => {
                entry.nc = nc;
                Auth::Ok(username.to_owned())
            }
            _ => Auth::Stale,
        }
    }

    /// The live bindings of `user`.
    pub fn bindings(&self, user: &str) -> Vec<Binding> {
        self.bindings.get(user).cloned().unwrap_or_default()
    }

    /// Every user with at least one binding.
    pub fn registered_users(&self) -> Vec<String> {
        let mut v: Vec<String> = self.bindings.keys().cloned().collect();
        v.sort();
        v
    }

    /// Drop bindings past their expiry and stale nonces; returns the users
    /// that lost a binding.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        self.forget_nonces(now);
        let mut removed = Vec::new();
        self.bindings.retain(|user, list| {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            if list.len() != before {
                removed.push(user.clone());
            }
            !list.is_empty()
        });
        removed.sort();
        removed
    }

    /// The earliest binding expiry, for the caller's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// The registered user whose binding came from `remote` (a phone
    /// calling `*98` from the address it registered from).
    pub fn user_for(&self, remote: SocketAddr) -> Option<String> {
        let mut users: Vec<&String> = self
            .bindings
            .iter()
            .filter(|(_, list)| list.iter().any(|b| b.peer.remote == remote))
            .map(|(u, _)| u)
            .collect();
        users.sort();
        users.first().map(|u| (*u).clone())
    }

    /// Bindings as plain data with absolute expiry, for a state file.
    /// `now` and `wall` are the same moment on the two clocks.
    pub fn snapshot(&self, now: Instant, wall: jiff::Timestamp) -> RegistrarState {
        let mut bindings: Vec<SavedBinding> = self
            .bindings
            .iter()
            .flat_map(|(user, list)| {
                list.iter().map(move |b| SavedBinding {
                    user: user.clone(),
                    contact: b.contact.clone(),
                    peer: SavedPeer::from(b.peer),
                    expires_unix: to_unix(now, wall, b.expires_at),
                    call_id: b.call_id.clone(),
                    cseq: b.cseq,
                })
            })
            .collect();
        bindings.sort_by(|a, b| (&a.user, &a.contact).cmp(&(&b.user, &b.contact)));
        RegistrarState { bindings }
    }

    /// Put back saved bindings: expired ones, unknown users and stream
    /// (TCP) bindings, whose connections died with the old process, are
    /// left out.
    pub fn restore(&mut self, state: RegistrarState, now: Instant, wall: jiff::Timestamp) {
        for b in state.bindings {
            if !self.users.contains_key(&b.user) {
                continue;
            }
            let Some(expires_at) = from_unix(now, wall, b.expires_unix) else {
                continue;
            };
            let Some(peer) = b.peer.to_peer() else {
                continue;
            };
            let list = self.bindings.entry(b.user).or_default();
            if list.len() < MAX_BINDINGS_PER_USER
                && !list.iter().any(|x| same_uri(&x.contact, &b.contact))
            {
                list.push(Binding {
                    contact: b.contact,
                    peer,
                    expires_at,
                    call_id: b.call_id,
                    cseq: b.cseq,
                });
            }
        }
    }
}

/// Saved bindings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistrarState {
    pub bindings: Vec<SavedBinding>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedBinding {
    pub user: String,
    pub contact: String,
    pub peer: SavedPeer,
    /// Unix seconds.
    pub expires_unix: i64,
    pub call_id: String,
    pub cseq: u32,
}

/// A [`Peer`] in a state file. Only datagram peers can be used again after
/// a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedPeer {
    /// "udp" or "tcp".
    pub transport: String,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

impl From<Peer> for SavedPeer {
    fn from(p: Peer) -> Self {
        SavedPeer {
            transport: match p.transport {
                TransportKind::Udp => "udp",
                TransportKind::Tcp => "tcp",
            }
            .to_owned(),
            remote: p.remote,
            local: p.local,
        }
    }
}

impl SavedPeer {
    /// The peer to use after a restart; `None` for a stream peer.
    pub fn to_peer(&self) -> Option<Peer> {
        self.transport.eq_ignore_ascii_case("udp").then_some(Peer {
            transport: TransportKind::Udp,
            remote: self.remote,
            local: self.local,
            connection: 0,
        })
    }
}

/// `at` (on the monotonic clock) as unix seconds, given that `now` is `wall`.
pub fn to_unix(now: Instant, wall: jiff::Timestamp, at: Instant) -> i64 {
    let ahead = at.saturating_duration_since(now).as_secs();
    let behind = now.saturating_duration_since(at).as_secs();
    wall.as_second()
        .saturating_add(i64::try_from(ahead).unwrap_or(i64::MAX))
        .saturating_sub(i64::try_from(behind).unwrap_or(i64::MAX))
}

/// Unix seconds back on the monotonic clock; `None` when already past.
pub fn from_unix(now: Instant, wall: jiff::Timestamp, unix: i64) -> Option<Instant> {
    let left = unix.checked_sub(wall.as_second())?;
    if left <= 0 {
        return None;
    }
    now.checked_add(Duration::from_secs(left as u64))
}

fn param<'a>(tok: &AuthTokenizer<'a>, name: &str) -> Option<&'a str> {
    tok.params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

#[derive(Debug)]
struct ContactEntry {
    uri: String,
    expires: Option<u32>,
}

#[derive(Debug)]
enum Contacts {
    /// No Contact: a query.
    None,
    /// `Contact: *`.
    Star,
    List(Vec<ContactEntry>),
}

fn parse_contacts(req: &SipRequest) -> Result<Contacts, &'static str> {
    let mut entries = Vec::new();
    let mut star = false;
    for (name, value) in &req.headers {
        if !(name.eq_ignore_ascii_case("Contact") || name.eq_ignore_ascii_case("m")) {
            continue;
        }
        for item in split_contacts(value) {
            if item == "*" {
                star = true;
                continue;
            }
            let uri = match (item.find('<'), item.find('>')) {
                (Some(a), Some(b)) if a < b => item[a + 1..b].trim().to_owned(),
                (None, None) => item.split(';').next().unwrap_or("").trim().to_owned(),
                _ => return Err("Bad Contact"),
            };
            if uri.is_empty() || !uri.contains(':') {
                return Err("Bad Contact");
            }
            let expires = match header_param(item, "expires") {
                None => None,
                Some(v) => match v.trim_matches('"').parse::<u64>() {
                    Ok(n) => Some(n.min(u64::from(u32::MAX)) as u32),
                    Err(_) => return Err("Bad Contact Expires"),
                },
            };
            entries.push(ContactEntry { uri, expires });
        }
    }
    match (star, entries.is_empty()) {
        (true, true) => Ok(Contacts::Star),
        (true, false) => Err("Wildcard Contact Mixed With Others"),
        (false, true) => Ok(Contacts::None),
        (false, false) => Ok(Contacts::List(entries)),
    }
}

/// Split a Contact value on commas outside quotes and `<>`.
fn split_contacts(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Contact URIs compare case-insensitively (close enough to RFC 3261
/// §19.1.4 for the URIs phones register).
fn same_uri(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use rsipstack::sip::headers::auth::AuthQop;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::sip::message::Method;

    const REALM: &str = "voxmail";

    fn peer() -> Peer {
        peer_at("10.0.0.5:5062", TransportKind::Udp)
    }

    fn peer_at(remote: &str, transport: TransportKind) -> Peer {
        Peer {
            transport,
            remote: remote.parse().unwrap(),
            local: "10.0.0.1:5060".parse().unwrap(),
            connection: if transport == TransportKind::Tcp {
                7
            } else {
                0
            },
        }
    }

    fn registrar() -> Registrar {
        Registrar::new(
            REALM,
            HashMap::from([
                ("1001".to_owned(), "s3cret".to_owned()),
                ("1002".to_owned(), "other".to_owned()),
            ]),
        )
    }

    /// A REGISTER for `user`; `extra` holds Contact/Expires/Authorization lines.
    fn request(method: &str, user: &str, cseq: u32, extra: &str) -> SipRequest {
        let text = format!(
            "{method} sip:10.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{cseq}\r\n\
             From: <sip:{user}@10.0.0.1>;tag=ph1\r\n\
             To: <sip:{user}@10.0.0.1>\r\n\
             Call-ID: reg-1@10.0.0.5\r\n\
             CSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        SipRequest::parse(text.as_bytes()).unwrap()
    }

    fn register(user: &str, cseq: u32, extra: &str) -> SipRequest {
        request("REGISTER", user, cseq, extra)
    }

    const CONTACT: &str = "Contact: <sip:1001@10.0.0.5:5062;line=abc>\r\n";

    /// (nonce, stale) of each WWW-Authenticate, in order.
    fn challenges(r: &RegisterReply) -> Vec<(String, String, bool)> {
        assert_eq!(r.status, 401, "{r:?}");
        r.headers
            .iter()
            .filter(|(n, _)| *n == "WWW-Authenticate")
            .map(|(_, v)| {
                let tok = AuthTokenizer::parse(v).unwrap();
                assert_eq!(param(&tok, "realm"), Some(REALM));
                assert_eq!(param(&tok, "qop"), Some("auth"));
                (
                    param(&tok, "nonce").unwrap().to_owned(),
                    param(&tok, "algorithm").unwrap().to_owned(),
                    param(&tok, "stale") == Some("true"),
                )
            })
            .collect()
    }

    /// An Authorization line as a phone computes it, with rsipstack's
    /// client-side digest.
    fn authorization(
        method: &Method,
        user: &str,
        password: &str,
        nonce: &str,
        alg: Algorithm,
    ) -> String {
        let uri = "sip:10.0.0.1:5060";
        let qop = AuthQop::Auth {
            cnonce: "c0ffee".into(),
            nc: 1,
        };
        let response = compute_digest(user, password, REALM, nonce, method, uri, alg, Some(&qop));
        let alg = if alg == Algorithm::Md5 {
            "MD5"
        } else {
            "SHA-256"
        };
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm={alg}, qop=auth, nc=00000001, \
             cnonce=\"c0ffee\"\r\n"
        )
    }

    fn hex_sha256(s: &str) -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Register 1001 with MD5; returns the nonce used.
    fn registered(r: &mut Registrar, now: Instant) -> String {
        let ch = r.handle(now, &register("1001", 1, CONTACT), peer());
        let nonce = challenges(&ch)[0].0.clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let ok = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}{auth}")),
            peer(),
        );
        assert_eq!(ok.status, 200, "{ok:?}");
        nonce
    }

    #[test]
    fn default_challenge_offers_md5_then_sha256_and_md5_registers() {
        let mut r = registrar();
        let now = Instant::now();
        let ch = r.handle(now, &register("1001", 1, CONTACT), peer());
        let offered = challenges(&ch);
        assert_eq!(offered.len(), 2);
        assert_eq!(offered[0].1, "MD5");
        assert_eq!(offered[1].1, "SHA-256");
        assert_eq!(offered[0].0, offered[1].0, "one nonce for both");
        assert!(!offered[0].2, "a first challenge is not stale");
        assert_eq!(offered[0].0.len(), 32);
        assert!(ch.to_tag.is_some());
        // Nonces are random.
        let again = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()));
        assert_ne!(again[0].0, offered[0].0);
        assert!(r.bindings("1001").is_empty());

        let auth = authorization(
            &Method::Register,
            "1001",
            "s3cret",
            &offered[0].0,
            Algorithm::Md5,
        );
        let ok = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}{auth}")),
            peer(),
        );
        assert_eq!((ok.status, ok.reason), (200, "OK"));
        assert_eq!(
            ok.header("Contact"),
            Some("<sip:1001@10.0.0.5:5062;line=abc>;expires=3600")
        );
        assert_eq!(ok.binding_changed.as_deref(), Some("1001"));
        let b = r.bindings("1001");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact, "sip:1001@10.0.0.5:5062;line=abc");
        assert_eq!(b[0].peer, peer());
        assert_eq!(b[0].expires_at, now + Duration::from_secs(3600));
        assert_eq!(r.user_for(peer().remote).as_deref(), Some("1001"));
        assert_eq!(r.user_for("10.0.0.6:5062".parse().unwrap()), None);
        assert_eq!(r.registered_users(), ["1001"]);
    }

    /// The algorithm names of a challenge, in order.
    fn offered_names(r: &RegisterReply) -> Vec<String> {
        challenges(r).into_iter().map(|c| c.1).collect()
    }

    #[test]
    fn challenge_lists_exactly_the_configured_algorithms_in_order() {
        use DigestAlgorithm::{Md5, Sha256};
        let now = Instant::now();
        for (configured, names) in [
            (vec![Sha256, Md5], vec!["SHA-256", "MD5"]),
            (vec![Md5, Sha256], vec!["MD5", "SHA-256"]),
            (vec![Md5], vec!["MD5"]),
            (vec![Sha256], vec!["SHA-256"]),
            // Repeats are dropped; nothing at all keeps the default.
            (vec![Sha256, Sha256, Md5], vec!["SHA-256", "MD5"]),
            (vec![], vec!["MD5", "SHA-256"]),
        ] {
            let mut r = registrar().with_algorithms(&configured);
            let ch = r.handle(now, &register("1001", 1, CONTACT), peer());
            assert_eq!(offered_names(&ch), names, "{configured:?}");
            // A SUBSCRIBE's challenge and a stale one offer the same.
            let sub = r
                .authenticate(now, &request("SUBSCRIBE", "1001", 1, ""), "1001")
                .unwrap_err();
            assert_eq!(offered_names(&sub), names, "{configured:?}");
            let auth = authorization(
                &Method::Register,
                "1001",
                "s3cret",
                "0123456789abcdef",
                if names[0] == "MD5" {
                    Algorithm::Md5
                } else {
                    Algorithm::Sha256
                },
            );
            let stale = r.handle(
                now,
                &register("1001", 2, &format!("{CONTACT}{auth}")),
                peer(),
            );
            assert!(challenges(&stale).iter().all(|c| c.2), "{stale:?}");
            assert_eq!(offered_names(&stale), names, "{configured:?}");
        }
        let mut r = registrar();
        r.set_algorithms(&[Sha256]);
        assert_eq!(r.algorithms(), [Sha256]);
        assert!(format!("{r:?}").contains("Sha256"));
    }

    #[test]
    fn a_response_with_an_algorithm_not_offered_is_challenged_again() {
        use DigestAlgorithm::{Md5, Sha256};
        let now = Instant::now();
        // MD5 only: a right SHA-256 answer does not register.
        let mut r = registrar().with_algorithms(&[Md5]);
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let sha = authorization(
            &Method::Register,
            "1001",
            "s3cret",
            &nonce,
            Algorithm::Sha256,
        );
        let refused = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}{sha}")),
            peer(),
        );
        assert_eq!(offered_names(&refused), ["MD5"]);
        assert!(
            !challenges(&refused)[0].2,
            "not stale: the answer was unusable"
        );
        assert!(r.bindings("1001").is_empty());

        // SHA-256 only: neither `algorithm=MD5` nor no algorithm (which
        // means MD5) registers, whatever the password.
        let mut r = registrar().with_algorithms(&[Sha256]);
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let md5 = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let bare = md5.replace(", algorithm=MD5", "");
        let wrong = authorization(&Method::Register, "1001", "guess", &nonce, Algorithm::Md5);
        for (cseq, auth) in [(2, &md5), (3, &bare), (4, &wrong)] {
            let reply = r.handle(
                now,
                &register("1001", cseq, &format!("{CONTACT}{auth}")),
                peer(),
            );
            assert_eq!(offered_names(&reply), ["SHA-256"], "{auth}");
        }
        let sub = authorization(&Method::Subscribe, "1001", "s3cret", &nonce, Algorithm::Md5);
        let reply = r
            .authenticate(now, &request("SUBSCRIBE", "1001", 5, &sub), "1001")
            .unwrap_err();
        assert_eq!(offered_names(&reply), ["SHA-256"]);
        assert!(r.bindings("1001").is_empty());

        // A reload that drops MD5 turns away an MD5 answer to a nonce
        // issued before it.
        let mut r = registrar();
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        r.set_algorithms(&[Sha256]);
        let md5 = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let reply = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}{md5}")),
            peer(),
        );
        assert_eq!(offered_names(&reply), ["SHA-256"]);
        assert!(r.bindings("1001").is_empty());
    }

    #[test]
    fn md5_only_and_sha256_only_both_authenticate() {
        use DigestAlgorithm::{Md5, Sha256};
        let now = Instant::now();
        for (only, alg) in [(Md5, Algorithm::Md5), (Sha256, Algorithm::Sha256)] {
            let mut r = registrar().with_algorithms(&[only]);
            let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
                .0
                .clone();
            let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, alg);
            let ok = r.handle(
                now,
                &register("1001", 2, &format!("{CONTACT}{auth}")),
                peer(),
            );
            assert_eq!(ok.status, 200, "{only}: {ok:?}");
            assert_eq!(r.registered_users(), ["1001"], "{only}");
            // The same algorithm for a SUBSCRIBE, and a wrong password is
            // still refused.
            let ch = r
                .authenticate(now, &request("SUBSCRIBE", "1001", 3, ""), "1001")
                .unwrap_err();
            let nonce = challenges(&ch)[0].0.clone();
            let sub = authorization(&Method::Subscribe, "1001", "s3cret", &nonce, alg);
            assert_eq!(
                r.authenticate(now, &request("SUBSCRIBE", "1001", 4, &sub), "1001"),
                Ok(()),
                "{only}"
            );
            let bad = authorization(&Method::Register, "1001", "guess", &nonce, alg)
                .replace("nc=00000001", "nc=00000002");
            let reply = r.handle(
                now,
                &register("1001", 5, &format!("{CONTACT}{bad}")),
                peer(),
            );
            assert_eq!((reply.status, reply.reason), (403, "Forbidden"), "{only}");
        }
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            DigestAlgorithm::from_name("md5"),
            Some(DigestAlgorithm::Md5)
        );
        assert_eq!(
            DigestAlgorithm::from_name("sha-256"),
            Some(DigestAlgorithm::Sha256)
        );
        assert_eq!(
            DigestAlgorithm::from_name("SHA256"),
            Some(DigestAlgorithm::Sha256)
        );
        for other in ["MD5-sess", "SHA-512-256", "SHA-256-sess", ""] {
            assert_eq!(DigestAlgorithm::from_name(other), None, "{other}");
        }
        for a in DigestAlgorithm::ALL {
            assert_eq!(DigestAlgorithm::from_name(a.name()), Some(a));
            assert_eq!(a.to_string(), a.name());
        }
    }

    #[test]
    fn sha256_registers_and_nonce_counts_are_hex_and_only_go_up() {
        let mut r = registrar();
        let now = Instant::now();
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let auth = authorization(
            &Method::Register,
            "1001",
            "s3cret",
            &nonce,
            Algorithm::Sha256,
        );
        let ok = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}Expires: 600\r\n{auth}")),
            peer(),
        );
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(
            ok.header("Contact"),
            Some("<sip:1001@10.0.0.5:5062;line=abc>;expires=600")
        );

        // A refresh reusing the nonce with nc=0000000a, hashed independently
        // (RFC 7616 §3.4.1) so the hex count is what is checked.
        let uri = "sip:10.0.0.1:5060";
        let ha1 = hex_sha256(&format!("1001:{REALM}:s3cret"));
        let ha2 = hex_sha256(&format!("REGISTER:{uri}"));
        let response = hex_sha256(&format!("{ha1}:{nonce}:0000000a:feed:auth:{ha2}"));
        let auth10 = format!(
            "Authorization: Digest username=\"1001\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=SHA-256, qop=auth, nc=0000000a, \
             cnonce=\"feed\"\r\n"
        );
        let later = now + Duration::from_secs(60);
        let refresh = r.handle(
            later,
            &register("1001", 3, &format!("{CONTACT}{auth10}")),
            peer(),
        );
        assert_eq!(refresh.status, 200, "{refresh:?}");
        assert_eq!(
            refresh.binding_changed, None,
            "a refresh changes no contact"
        );
        assert_eq!(
            r.bindings("1001")[0].expires_at,
            later + Duration::from_secs(3600)
        );
        // The same count again is a replay: the password was right, so stale.
        let replay = r.handle(
            later,
            &register("1001", 4, &format!("{CONTACT}{auth10}")),
            peer(),
        );
        let offered = challenges(&replay);
        assert!(offered.iter().all(|c| c.2), "{replay:?}");
        assert_ne!(offered[0].0, nonce);
    }

    #[test]
    fn wrong_password_unknown_user_and_foreign_aor_are_forbidden() {
        let mut r = registrar();
        let now = Instant::now();
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let bad = authorization(&Method::Register, "1001", "guess", &nonce, Algorithm::Md5);
        let resp = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}{bad}")),
            peer(),
        );
        assert_eq!((resp.status, resp.reason), (403, "Forbidden"));
        let ghost = authorization(&Method::Register, "9999", "s3cret", &nonce, Algorithm::Md5);
        assert_eq!(
            r.handle(
                now,
                &register("9999", 3, &format!("{CONTACT}{ghost}")),
                peer()
            )
            .status,
            403
        );
        // 1002's own credentials cannot register 1001's address of record.
        let other = authorization(&Method::Register, "1002", "other", &nonce, Algorithm::Md5);
        assert_eq!(
            r.handle(
                now,
                &register("1001", 4, &format!("{CONTACT}{other}")),
                peer()
            )
            .status,
            403
        );
        // Credentials for another realm, or an algorithm not offered: challenge.
        let foreign = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5)
            .replace("realm=\"voxmail\"", "realm=\"elsewhere\"");
        assert_eq!(
            r.handle(
                now,
                &register("1001", 5, &format!("{CONTACT}{foreign}")),
                peer()
            )
            .status,
            401
        );
        let sess = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5)
            .replace("algorithm=MD5", "algorithm=MD5-sess");
        assert_eq!(
            r.handle(
                now,
                &register("1001", 6, &format!("{CONTACT}{sess}")),
                peer()
            )
            .status,
            401
        );
        assert!(r.bindings("1001").is_empty());
        assert!(r.bindings("1002").is_empty());
    }

    #[test]
    fn expired_or_unknown_nonce_is_stale_only_with_the_right_password() {
        let mut r = registrar();
        let now = Instant::now();
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let late = now + NONCE_LIFETIME + Duration::from_secs(1);
        let stale = r.handle(
            late,
            &register("1001", 2, &format!("{CONTACT}{auth}")),
            peer(),
        );
        assert!(challenges(&stale).iter().all(|c| c.2), "{stale:?}");
        let wrong = authorization(&Method::Register, "1001", "guess", &nonce, Algorithm::Md5);
        assert_eq!(
            r.handle(
                late,
                &register("1001", 3, &format!("{CONTACT}{wrong}")),
                peer()
            )
            .status,
            403
        );
        // A nonce we never issued (another server's, or before a restart).
        let made_up = authorization(
            &Method::Register,
            "1001",
            "s3cret",
            "0123456789abcdef",
            Algorithm::Md5,
        );
        let s = r.handle(
            now,
            &register("1001", 4, &format!("{CONTACT}{made_up}")),
            peer(),
        );
        assert!(challenges(&s)[0].2);
        assert!(r.bindings("1001").is_empty());
    }

    #[test]
    fn bindings_expire_and_too_brief_is_423() {
        let mut r = registrar();
        let now = Instant::now();
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let brief = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}Expires: 30\r\n{auth}")),
            peer(),
        );
        assert_eq!((brief.status, brief.reason), (423, "Interval Too Brief"));
        assert_eq!(brief.header("Min-Expires"), Some("60"));
        assert!(r.bindings("1001").is_empty());
        // The contact's own expires parameter wins over the header.
        let nonce = challenges(&r.handle(now, &register("1001", 3, CONTACT), peer()))[0]
            .0
            .clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let contact = "Contact: <sip:1001@10.0.0.5:5062;line=abc>;expires=120\r\nExpires: 30\r\n";
        let ok = r.handle(
            now,
            &register("1001", 4, &format!("{contact}{auth}")),
            peer(),
        );
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(
            ok.header("Contact"),
            Some("<sip:1001@10.0.0.5:5062;line=abc>;expires=120")
        );
        assert_eq!(r.next_expiry(), Some(now + Duration::from_secs(120)));
        assert!(r.expire(now + Duration::from_secs(119)).is_empty());
        assert_eq!(r.bindings("1001").len(), 1);
        assert_eq!(r.expire(now + Duration::from_secs(120)), ["1001"]);
        assert!(r.bindings("1001").is_empty());
        assert_eq!(r.user_for(peer().remote), None);
        assert_eq!(r.next_expiry(), None);
    }

    #[test]
    fn long_expiry_is_capped() {
        let mut r = registrar();
        let now = Instant::now();
        let nonce = challenges(&r.handle(now, &register("1001", 1, CONTACT), peer()))[0]
            .0
            .clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let ok = r.handle(
            now,
            &register("1001", 2, &format!("{CONTACT}Expires: 999999\r\n{auth}")),
            peer(),
        );
        assert_eq!(
            ok.header("Contact"),
            Some(&*format!(
                "<sip:1001@10.0.0.5:5062;line=abc>;expires={MAX_EXPIRES}"
            ))
        );
    }

    /// A REGISTER with fresh credentials (one challenge per request).
    fn authed(r: &mut Registrar, now: Instant, cseq: u32, extra: &str) -> RegisterReply {
        let nonce = challenges(&r.handle(now, &register("1001", 100 + cseq, ""), peer()))[0]
            .0
            .clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        r.handle(
            now,
            &register("1001", cseq, &format!("{extra}{auth}")),
            peer(),
        )
    }

    #[test]
    fn unregister_query_wildcard_and_order() {
        let mut r = registrar();
        let now = Instant::now();
        registered(&mut r, now);
        // A second phone for the same user, in one header with a quoted comma.
        let two =
            "Contact: \"Desk, left\" <sip:1001@10.0.0.7:5060>;expires=300, <sip:1001@10.0.0.8>\r\n";
        let ok = authed(&mut r, now, 210, two);
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(ok.binding_changed.as_deref(), Some("1001"));
        let contacts: Vec<&str> = ok.headers.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            contacts,
            [
                "<sip:1001@10.0.0.5:5062;line=abc>;expires=3600",
                "<sip:1001@10.0.0.7:5060>;expires=300",
                "<sip:1001@10.0.0.8>;expires=3600"
            ]
        );
        // No Contact: a query that changes nothing.
        let q = authed(&mut r, now, 220, "");
        assert_eq!(q.headers.len(), 3);
        assert_eq!(q.binding_changed, None);
        // An older CSeq in the same Call-ID cannot touch a binding.
        let old = authed(
            &mut r,
            now,
            200,
            "Contact: <sip:1001@10.0.0.8>;expires=0\r\n",
        );
        assert_eq!(old.status, 500);
        assert_eq!(r.bindings("1001").len(), 3);
        // expires=0 removes one.
        let gone = authed(
            &mut r,
            now,
            230,
            "Contact: <SIP:1001@10.0.0.8>;expires=0\r\n",
        );
        assert_eq!(gone.status, 200);
        assert_eq!(gone.binding_changed.as_deref(), Some("1001"));
        assert_eq!(r.bindings("1001").len(), 2);
        // `*` needs Expires: 0.
        assert_eq!(authed(&mut r, now, 240, "Contact: *\r\n").status, 400);
        assert_eq!(
            authed(&mut r, now, 241, "Contact: *, <sip:x@y>\r\nExpires: 0\r\n").status,
            400
        );
        let all = authed(&mut r, now, 250, "Contact: *\r\nExpires: 0\r\n");
        assert_eq!(all.status, 200, "{all:?}");
        assert!(all.headers.is_empty());
        assert_eq!(all.binding_changed.as_deref(), Some("1001"));
        assert!(r.bindings("1001").is_empty());
        assert!(r.registered_users().is_empty());
    }

    #[test]
    fn a_lapsed_binding_is_gone_even_before_expire_runs() {
        let mut r = registrar();
        let now = Instant::now();
        registered(&mut r, now);
        let later = now + Duration::from_secs(3601);
        let q = authed(&mut r, later, 300, "");
        assert_eq!(q.status, 200);
        assert!(q.headers.is_empty(), "{q:?}");
        assert!(r.registered_users().is_empty());
        // Registering again counts as a change: the phone must hear the lamp.
        let again = authed(&mut r, later, 301, CONTACT);
        assert_eq!(again.binding_changed.as_deref(), Some("1001"));
    }

    #[test]
    fn new_call_id_counts_as_a_change() {
        let mut r = registrar();
        let now = Instant::now();
        registered(&mut r, now);
        let nonce = challenges(&r.handle(now, &register("1001", 1, ""), peer()))[0]
            .0
            .clone();
        let auth = authorization(&Method::Register, "1001", "s3cret", &nonce, Algorithm::Md5);
        let text = register("1001", 1, &format!("{CONTACT}{auth}"));
        let mut rebooted = text.clone();
        rebooted.call_id = "reboot@10.0.0.5".into();
        let ok = r.handle(now, &rebooted, peer());
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(ok.binding_changed.as_deref(), Some("1001"));
        assert_eq!(r.bindings("1001")[0].call_id, "reboot@10.0.0.5");
    }

    #[test]
    fn authenticate_other_methods_for_one_user() {
        let mut r = registrar();
        let now = Instant::now();
        let sub = request("SUBSCRIBE", "1001", 1, "");
        let ch = r.authenticate(now, &sub, "1001").unwrap_err();
        let nonce = challenges(&ch)[0].0.clone();
        let auth = authorization(
            &Method::Subscribe,
            "1001",
            "s3cret",
            &nonce,
            Algorithm::Sha256,
        );
        assert_eq!(
            r.authenticate(now, &request("SUBSCRIBE", "1001", 2, &auth), "1001"),
            Ok(())
        );
        // The digest covers the method: a REGISTER digest does not pass.
        let reg = authorization(
            &Method::Register,
            "1001",
            "s3cret",
            &nonce,
            Algorithm::Sha256,
        )
        .replace("nc=00000001", "nc=00000002");
        assert_eq!(
            r.authenticate(now, &request("SUBSCRIBE", "1001", 3, &reg), "1001")
                .unwrap_err()
                .status,
            403
        );
        // Good credentials, but for another user than the one required.
        let nonce = challenges(&r.authenticate(now, &sub, "1002").unwrap_err())[0]
            .0
            .clone();
        let auth = authorization(&Method::Subscribe, "1001", "s3cret", &nonce, Algorithm::Md5);
        assert_eq!(
            r.authenticate(now, &request("SUBSCRIBE", "1001", 4, &auth), "1002")
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn snapshot_restore_keeps_live_udp_bindings() {
        let mut r = registrar();
        let now = Instant::now();
        let wall: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        registered(&mut r, now);
        // A TCP phone for 1002.
        let ch = r.handle(
            now,
            &register("1002", 1, ""),
            peer_at("10.0.0.9:40000", TransportKind::Tcp),
        );
        let nonce = challenges(&ch)[0].0.clone();
        let auth = authorization(&Method::Register, "1002", "other", &nonce, Algorithm::Md5);
        let tcp = r.handle(
            now,
            &register(
                "1002",
                2,
                &format!("Contact: <sip:1002@10.0.0.9:40000;transport=tcp>\r\n{auth}"),
            ),
            peer_at("10.0.0.9:40000", TransportKind::Tcp),
        );
        assert_eq!(tcp.status, 200);
        let state = r.snapshot(now, wall);
        assert_eq!(state.bindings.len(), 2);
        assert_eq!(state.bindings[0].expires_unix, wall.as_second() + 3600);
        let json = serde_json::to_string(&state).unwrap();
        let back: RegistrarState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);

        // Restarted 10 minutes later.
        let later = Instant::now() + Duration::from_secs(5);
        let wall2 = wall + jiff::SignedDuration::from_secs(600);
        let mut fresh = registrar();
        fresh.restore(back.clone(), later, wall2);
        let b = fresh.bindings("1001");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].peer, peer());
        assert_eq!(b[0].expires_at, later + Duration::from_secs(3000));
        assert!(
            fresh.bindings("1002").is_empty(),
            "TCP bindings are not restored"
        );
        // Two hours later everything has expired.
        let mut gone = registrar();
        gone.restore(back, later, wall + jiff::SignedDuration::from_secs(7200));
        assert!(gone.registered_users().is_empty());
    }

    #[test]
    fn set_users_drops_removed_users() {
        let mut r = registrar();
        let now = Instant::now();
        registered(&mut r, now);
        r.set_users(REALM, HashMap::from([("1002".to_owned(), "x".to_owned())]));
        assert!(r.bindings("1001").is_empty());
        assert!(!r.is_user("1001"));
        assert!(r.is_user("1002"));
    }

    #[test]
    fn contact_splitting() {
        assert_eq!(
            split_contacts("\"a, \\\"b\" <sip:x@y;p=1,2>;q=1 , sip:z@w;expires=5,"),
            ["\"a, \\\"b\" <sip:x@y;p=1,2>;q=1", "sip:z@w;expires=5"]
        );
        assert_eq!(split_contacts("*"), ["*"]);
        let r = register("1001", 1, "Contact: sip:1001@10.0.0.5;expires=90\r\n");
        match parse_contacts(&r).unwrap() {
            Contacts::List(l) => {
                assert_eq!(l[0].uri, "sip:1001@10.0.0.5");
                assert_eq!(l[0].expires, Some(90));
            }
            other => panic!("{other:?}"),
        }
        let bad = register("1001", 1, "Contact: <sip:1001@10.0.0.5\r\n");
        assert_eq!(parse_contacts(&bad).unwrap_err(), "Bad Contact");
        let star = register("1001", 1, "Contact: *\r\n");
        assert!(matches!(parse_contacts(&star), Ok(Contacts::Star)));
    }
}
