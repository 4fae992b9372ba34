//! Tests of the registrar: challenges, digest checks, bindings, snapshots.

use rsipstack::sip::headers::auth::{Algorithm, AuthQop};
use sha2::{Digest, Sha256};

use super::contact::split_contacts;
use super::*;
use crate::sip::endpoint::TransportKind;
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
