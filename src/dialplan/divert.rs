//! Who a forwarded call was for, and why, from the INVITE.
//!
//! Three ways a PBX says it, tried in this order:
//! 1. an RFC 4458 voicemail Request-URI,
//!    `sip:voicemail@vm.example.com;target=1002;cause=486`;
//! 2. `Diversion` (RFC 5806), topmost entry (the last diversion):
//!    `<sip:1002@pbx.example.com>;reason=user-busy;counter=1`;
//! 3. `History-Info` (RFC 7044): the last entry carrying an RFC 4458
//!    `cause=` URI parameter was retargeted from its parent entry (`mp=` /
//!    `rc=`, else the index one level up, else the entry before it), which
//!    is the user; an entry with an escaped `Reason` header (`?Reason=SIP%3Bcause%3D486`)
//!    names the user itself.

use crate::store::GreetingKind;

/// Why the call was diverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DivertReason {
    Busy,
    NoAnswer,
    Unavailable,
    Unconditional,
    Other,
}

impl DivertReason {
    /// The greeting a deposit plays: busy for busy, unavailable otherwise.
    pub fn greeting(self) -> GreetingKind {
        match self {
            DivertReason::Busy => GreetingKind::Busy,
            _ => GreetingKind::Unavailable,
        }
    }

    /// RFC 4458 `cause` values (SIP response codes).
    pub fn from_cause(code: u16) -> DivertReason {
        match code {
            486 | 600 => DivertReason::Busy,
            408 => DivertReason::NoAnswer,
            302 => DivertReason::Unconditional,
            404 | 410 | 480 | 503 => DivertReason::Unavailable,
            _ => DivertReason::Other,
        }
    }

    /// RFC 5806 `reason` values.
    pub fn from_diversion_reason(reason: &str) -> DivertReason {
        match reason.to_ascii_lowercase().as_str() {
            "user-busy" => DivertReason::Busy,
            "no-answer" => DivertReason::NoAnswer,
            "unavailable" | "out-of-service" | "away" => DivertReason::Unavailable,
            "unconditional" => DivertReason::Unconditional,
            _ => DivertReason::Other,
        }
    }
}

/// Who the call was for and why it came here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    /// The user part of the diverting party's URI (`1002`, `+3225550101`).
    pub mailbox: String,
    pub reason: DivertReason,
}

/// Reads the Request-URI and the INVITE's headers (name, value; names
/// compared case-insensitively, repeated headers in message order).
pub fn diverted_target(request_uri: &str, headers: &[(String, String)]) -> Option<Diversion> {
    from_request_uri(request_uri)
        .or_else(|| from_diversion(headers))
        .or_else(|| from_history_info(headers))
}

fn from_request_uri(uri: &str) -> Option<Diversion> {
    let uri = Uri::parse(uri.trim())?;
    let target = uri.param("target")?;
    let target = percent_decode(target);
    // The target is a URI (`sip:1002@pbx`) or just the user.
    let mailbox = match Uri::parse(&target) {
        Some(u) if u.has_scheme => u.user?,
        _ => target,
    };
    let reason = uri
        .param("cause")
        .and_then(|c| c.parse().ok())
        .map_or(DivertReason::Other, DivertReason::from_cause);
    nonempty(mailbox).map(|mailbox| Diversion { mailbox, reason })
}

fn from_diversion(headers: &[(String, String)]) -> Option<Diversion> {
    let value = headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("diversion"))
        .flat_map(|(_, v)| split_top_level(v))
        .next()?;
    let entry = Entry::parse(&value)?;
    let reason = entry
        .param("reason")
        .map_or(DivertReason::Other, DivertReason::from_diversion_reason);
    nonempty(entry.uri.user?).map(|mailbox| Diversion { mailbox, reason })
}

fn from_history_info(headers: &[(String, String)]) -> Option<Diversion> {
    let entries: Vec<Entry> = headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("history-info"))
        .flat_map(|(_, v)| split_top_level(v))
        .filter_map(|e| Entry::parse(&e))
        .collect();
    // The last retargeting with a cause is the one that brought the call here.
    for (i, e) in entries.iter().enumerate().rev() {
        if let Some(code) = e.uri.param("cause").and_then(|c| c.parse::<u16>().ok()) {
            let parent_index = e
                .param("mp")
                .or_else(|| e.param("rc"))
                .map(str::to_owned)
                .or_else(|| {
                    e.param("index")
                        .and_then(|ix| ix.rsplit_once('.'))
                        .map(|(p, _)| p.to_owned())
                });
            let parent = parent_index
                .and_then(|p| {
                    entries[..i]
                        .iter()
                        .rev()
                        .find(|x| x.param("index") == Some(&p))
                })
                .or_else(|| i.checked_sub(1).map(|j| &entries[j]))?;
            if let Some(mailbox) = parent.uri.user.clone().and_then(nonempty) {
                return Some(Diversion {
                    mailbox,
                    reason: DivertReason::from_cause(code),
                });
            }
        }
        if let Some(code) = e.uri.reason_cause()
            && let Some(mailbox) = e.uri.user.clone().and_then(nonempty)
        {
            return Some(Diversion {
                mailbox,
                reason: DivertReason::from_cause(code),
            });
        }
    }
    None
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Splits a header value at commas outside quotes and `<...>`.
fn split_top_level(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' && !angle {
            quoted = !quoted;
        } else if !quoted && c == '<' {
            angle = true;
        } else if !quoted && c == '>' {
            angle = false;
        } else if !quoted && !angle && c == ',' {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `;a=b;c` parameters (values unquoted, names lower-cased).
fn parse_params(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_ascii_lowercase(), v.to_owned())
        })
        .collect()
}

/// A name-addr or addr-spec with its header parameters.
struct Entry {
    uri: Uri,
    params: Vec<(String, String)>,
}

impl Entry {
    fn parse(text: &str) -> Option<Entry> {
        let text = text.trim();
        let (uri, params) = match text.find('<') {
            Some(open) => {
                let close = open + text[open..].find('>')?;
                (&text[open + 1..close], &text[close + 1..])
            }
            // addr-spec: parameters after the URI belong to the header.
            None => text.split_once(';').unwrap_or((text, "")),
        };
        Some(Entry {
            uri: Uri::parse(uri)?,
            params: parse_params(params),
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Just enough of a SIP/tel URI: the user, URI parameters, headers.
struct Uri {
    has_scheme: bool,
    user: Option<String>,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Uri {
    fn parse(text: &str) -> Option<Uri> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let (scheme, rest) = match text.split_once(':') {
            Some((s, r)) if ["sip", "sips", "tel"].contains(&s.to_ascii_lowercase().as_str()) => {
                (Some(s.to_ascii_lowercase()), r)
            }
            _ => (None, text),
        };
        let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
        let headers = headers
            .split('&')
            .filter_map(|h| h.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), percent_decode(v)))
            .collect();
        let (user, params) = if scheme.as_deref() == Some("tel") {
            let (number, params) = rest.split_once(';').unwrap_or((rest, ""));
            (Some(number.to_owned()), params)
        } else {
            // The user part may hold `;` (user parameters) before the `@`.
            let (user, hostport) = match rest.find('@') {
                Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
                None => (None, rest),
            };
            let user = user.map(|u| u.split(';').next().unwrap_or(u).to_owned());
            let params = hostport.split_once(';').map_or("", |(_, p)| p);
            (user, params)
        };
        Some(Uri {
            has_scheme: scheme.is_some(),
            user: user.map(|u| percent_decode(&u)),
            params: parse_params(params),
            headers,
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The cause of an escaped `Reason: SIP;cause=486` header.
    fn reason_cause(&self) -> Option<u16> {
        let (_, reason) = self.headers.iter().find(|(k, _)| k == "reason")?;
        let (protocol, params) = reason.split_once(';')?;
        if !protocol.trim().eq_ignore_ascii_case("sip") {
            return None;
        }
        parse_params(params)
            .into_iter()
            .find(|(k, _)| k == "cause")
            .and_then(|(_, v)| v.parse().ok())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn d(mailbox: &str, reason: DivertReason) -> Option<Diversion> {
        Some(Diversion {
            mailbox: mailbox.into(),
            reason,
        })
    }

    const VM: &str = "sip:voicemail@vm.example.com";

    #[test]
    fn rfc4458_request_uri() {
        assert_eq!(
            diverted_target("sip:voicemail@vm.example.com;target=1002;cause=486", &[]),
            d("1002", DivertReason::Busy)
        );
        assert_eq!(
            diverted_target(
                "sip:voicemail@vm.example.com;transport=udp;target=sip:1003%40pbx.example.com;cause=408",
                &[]
            ),
            d("1003", DivertReason::NoAnswer)
        );
        assert_eq!(
            diverted_target(
                "sip:vm@192.0.2.1:5060;target=sip%3A%2B3225550101%40pbx;cause=302",
                &[]
            ),
            d("+3225550101", DivertReason::Unconditional)
        );
        // No cause: diverted, reason unknown.
        assert_eq!(
            diverted_target("sip:voicemail@vm;target=1004", &[]),
            d("1004", DivertReason::Other)
        );
        // The Request-URI wins over headers.
        let headers = h(&[("Diversion", "<sip:1001@pbx>;reason=no-answer")]);
        assert_eq!(
            diverted_target("sip:voicemail@vm;target=1002;cause=486", &headers),
            d("1002", DivertReason::Busy)
        );
        assert_eq!(diverted_target("sip:1001@vm.example.com", &[]), None);
        assert_eq!(
            diverted_target("sip:voicemail@vm;target=;cause=486", &[]),
            None
        );
    }

    #[test]
    fn diversion_header() {
        let asterisk = h(&[
            ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1"),
            (
                "Diversion",
                "<sip:1002@pbx.example.com>;reason=user-busy;counter=1;privacy=off",
            ),
        ]);
        assert_eq!(
            diverted_target(VM, &asterisk),
            d("1002", DivertReason::Busy)
        );

        let cucm = h(&[(
            "DIVERSION",
            "\"Bob, Sales\" <sip:1003@10.0.0.1;user=phone>;reason=\"no-answer\";privacy=off;screen=no",
        )]);
        assert_eq!(
            diverted_target(VM, &cucm),
            d("1003", DivertReason::NoAnswer)
        );

        // Two diversions in one header and a second header: the topmost
        // (most recent) one counts.
        let chain = h(&[
            (
                "Diversion",
                "<sip:1005@pbx>;reason=unavailable;counter=1, <sip:1004@pbx>;reason=unconditional",
            ),
            ("Diversion", "<sip:1006@pbx>;reason=user-busy"),
        ]);
        assert_eq!(
            diverted_target(VM, &chain),
            d("1005", DivertReason::Unavailable)
        );

        let tel = h(&[(
            "Diversion",
            "<tel:+3225550101;phone-context=+32>;reason=deflection",
        )]);
        assert_eq!(
            diverted_target(VM, &tel),
            d("+3225550101", DivertReason::Other)
        );

        let addr_spec = h(&[("diversion", "sip:1007@pbx;reason=unconditional")]);
        assert_eq!(
            diverted_target(VM, &addr_spec),
            d("1007", DivertReason::Unconditional)
        );

        let no_user = h(&[("Diversion", "<sip:pbx.example.com>;reason=user-busy")]);
        assert_eq!(diverted_target(VM, &no_user), None);
    }

    #[test]
    fn history_info_with_cause() {
        // RFC 7044 style: Alice calls the DID, the PBX maps it to 1002,
        // 1002 is busy, the call goes to voicemail with cause=486.
        let hi = h(&[(
            "History-Info",
            "<sip:+3225550100@pbx.example.com;user=phone>;index=1, \
             <sip:1002@pbx.example.com>;index=1.1;mp=1, \
             <sip:voicemail@vm.example.com;cause=486>;index=1.1.1;rc=1.1",
        )]);
        assert_eq!(diverted_target(VM, &hi), d("1002", DivertReason::Busy));

        // Entries split over several headers; the parent found by index.
        let hi = h(&[
            ("History-Info", "<sip:1001@pbx>;index=1"),
            ("History-Info", "<sip:1004@pbx>;index=1.2"),
            ("History-Info", "<sip:vm@vm;cause=408>;index=1.1"),
        ]);
        assert_eq!(diverted_target(VM, &hi), d("1001", DivertReason::NoAnswer));

        // No index at all: the entry before.
        let hi = h(&[("History-Info", "<sip:1008@pbx>, <sip:vm@vm;cause=480>")]);
        assert_eq!(
            diverted_target(VM, &hi),
            d("1008", DivertReason::Unavailable)
        );

        // Only an escaped Reason header on the user's entry.
        let hi = h(&[(
            "History-Info",
            "<sip:1009@pbx?Reason=SIP%3Bcause%3D486%3Btext%3D%22Busy%20Here%22>;index=1, \
             <sip:vm@vm>;index=1.1",
        )]);
        assert_eq!(diverted_target(VM, &hi), d("1009", DivertReason::Busy));

        // Retargeting without a cause is not a diversion.
        let hi = h(&[(
            "History-Info",
            "<sip:1001@pbx>;index=1, <sip:vm@vm>;index=1.1",
        )]);
        assert_eq!(diverted_target(VM, &hi), None);
    }

    #[test]
    fn diversion_beats_history_info() {
        let both = h(&[
            (
                "History-Info",
                "<sip:1001@pbx>;index=1, <sip:vm@vm;cause=486>;index=1.1",
            ),
            ("Diversion", "<sip:1002@pbx>;reason=no-answer"),
        ]);
        assert_eq!(
            diverted_target(VM, &both),
            d("1002", DivertReason::NoAnswer)
        );
    }

    #[test]
    fn reasons_map_to_greetings() {
        assert_eq!(DivertReason::from_cause(486).greeting(), GreetingKind::Busy);
        assert_eq!(
            DivertReason::from_cause(408).greeting(),
            GreetingKind::Unavailable
        );
        assert_eq!(DivertReason::from_cause(302), DivertReason::Unconditional);
        assert_eq!(DivertReason::from_cause(404), DivertReason::Unavailable);
        assert_eq!(DivertReason::from_cause(487), DivertReason::Other);
        assert_eq!(
            DivertReason::from_diversion_reason("User-Busy"),
            DivertReason::Busy
        );
        assert_eq!(
            DivertReason::from_diversion_reason("time-of-day"),
            DivertReason::Other
        );
        assert_eq!(DivertReason::Other.greeting(), GreetingKind::Unavailable);
    }

    #[test]
    fn hostile_values_do_not_panic() {
        for v in [
            "",
            "<",
            ">",
            "\"",
            "<sip:%>",
            "<sip:@>;reason",
            ",,,",
            "<sip:1%E2@x>;reason=user-busy",
            "\"a\\\"b\" <sip:1@x>",
        ] {
            let headers = h(&[("Diversion", v), ("History-Info", v)]);
            let _ = diverted_target(v, &headers);
        }
        // A quoted comma does not split an entry.
        let quoted = h(&[("Diversion", "\"Doe, John\" <sip:1010@pbx>;reason=user-busy")]);
        assert_eq!(diverted_target(VM, &quoted), d("1010", DivertReason::Busy));
    }
}
