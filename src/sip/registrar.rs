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
use rsipstack::sip::typed::tokenizers::AuthTokenizer;
use subtle::ConstantTimeEq;

use super::endpoint::Peer;
use super::message::{SipRequest, random_token};

mod contact;
mod digest;
mod state;

use contact::{Contacts, parse_contacts, same_uri};
pub use digest::DigestAlgorithm;
use digest::param;
pub use state::{RegistrarState, SavedBinding, SavedPeer, from_unix, to_unix};

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

#[cfg(test)]
mod tests;
