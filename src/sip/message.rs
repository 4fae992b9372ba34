//! Our own small view of a SIP request, read once from the parsed message, and
//! the builders for what a UAS sends. Nothing outside `sip` sees the parser's
//! types, so the stack underneath can change in one place.

use std::fmt::Write as _;
use std::net::SocketAddr;

use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Request};

use super::frame::RawHeaders;

/// The SIP methods a request can carry.
pub use rsipstack::sip::Method;

/// What a UAS needs from a request, as owned strings.
#[derive(Debug, Clone)]
pub struct SipRequest {
    pub method: Method,
    /// The Request-URI as received.
    pub uri: String,
    /// The user part of the Request-URI (`1001` in `sip:1001@host`).
    pub uri_user: Option<String>,
    /// Every Via value in order (comma lists split), as received.
    pub vias: Vec<String>,
    pub branch: String,
    /// The top Via's sent-by (`host:port`), part of the transaction key.
    pub sent_by: String,
    pub from: String,
    pub from_tag: Option<String>,
    pub from_user: Option<String>,
    pub from_display: Option<String>,
    pub to: String,
    pub to_tag: Option<String>,
    pub to_user: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub contact: Option<String>,
    pub record_route: Vec<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Every header, for what the apps read later (Diversion, History-Info).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("unparsable request: {0}")]
    Parse(String),
    #[error("bad {0} header: {1}")]
    BadHeader(&'static str, String),
}

fn split_comma_list(value: &str) -> Vec<String> {
    // Via values never contain quoted commas, so a plain split is safe here.
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl SipRequest {
    pub fn parse(bytes: &[u8]) -> Result<SipRequest, MessageError> {
        let req = Request::try_from(bytes).map_err(|e| MessageError::Parse(e.to_string()))?;
        Self::from_request(req)
    }

    fn from_request(req: Request) -> Result<SipRequest, MessageError> {
        let bad = |h: &'static str| {
            move |e: rsipstack::sip::Error| MessageError::BadHeader(h, e.to_string())
        };
        let mut vias = Vec::new();
        let mut record_route = Vec::new();
        let mut headers = Vec::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            match h {
                Header::Via(v) => vias.extend(split_comma_list(v.value())),
                Header::RecordRoute(r) => record_route.extend(split_comma_list(r.value())),
                _ => {}
            }
            let text = h.to_string();
            if let Some((n, v)) = text.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let top_via = req
            .via_header()
            .map_err(bad("Via"))?
            .typed()
            .map_err(bad("Via"))?;
        let branch = top_via.branch().map(|b| b.to_string()).unwrap_or_default();
        let sent_by = top_via.sent_by().to_string();
        let from_h = req.from_header().map_err(bad("From"))?;
        let from = from_h.typed().map_err(bad("From"))?;
        let to_h = req.to_header().map_err(bad("To"))?;
        let to = to_h.typed().map_err(bad("To"))?;
        let cseq = req
            .cseq_header()
            .map_err(bad("CSeq"))?
            .typed()
            .map_err(bad("CSeq"))?;
        let call_id = req
            .call_id_header()
            .map_err(bad("Call-ID"))?
            .value()
            .to_string();
        let contact = req
            .contact_header()
            .ok()
            .and_then(|c| c.typed().ok())
            .map(|c| c.uri.to_string());
        let content_type = req.headers.iter().find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        });
        Ok(SipRequest {
            method: req.method,
            uri: req.uri.to_string(),
            uri_user: req.uri.auth.as_ref().map(|a| a.user.clone()),
            vias,
            branch,
            sent_by,
            from: from_h.value().to_string(),
            from_tag: from.tag().map(|t| t.to_string()),
            from_user: from.uri.auth.as_ref().map(|a| a.user.clone()),
            from_display: from
                .display_name
                .as_ref()
                .map(|d| d.trim_matches('"').to_string())
                .filter(|d| !d.is_empty()),
            to: to_h.value().to_string(),
            to_tag: to.tag().map(|t| t.to_string()),
            to_user: to.uri.auth.as_ref().map(|a| a.user.clone()),
            call_id,
            cseq: cseq.seq,
            contact,
            record_route,
            content_type,
            body: req.body,
            headers,
        })
    }

    /// A header value by name, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as SDP text, if it is SDP.
    pub fn sdp(&self) -> Option<&str> {
        let is_sdp = self
            .content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"));
        if is_sdp && !self.body.is_empty() {
            std::str::from_utf8(&self.body).ok()
        } else {
            None
        }
    }
}

/// Add `received` and `rport` to the top Via as RFC 3261 §18.2.1 and RFC 3581
/// ask, so the response finds its way back through NAT.
pub fn stamp_top_via(via: &str, source: SocketAddr) -> String {
    let mut out = String::with_capacity(via.len() + 40);
    let mut has_received = false;
    for (i, part) in via.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        let name = part.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("rport") {
            let _ = write!(out, "rport={}", source.port());
        } else {
            if name.eq_ignore_ascii_case("received") {
                has_received = true;
            }
            out.push_str(part);
        }
    }
    if !has_received {
        let _ = write!(out, ";received={}", source.ip());
    }
    out
}

/// Build a response to `req`, copying Via, From, To, Call-ID and CSeq as
/// RFC 3261 §8.2.6 requires. `to_tag` is added to To when it has none.
pub struct ResponseBuilder<'a> {
    status: u16,
    reason: &'a str,
    via: Vec<String>,
    from: &'a str,
    to: String,
    call_id: &'a str,
    cseq: String,
    /// Error answers may lack headers the request lacked.
    partial: bool,
    extra: String,
    body: Option<(&'a str, &'a [u8])>,
}

impl<'a> ResponseBuilder<'a> {
    pub fn new(req: &'a SipRequest, source: SocketAddr, status: u16, reason: &'a str) -> Self {
        let mut via = req.vias.clone();
        if let Some(top) = via.first_mut() {
            *top = stamp_top_via(top, source);
        }
        ResponseBuilder {
            status,
            reason,
            via,
            from: &req.from,
            to: req.to.clone(),
            call_id: &req.call_id,
            cseq: format!("{} {}", req.cseq, req.method),
            partial: false,
            extra: String::new(),
            body: None,
        }
    }

    /// Build from raw headers (error responses to messages the parser never
    /// saw). Only a Via is needed to route the answer; From, To, Call-ID and
    /// CSeq are copied when the request had them.
    pub fn from_raw(
        raw: &'a RawHeaders,
        source: SocketAddr,
        status: u16,
        reason: &'a str,
    ) -> Option<Self> {
        let mut via: Vec<String> = raw.all("Via").flat_map(split_comma_list).collect();
        let top = via.first_mut()?;
        *top = stamp_top_via(top, source);
        Some(ResponseBuilder {
            status,
            reason,
            via,
            from: raw.get("From").unwrap_or_default(),
            to: raw.get("To").unwrap_or_default().to_string(),
            call_id: raw.get("Call-ID").unwrap_or_default(),
            cseq: raw.get("CSeq").unwrap_or_default().to_string(),
            partial: true,
            extra: String::new(),
            body: None,
        })
    }

    pub fn to_tag(mut self, tag: &str) -> Self {
        if !self.to.is_empty() && !to_has_tag(&self.to) {
            let _ = write!(self.to, ";tag={tag}");
        }
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.extra, "{name}: {value}\r\n");
        self
    }

    pub fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    pub fn build(self) -> Vec<u8> {
        let mut s = String::with_capacity(512);
        let _ = write!(s, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        for v in &self.via {
            let _ = write!(s, "Via: {v}\r\n");
        }
        for (name, value) in [
            ("From", self.from),
            ("To", self.to.as_str()),
            ("Call-ID", self.call_id),
            ("CSeq", self.cseq.as_str()),
        ] {
            if !(self.partial && value.is_empty()) {
                let _ = write!(s, "{name}: {value}\r\n");
            }
        }
        s.push_str(&self.extra);
        let mut out = s.into_bytes();
        match self.body {
            Some((ct, body)) => {
                let _ = write!(
                    ByteWriter(&mut out),
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                out.extend_from_slice(body);
            }
            None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        }
        out
    }
}

struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn to_has_tag(to: &str) -> bool {
    // Parameters after the closing '>' (or anywhere when there is no name-addr).
    let params = to.rsplit_once('>').map(|(_, p)| p).unwrap_or(to);
    params
        .split(';')
        .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}

/// A random token for tags, branches and Call-IDs.
pub fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Extract the parameter `name` from a header value's parameters.
pub fn header_param<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    let params = value.rsplit_once('>').map(|(_, p)| p).unwrap_or(value);
    params.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-abc;rport\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-def, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-x\r\n\
        Record-Route: <sip:proxy.example.com;lr>\r\n\
        From: \"Bob Smith\" <sip:2002@127.0.0.1>;tag=from1\r\n\
        To: <sip:1001@127.0.0.1>\r\n\
        Call-ID: call-1@host\r\n\
        CSeq: 7 INVITE\r\n\
        Contact: <sip:2002@127.0.0.1:5070>\r\n\
        Max-Forwards: 70\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn src() -> SocketAddr {
        "127.0.0.1:5070".parse().unwrap()
    }

    #[test]
    fn parses_what_a_uas_needs() {
        let r = SipRequest::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri_user.as_deref(), Some("1001"));
        assert_eq!(r.vias.len(), 3);
        assert_eq!(r.branch, "z9hG4bK-abc");
        assert_eq!(r.from_tag.as_deref(), Some("from1"));
        assert_eq!(r.from_user.as_deref(), Some("2002"));
        assert_eq!(r.from_display.as_deref(), Some("Bob Smith"));
        assert_eq!(r.to_tag, None);
        assert_eq!(r.cseq, 7);
        assert_eq!(r.call_id, "call-1@host");
        assert_eq!(r.contact.as_deref(), Some("sip:2002@127.0.0.1:5070"));
        assert_eq!(r.record_route, vec!["<sip:proxy.example.com;lr>"]);
        assert_eq!(r.sdp(), Some("v=0\n"));
    }

    #[test]
    fn response_copies_headers_and_stamps_via() {
        let r = SipRequest::parse(INVITE.as_bytes()).unwrap();
        let resp = ResponseBuilder::new(&r, src(), 200, "OK")
            .to_tag("mytag")
            .header("Contact", "<sip:1001@127.0.0.1:5060>")
            .body("application/sdp", b"v=0\r\n")
            .build();
        let text = String::from_utf8(resp).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-abc;rport=5070;received=127.0.0.1\r\n"
        ));
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-x\r\n"));
        assert!(text.contains("To: <sip:1001@127.0.0.1>;tag=mytag\r\n"));
        assert!(text.contains("CSeq: 7 INVITE\r\n"));
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn existing_to_tag_is_kept() {
        let r = SipRequest::parse(
            INVITE
                .replace(
                    "To: <sip:1001@127.0.0.1>",
                    "To: <sip:1001@127.0.0.1>;tag=old",
                )
                .as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8(
            ResponseBuilder::new(&r, src(), 200, "OK")
                .to_tag("new")
                .build(),
        )
        .unwrap();
        assert!(text.contains(";tag=old\r\n"));
        assert!(!text.contains("tag=new"));
    }

    #[test]
    fn params() {
        assert_eq!(
            header_param("<sip:a@b;x=1>;tag=abc;foo", "tag"),
            Some("abc")
        );
        assert_eq!(header_param("<sip:a@b;tag=in-uri>", "tag"), None);
    }
}
