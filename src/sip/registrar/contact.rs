//! The Contact headers of a REGISTER.

use crate::sip::message::{SipRequest, header_param};

#[derive(Debug)]
pub(super) struct ContactEntry {
    pub(super) uri: String,
    pub(super) expires: Option<u32>,
}

#[derive(Debug)]
pub(super) enum Contacts {
    /// No Contact: a query.
    None,
    /// `Contact: *`.
    Star,
    List(Vec<ContactEntry>),
}

pub(super) fn parse_contacts(req: &SipRequest) -> Result<Contacts, &'static str> {
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
pub(super) fn split_contacts(value: &str) -> Vec<&str> {
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
pub(super) fn same_uri(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
