//! SDP (RFC 4566) parsing and RFC 3264 offer/answer for one audio stream.
//!
//! Sans-IO: text in, typed values and text out. The parser is lenient where
//! real phones differ (line endings, `s=`/`t=` order, unknown lines and
//! attributes) and strict where a value we act on is unusable: such input is
//! an [`SdpError`] naming the line, never a panic.
//!
//! We only speak G.711 (PCMU/PCMA, static payload types 0 and 8) plus RFC 4733
//! telephone-event, over plain `RTP/AVP`. Anything else in an offer is
//! declined in the answer rather than failing the call, unless nothing usable
//! is left (then [`NegotiationError`], which the SIP layer turns into 488).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Media direction attribute (RFC 4566 §6, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name as written after `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction the other side of a stream has (RFC 3264 §6.1): what one
    /// side sends the other receives.
    pub fn mirror(self) -> Self {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// This direction with sending removed (used when there is no address to
    /// send to).
    fn without_send(self) -> Self {
        match self {
            Direction::SendRecv | Direction::RecvOnly => Direction::RecvOnly,
            Direction::SendOnly | Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether media flows from the side holding this direction.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side holding this direction accepts media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The audio codecs we can encode and decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl AudioCodec {
    /// The static payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }

    /// RTP clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    fn from_static_pt(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(AudioCodec::Pcmu),
            8 => Some(AudioCodec::Pcma),
            _ => None,
        }
    }

    fn from_rtpmap(map: &RtpMap) -> Option<Self> {
        // G.711 is mono 8 kHz by definition; a different rate or channel count
        // is some other format that happens to share the name.
        if map.clock_rate != 8000 || map.channels.is_some_and(|c| c != 1) {
            return None;
        }
        if map.encoding.eq_ignore_ascii_case("PCMU") {
            Some(AudioCodec::Pcmu)
        } else if map.encoding.eq_ignore_ascii_case("PCMA") {
            Some(AudioCodec::Pcma)
        } else {
            None
        }
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    /// Kept as text: RFC 4566 only says "numeric string" and some stacks
    /// exceed 64 bits; we only ever compare it.
    pub session_id: String,
    /// Kept as text for the same reason; a change means a new offer.
    pub session_version: String,
    pub net_type: String,
    pub addr_type: String,
    /// May be a host name, so not parsed as an address.
    pub address: String,
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=fmtp:<pt> <parameters>`, parameters kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub parameters: String,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaDescription {
    /// `audio`, `video`, ...
    pub media: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, ...
    pub protocol: String,
    /// Format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=`, which overrides the session-level one.
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    /// Media-level direction attribute, if any.
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
}

impl MediaDescription {
    /// The `a=rtpmap` for a payload type, if given.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp` for a payload type, if given.
    pub fn fmtp(&self, payload_type: u8) -> Option<&Fmtp> {
        self.fmtps.iter().find(|f| f.payload_type == payload_type)
    }

    /// RTP payload type numbers in the format list; non-numeric formats
    /// (possible for non-RTP protocols) are skipped.
    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse::<u8>().ok())
    }

    /// Which of our codecs a payload type stands for: the rtpmap when given,
    /// else the static assignment.
    fn codec_for(&self, pt: u8) -> Option<AudioCodec> {
        match self.rtpmap(pt) {
            Some(map) => AudioCodec::from_rtpmap(map),
            None => AudioCodec::from_static_pt(pt),
        }
    }

    /// The payload type offered for RFC 4733 telephone-event at 8 kHz.
    fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }

    fn is_rtp_avp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/AVP")
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    pub media: Vec<MediaDescription>,
    /// Session-level direction attribute, if any.
    pub direction: Option<Direction>,
}

/// Why an SDP body could not be parsed. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is empty")]
    Empty,
    #[error("SDP line {line}: expected {expected}, found `{found}`")]
    Invalid {
        line: usize,
        expected: &'static str,
        found: String,
    },
    #[error("SDP has no `{0}` line")]
    Missing(&'static str),
    #[error("SDP line {line}: media has no `c=` and there is no session-level `c=`")]
    MissingConnection { line: usize },
}

/// Longest excerpt of a bad line quoted in an error, so a hostile body
/// cannot blow up logs.
const MAX_QUOTE: usize = 80;

fn invalid(line: usize, expected: &'static str, found: &str) -> SdpError {
    let found = match found.char_indices().nth(MAX_QUOTE) {
        Some((cut, _)) => format!("{}...", &found[..cut]),
        None => found.to_owned(),
    };
    SdpError::Invalid {
        line,
        expected,
        found,
    }
}

impl SessionDescription {
    /// Parse an SDP body. Accepts `\r\n` or `\n`; requires `v=0` first, then
    /// `o=` and `s=`; requires a connection address at session level or in
    /// every `m=` section. Unknown line types and attributes are ignored.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut lines = text
            .split('\n')
            .enumerate()
            // Trailing whitespace and `\r` are noise some stacks add.
            .map(|(i, l)| (i + 1, l.trim_end_matches([' ', '\t', '\r'])))
            .filter(|(_, l)| !l.is_empty());

        let (first_no, first) = lines.next().ok_or(SdpError::Empty)?;
        if first != "v=0" {
            return Err(invalid(first_no, "`v=0` as the first line", first));
        }

        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut direction = None;
        let mut media: Vec<MediaDescription> = Vec::new();
        // Line of each m= to name it when its c= is missing.
        let mut media_lines: Vec<usize> = Vec::new();

        for (no, line) in lines {
            let Some((kind, value)) = split_type(line) else {
                return Err(invalid(no, "`<letter>=<value>`", line));
            };
            match (kind, media.last_mut()) {
                ('v', _) => return Err(invalid(no, "a single `v=` line", line)),
                ('o', None) => origin = Some(parse_origin(no, value)?),
                ('s', None) => session_name = Some(value.to_owned()),
                ('c', None) => connection = Some(parse_connection(no, value)?),
                ('c', Some(m)) => m.connection = Some(parse_connection(no, value)?),
                ('m', _) => {
                    media.push(parse_media(no, value)?);
                    media_lines.push(no);
                }
                ('a', None) => {
                    // Only the direction matters at session level.
                    if let Some(d) = Direction::from_attribute(value) {
                        direction = Some(d);
                    }
                }
                ('a', Some(m)) => parse_media_attribute(no, value, m)?,
                // t=, b=, i=, u=, e=, p=, z=, k=, r= and anything newer carry
                // nothing we act on.
                _ => {}
            }
        }

        let origin = origin.ok_or(SdpError::Missing("o="))?;
        let session_name = session_name.ok_or(SdpError::Missing("s="))?;
        if connection.is_none()
            && let Some(i) = media.iter().position(|m| m.connection.is_none())
        {
            return Err(SdpError::MissingConnection {
                line: media_lines[i],
            });
        }
        Ok(SessionDescription {
            origin,
            session_name,
            connection,
            media,
            direction,
        })
    }

    /// The connection address that applies to a media section: its own, else
    /// the session's.
    pub fn media_connection(&self, media: &MediaDescription) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// The direction that applies to a media section: its own, else the
    /// session's, else sendrecv (RFC 3264 §5.1 default).
    pub fn media_direction(&self, media: &MediaDescription) -> Direction {
        media
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
    }
}

/// Split `x=value`; the type must be one ASCII letter (RFC 4566 §5).
fn split_type(line: &str) -> Option<(char, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=' {
        Some((char::from(bytes[0]), &line[2..]))
    } else {
        None
    }
}

fn parse_origin(no: usize, value: &str) -> Result<Origin, SdpError> {
    const EXPECTED: &str = "`o=<username> <sess-id> <sess-version> IN <IP4|IP6> <address>`";
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [username, id, version, net, addr_type, address] = fields[..] else {
        return Err(invalid(no, EXPECTED, value));
    };
    if !id.bytes().all(|b| b.is_ascii_digit()) || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(no, "numeric session id and version in `o=`", value));
    }
    Ok(Origin {
        username: username.to_owned(),
        session_id: id.to_owned(),
        session_version: version.to_owned(),
        net_type: net.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
    })
}

fn parse_connection(no: usize, value: &str) -> Result<IpAddr, SdpError> {
    const EXPECTED: &str = "`c=IN IP4 <address>` or `c=IN IP6 <address>`";
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [net, addr_type, address] = fields[..] else {
        return Err(invalid(no, EXPECTED, value));
    };
    if net != "IN" {
        return Err(invalid(no, EXPECTED, value));
    }
    // Multicast IPv4 may carry /ttl[/count]; IPv6 may carry /count.
    let address = address.split('/').next().unwrap_or(address);
    match (addr_type, address.parse::<IpAddr>()) {
        ("IP4", Ok(ip @ IpAddr::V4(_))) | ("IP6", Ok(ip @ IpAddr::V6(_))) => Ok(ip),
        // Host names are legal SDP but resolving them is not our job here.
        _ => Err(invalid(
            no,
            "an IP address matching the address type",
            value,
        )),
    }
}

fn parse_media(no: usize, value: &str) -> Result<MediaDescription, SdpError> {
    const EXPECTED: &str = "`m=<media> <port> <proto> <fmt> ...`";
    let mut fields = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(protocol)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(invalid(no, EXPECTED, value));
    };
    let formats: Vec<String> = fields.map(str::to_owned).collect();
    if formats.is_empty() {
        return Err(invalid(no, EXPECTED, value));
    }
    // `<port>/<number of ports>`: the count is for layered encodings, unused.
    let port = port
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| invalid(no, "a port number 0-65535 in `m=`", value))?;
    Ok(MediaDescription {
        media: kind.to_owned(),
        port,
        protocol: protocol.to_owned(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
        ptime: None,
        maxptime: None,
    })
}

fn parse_media_attribute(
    no: usize,
    value: &str,
    media: &mut MediaDescription,
) -> Result<(), SdpError> {
    let (name, arg) = match value.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (value, None),
    };
    match (name, arg) {
        (_, None) => {
            if let Some(d) = Direction::from_attribute(name) {
                media.direction = Some(d);
            }
        }
        ("rtpmap", Some(arg)) => media.rtpmaps.push(parse_rtpmap(no, arg)?),
        ("fmtp", Some(arg)) => {
            let (pt, params) = arg.split_once(' ').unwrap_or((arg, ""));
            let payload_type = pt
                .parse()
                .map_err(|_| invalid(no, "`a=fmtp:<payload type> <parameters>`", value))?;
            media.fmtps.push(Fmtp {
                payload_type,
                parameters: params.trim().to_owned(),
            });
        }
        ("ptime", Some(arg)) => media.ptime = Some(parse_millis(no, arg, value)?),
        ("maxptime", Some(arg)) => media.maxptime = Some(parse_millis(no, arg, value)?),
        _ => {}
    }
    Ok(())
}

fn parse_rtpmap(no: usize, arg: &str) -> Result<RtpMap, SdpError> {
    let bad = || {
        invalid(
            no,
            "`a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]`",
            arg,
        )
    };
    let (pt, rest) = arg.split_once(' ').ok_or_else(bad)?;
    let payload_type: u8 = pt.parse().map_err(|_| bad())?;
    // RTP payload types are 7 bits.
    if payload_type > 127 {
        return Err(bad());
    }
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty()).ok_or_else(bad)?;
    let clock_rate: u32 = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse::<u16>().map_err(|_| bad())?),
        None => None,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// `a=ptime` / `a=maxptime`. Some stacks write decimals (`20.0`); round them.
fn parse_millis(no: usize, arg: &str, line: &str) -> Result<u32, SdpError> {
    let bad = || invalid(no, "a packet time in milliseconds", line);
    let arg = arg.trim();
    let ms = match arg.parse::<u32>() {
        Ok(ms) => ms,
        Err(_) => {
            let f: f64 = arg.parse().map_err(|_| bad())?;
            if !(1.0..=10_000.0).contains(&f) {
                return Err(bad());
            }
            f.round() as u32
        }
    };
    if ms == 0 { Err(bad()) } else { Ok(ms) }
}

/// What was agreed for the call's audio.
#[derive(Debug, Clone, PartialEq)]
pub struct NegotiatedAudio {
    pub codec: AudioCodec,
    /// Payload type to send and expect for `codec`.
    pub payload_type: u8,
    /// The remote's payload type for telephone-event/8000, if it does RFC 4733.
    pub telephone_event: Option<u8>,
    /// Where to send RTP; `None` when the remote gave `c=0.0.0.0` (RFC 2543
    /// hold) or an unspecified IPv6 address.
    pub remote_rtp: Option<SocketAddr>,
    /// The direction the remote declared.
    pub remote_direction: Direction,
    /// Our direction, as written in our answer (or implied by our offer).
    pub local_direction: Direction,
    /// Milliseconds of audio per packet we send (the remote's `a=ptime`, or
    /// 20).
    pub ptime: u32,
}

/// Why offer/answer failed; the SIP layer answers 488 Not Acceptable Here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no audio stream in the session description")]
    NoAudio,
    #[error("audio offered only over `{0}`, we support RTP/AVP")]
    UnsupportedProtocol(String),
    #[error("no audio codec in common (we support PCMU and PCMA)")]
    NoCommonCodec,
    #[error("the answer rejected our audio stream (port 0)")]
    Rejected,
}

impl NegotiationError {
    /// SIP status for an INVITE whose SDP failed negotiation (RFC 3261 §21.4.26).
    pub fn sip_status(&self) -> u16 {
        488
    }
}

/// Local capabilities and addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address written in `o=` and `c=`.
    pub address: IpAddr,
    pub rtp_port: u16,
    pub session_id: u64,
    /// Callers bump this for every new offer or answer in the same dialog
    /// (RFC 3264 §8).
    pub session_version: u64,
    /// Preference order; used as-is in our offers. Answers follow the offer's
    /// order (RFC 3264 §6.1 lets the answerer pick, and honouring the
    /// offerer's preference avoids transcoding on their side).
    pub codecs: Vec<AudioCodec>,
    /// Payload type we offer for telephone-event (conventionally 101).
    pub telephone_event_pt: u8,
    /// Written in `s=`.
    pub user_agent: String,
}

/// Our packet time, written as `a=ptime` and used when the remote gives none.
const DEFAULT_PTIME: u32 = 20;

/// Answer an offer (RFC 3264 §6).
///
/// - The first `RTP/AVP` audio stream with a non-zero port is accepted; every
///   other stream (video, a second audio, SRTP) is declined with port 0 in
///   the same position, because we run one RTP session per call.
/// - The codec is the first in the offer's order that `local.codecs` holds.
/// - telephone-event is accepted with the offerer's payload type.
/// - Our direction mirrors theirs. When the remote address is unspecified
///   (`c=0.0.0.0`, RFC 2543 hold) we cannot send, so sending is removed from
///   the mirrored direction: sendrecv/sendonly offers get recvonly, recvonly
///   or inactive offers get inactive. Saying so in the answer keeps both ends
///   agreeing that nothing flows towards the holder.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(NegotiatedAudio, String), NegotiationError> {
    let audio_streams = || {
        offer
            .media
            .iter()
            .enumerate()
            .filter(|(_, m)| m.media == "audio")
    };
    let mut live_audio = audio_streams().filter(|(_, m)| m.port != 0);
    let (index, media) = live_audio
        .clone()
        .find(|(_, m)| m.is_rtp_avp())
        .ok_or_else(|| match live_audio.next() {
            Some((_, m)) => NegotiationError::UnsupportedProtocol(m.protocol.clone()),
            None => NegotiationError::NoAudio,
        })?;

    let (payload_type, codec) = first_common_codec(media, local)?;
    let telephone_event = media.telephone_event();

    let remote_direction = offer.media_direction(media);
    let remote_rtp = remote_socket(offer, media);
    let local_direction = local_direction(remote_direction, remote_rtp);

    let negotiated = NegotiatedAudio {
        codec,
        payload_type,
        telephone_event,
        remote_rtp,
        remote_direction,
        local_direction,
        ptime: usable_ptime(media.ptime),
    };

    let mut sdp = session_header(local);
    for (i, m) in offer.media.iter().enumerate() {
        if i == index {
            // The offerer's payload type: it may have mapped G.711 to a
            // dynamic one.
            write_audio(
                &mut sdp,
                local.rtp_port,
                &[(payload_type, codec)],
                telephone_event,
                local_direction,
            );
        } else {
            // Declined: port 0, same media, proto and formats (RFC 3264 §6).
            let _ = write!(sdp, "m={} 0 {}", m.media, m.protocol);
            for f in &m.formats {
                let _ = write!(sdp, " {f}");
            }
            sdp.push_str("\r\n");
        }
    }
    Ok((negotiated, sdp))
}

/// Our own offer, for late-offer INVITEs (we offer in the 200 OK) and for
/// re-offers: all our codecs in preference order, telephone-event, sendrecv.
pub fn offer(local: &LocalMedia) -> String {
    let mut sdp = session_header(local);
    let codecs: Vec<(u8, AudioCodec)> = local
        .codecs
        .iter()
        .map(|c| (c.payload_type(), *c))
        .collect();
    write_audio(
        &mut sdp,
        local.rtp_port,
        &codecs,
        Some(local.telephone_event_pt),
        Direction::SendRecv,
    );
    sdp
}

/// Process the remote's answer to our [`offer`] (for a late offer it arrives
/// in the ACK). Our offer had one audio stream, so the answer's first `m=`
/// is its answer (RFC 3264 §6: same number and order of streams).
pub fn accept_answer(
    answer: &SessionDescription,
    local: &LocalMedia,
) -> Result<NegotiatedAudio, NegotiationError> {
    let media = answer.media.first().ok_or(NegotiationError::NoAudio)?;
    if media.media != "audio" {
        return Err(NegotiationError::NoAudio);
    }
    if media.port == 0 {
        return Err(NegotiationError::Rejected);
    }
    if !media.is_rtp_avp() {
        return Err(NegotiationError::UnsupportedProtocol(
            media.protocol.clone(),
        ));
    }
    // RFC 3264 §7: the offerer sends with the first answered format it can.
    let (payload_type, codec) = first_common_codec(media, local)?;
    let remote_direction = answer.media_direction(media);
    let remote_rtp = remote_socket(answer, media);
    let local_direction = local_direction(remote_direction, remote_rtp);
    Ok(NegotiatedAudio {
        codec,
        payload_type,
        telephone_event: media.telephone_event(),
        remote_rtp,
        remote_direction,
        local_direction,
        ptime: usable_ptime(media.ptime),
    })
}

/// The first format in the media's order that is one of our codecs.
fn first_common_codec(
    media: &MediaDescription,
    local: &LocalMedia,
) -> Result<(u8, AudioCodec), NegotiationError> {
    media
        .payload_types()
        .find_map(|pt| {
            let codec = media.codec_for(pt)?;
            local.codecs.contains(&codec).then_some((pt, codec))
        })
        .ok_or(NegotiationError::NoCommonCodec)
}

/// Mirror the remote's direction; without a remote address we cannot send.
fn local_direction(remote: Direction, remote_rtp: Option<SocketAddr>) -> Direction {
    let mirrored = remote.mirror();
    if remote_rtp.is_some() {
        mirrored
    } else {
        mirrored.without_send()
    }
}

/// Where to send, or `None` for an unspecified address (hold).
fn remote_socket(sdp: &SessionDescription, media: &MediaDescription) -> Option<SocketAddr> {
    let ip = sdp.media_connection(media)?;
    (!ip.is_unspecified()).then_some(SocketAddr::new(ip, media.port))
}

/// The remote's ptime if our pacer can produce it (whole 10 ms frames up to
/// 120 ms), else our default.
fn usable_ptime(ptime: Option<u32>) -> u32 {
    match ptime {
        Some(p) if p % 10 == 0 && (10..=120).contains(&p) => p,
        _ => DEFAULT_PTIME,
    }
}

/// Keep header fields to one token of printable text so a configured user
/// agent cannot inject SDP lines.
fn sanitize(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "-".to_owned()
    } else {
        clean.to_owned()
    }
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(local: &LocalMedia) -> String {
    let at = addr_type(local.address);
    let mut sdp = String::with_capacity(320);
    let _ = write!(
        sdp,
        "v=0\r\no=- {} {} IN {at} {addr}\r\ns={}\r\nc=IN {at} {addr}\r\nt=0 0\r\n",
        local.session_id,
        local.session_version,
        sanitize(&local.user_agent),
        addr = local.address,
    );
    sdp
}

/// Write our audio `m=` section with the given (payload type, codec) pairs.
fn write_audio(
    sdp: &mut String,
    port: u16,
    codecs: &[(u8, AudioCodec)],
    telephone_event: Option<u8>,
    direction: Direction,
) {
    let _ = write!(sdp, "m=audio {port} RTP/AVP");
    for (pt, _) in codecs {
        let _ = write!(sdp, " {pt}");
    }
    if let Some(te) = telephone_event {
        let _ = write!(sdp, " {te}");
    }
    sdp.push_str("\r\n");
    for (pt, codec) in codecs {
        let _ = write!(
            sdp,
            "a=rtpmap:{pt} {}/{}\r\n",
            codec.encoding_name(),
            codec.clock_rate()
        );
    }
    if let Some(te) = telephone_event {
        let _ = write!(
            sdp,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(
        sdp,
        "a=ptime:{DEFAULT_PTIME}\r\na={}\r\n",
        direction.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn local() -> LocalMedia {
        LocalMedia {
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            rtp_port: 20000,
            session_id: 4242,
            session_version: 7,
            codecs: vec![AudioCodec::Pcmu, AudioCodec::Pcma],
            telephone_event_pt: 101,
            user_agent: "voxmail".into(),
        }
    }

    /// Build an SDP body from lines, with CRLF endings.
    fn sdp(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\r\n")).collect()
    }

    fn parse(lines: &[&str]) -> SessionDescription {
        SessionDescription::parse(&sdp(lines)).expect("test SDP parses")
    }

    /// Zoiper/Linphone-style: Opus first, then G.711, telephone-event on a
    /// dynamic PT other than 101.
    fn softphone_offer() -> SessionDescription {
        parse(&[
            "v=0",
            "o=Zoiper 1700000000 1 IN IP4 198.51.100.7",
            "s=Z",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=audio 52000 RTP/AVP 96 0 8 97",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 useinbandfec=1",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:97 telephone-event/8000",
            "a=fmtp:97 0-16",
            "a=sendrecv",
        ])
    }

    #[test]
    fn parses_fields_of_a_softphone_offer() {
        let o = softphone_offer();
        assert_eq!(o.origin.username, "Zoiper");
        assert_eq!(o.origin.session_id, "1700000000");
        assert_eq!(o.origin.session_version, "1");
        assert_eq!(o.session_name, "Z");
        assert_eq!(o.connection, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(o.media.len(), 1);
        let m = &o.media[0];
        assert_eq!(m.media, "audio");
        assert_eq!(m.port, 52000);
        assert_eq!(m.protocol, "RTP/AVP");
        assert_eq!(m.formats, ["96", "0", "8", "97"]);
        assert_eq!(
            m.rtpmap(96),
            Some(&RtpMap {
                payload_type: 96,
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: Some(2)
            })
        );
        assert_eq!(m.fmtp(97).map(|f| f.parameters.as_str()), Some("0-16"));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert_eq!(m.connection, None);
    }

    #[test]
    fn answers_softphone_offer_with_pcmu_and_their_telephone_event_pt() {
        let (neg, text) = answer(&softphone_offer(), &local()).unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcmu);
        assert_eq!(neg.payload_type, 0);
        assert_eq!(neg.telephone_event, Some(97));
        assert_eq!(neg.remote_rtp, Some("198.51.100.7:52000".parse().unwrap()));
        assert_eq!(neg.remote_direction, Direction::SendRecv);
        assert_eq!(neg.local_direction, Direction::SendRecv);
        assert_eq!(neg.ptime, 20);
        assert_eq!(
            text,
            "v=0\r\n\
             o=- 4242 7 IN IP4 192.0.2.10\r\n\
             s=voxmail\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 20000 RTP/AVP 0 97\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:97 telephone-event/8000\r\n\
             a=fmtp:97 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn offer_order_wins_over_local_preference() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=audio 4000 RTP/AVP 8 0 101",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        let (neg, _) = answer(&o, &local()).unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcma);
        assert_eq!(neg.telephone_event, Some(101));
    }

    #[test]
    fn pcma_only_offer_without_rtpmap_uses_static_pt() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=audio 4000 RTP/AVP 8",
        ]);
        let (neg, text) = answer(&o, &local()).unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcma);
        assert_eq!(neg.payload_type, 8);
        assert_eq!(neg.telephone_event, None);
        assert!(text.contains("m=audio 20000 RTP/AVP 8\r\n"), "{text}");
        assert!(!text.contains("telephone-event"), "{text}");
    }

    #[test]
    fn pcma_offer_rejected_when_we_only_do_pcmu() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 8",
        ]);
        let mut l = local();
        l.codecs = vec![AudioCodec::Pcmu];
        assert_eq!(answer(&o, &l).unwrap_err(), NegotiationError::NoCommonCodec);
    }

    #[test]
    fn g711_on_a_dynamic_pt_is_answered_with_that_pt() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 110",
            "a=rtpmap:110 pcmu/8000",
        ]);
        let (neg, text) = answer(&o, &local()).unwrap();
        assert_eq!((neg.codec, neg.payload_type), (AudioCodec::Pcmu, 110));
        assert!(text.contains("a=rtpmap:110 PCMU/8000\r\n"), "{text}");
    }

    #[test]
    fn g729_only_offer_has_no_common_codec() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=audio 4000 RTP/AVP 18 101",
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        let err = answer(&o, &local()).unwrap_err();
        assert_eq!(err, NegotiationError::NoCommonCodec);
        assert_eq!(err.sip_status(), 488);
    }

    #[test]
    fn rtpmap_overrides_static_pt_meaning() {
        // PT 0 remapped to something else is not PCMU.
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 0",
            "a=rtpmap:0 PCMU/16000",
        ]);
        assert_eq!(
            answer(&o, &local()).unwrap_err(),
            NegotiationError::NoCommonCodec
        );
    }

    #[test]
    fn no_audio_m_line() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=video 5000 RTP/AVP 96",
        ]);
        assert_eq!(answer(&o, &local()).unwrap_err(), NegotiationError::NoAudio);
        let none = parse(&["v=0", "o=- 1 1 IN IP4 198.51.100.7", "s=-"]);
        assert_eq!(
            answer(&none, &local()).unwrap_err(),
            NegotiationError::NoAudio
        );
    }

    #[test]
    fn audio_with_port_zero_is_no_audio() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 0 RTP/AVP 0",
        ]);
        assert_eq!(answer(&o, &local()).unwrap_err(), NegotiationError::NoAudio);
    }

    #[test]
    fn srtp_only_audio_is_unsupported_protocol() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/SAVP 0",
        ]);
        assert_eq!(
            answer(&o, &local()).unwrap_err(),
            NegotiationError::UnsupportedProtocol("RTP/SAVP".into())
        );
    }

    #[test]
    fn video_and_extra_streams_declined_in_place() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
            "m=video 5002 RTP/AVP 96 97",
            "a=rtpmap:96 H264/90000",
            "m=audio 5000 RTP/AVP 0",
            "m=audio 5004 RTP/AVP 0",
        ]);
        let (neg, text) = answer(&o, &local()).unwrap();
        assert_eq!(neg.remote_rtp, Some("198.51.100.7:5000".parse().unwrap()));
        let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            [
                "m=video 0 RTP/AVP 96 97",
                "m=audio 20000 RTP/AVP 0",
                "m=audio 0 RTP/AVP 0"
            ]
        );
        // The answer parses and keeps stream positions.
        let back = SessionDescription::parse(&text).unwrap();
        assert_eq!(back.media[0].port, 0);
        assert_eq!(back.media[1].port, 20000);
        assert_eq!(back.media[2].port, 0);
    }

    #[test]
    fn directions_are_mirrored() {
        for (theirs, ours) in [
            ("sendonly", Direction::RecvOnly),
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
            ("sendrecv", Direction::SendRecv),
        ] {
            let attr = format!("a={theirs}");
            let o = parse(&[
                "v=0",
                "o=- 1 1 IN IP4 198.51.100.7",
                "s=-",
                "c=IN IP4 198.51.100.7",
                "m=audio 4000 RTP/AVP 0",
                &attr,
            ]);
            let (neg, text) = answer(&o, &local()).unwrap();
            assert_eq!(neg.remote_direction.as_str(), theirs);
            assert_eq!(neg.local_direction, ours, "offer {theirs}");
            assert!(
                text.ends_with(&format!("a={}\r\n", ours.as_str())),
                "{text}"
            );
        }
    }

    #[test]
    fn session_level_direction_applies_unless_media_overrides() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "a=sendonly",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 0",
        ]);
        assert_eq!(o.direction, Some(Direction::SendOnly));
        let (neg, _) = answer(&o, &local()).unwrap();
        assert_eq!(neg.local_direction, Direction::RecvOnly);

        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "a=sendonly",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 0",
            "a=inactive",
        ]);
        let (neg, _) = answer(&o, &local()).unwrap();
        assert_eq!(neg.remote_direction, Direction::Inactive);
        assert_eq!(neg.local_direction, Direction::Inactive);
    }

    #[test]
    fn rfc2543_hold_has_no_remote_address_and_we_do_not_send() {
        let o = parse(&[
            "v=0",
            "o=- 1 2 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "m=audio 4000 RTP/AVP 0",
        ]);
        let (neg, text) = answer(&o, &local()).unwrap();
        assert_eq!(neg.remote_rtp, None);
        assert_eq!(neg.remote_direction, Direction::SendRecv);
        assert_eq!(neg.local_direction, Direction::RecvOnly);
        assert!(text.contains("a=recvonly\r\n"), "{text}");

        // recvonly + 0.0.0.0: neither side can send.
        let o = parse(&[
            "v=0",
            "o=- 1 2 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "m=audio 4000 RTP/AVP 0",
            "a=recvonly",
        ]);
        let (neg, _) = answer(&o, &local()).unwrap();
        assert_eq!(neg.local_direction, Direction::Inactive);
    }

    #[test]
    fn ipv6_connection_and_ipv6_answer() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::7",
            "s=-",
            "c=IN IP6 2001:db8::7",
            "m=audio 4000 RTP/AVP 0",
        ]);
        let mut l = local();
        l.address = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
        let (neg, text) = answer(&o, &l).unwrap();
        assert_eq!(neg.remote_rtp, Some("[2001:db8::7]:4000".parse().unwrap()));
        assert!(text.contains("c=IN IP6 2001:db8::10\r\n"), "{text}");
        assert!(
            text.contains("o=- 4242 7 IN IP6 2001:db8::10\r\n"),
            "{text}"
        );
    }

    #[test]
    fn ip_version_must_match_address_type() {
        let err = SessionDescription::parse(&sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 2001:db8::7",
        ]))
        .unwrap_err();
        assert!(matches!(err, SdpError::Invalid { line: 4, .. }), "{err}");
    }

    #[test]
    fn media_level_connection_overrides_session() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 203.0.113.5",
        ]);
        let (neg, _) = answer(&o, &local()).unwrap();
        assert_eq!(neg.remote_rtp, Some("203.0.113.5:4000".parse().unwrap()));
    }

    #[test]
    fn connection_in_every_media_is_enough() {
        let o = parse(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 203.0.113.5/127",
        ]);
        assert_eq!(o.connection, None);
        assert_eq!(o.media[0].connection, Some("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn missing_connection_names_the_media_line() {
        let err = SessionDescription::parse(&sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 203.0.113.5",
            "m=video 4002 RTP/AVP 96",
        ]))
        .unwrap_err();
        assert_eq!(err, SdpError::MissingConnection { line: 6 });
    }

    #[test]
    fn ptime_is_honoured_when_usable() {
        for (attr, want) in [
            ("a=ptime:30", 30),
            ("a=ptime:20.0", 20),
            ("a=ptime:25", 20),
            ("a=ptime:500", 20),
        ] {
            let o = parse(&[
                "v=0",
                "o=- 1 1 IN IP4 198.51.100.7",
                "s=-",
                "c=IN IP4 198.51.100.7",
                "m=audio 4000 RTP/AVP 0",
                attr,
                "a=maxptime:150",
            ]);
            assert_eq!(o.media[0].maxptime, Some(150));
            let (neg, text) = answer(&o, &local()).unwrap();
            assert_eq!(neg.ptime, want, "{attr}");
            // Our own receive preference stays 20.
            assert!(text.contains("a=ptime:20\r\n"));
        }
        let err = SessionDescription::parse(&sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "m=audio 4000 RTP/AVP 0",
            "a=ptime:fast",
        ]))
        .unwrap_err();
        assert!(matches!(err, SdpError::Invalid { line: 6, .. }), "{err}");
    }

    #[test]
    fn accepts_lf_only_s_after_t_unknown_lines_and_attributes() {
        let text = "v=0\no=- 1 1 IN IP4 198.51.100.7\nt=0 0\ns=late\nb=AS:64\n\
                    x=private\nc=IN IP4 198.51.100.7\na=group:BUNDLE 0\n\
                    m=audio 4000 RTP/AVP 0\na=rtcp-mux\na=ssrc:1 cname:x\n";
        let o = SessionDescription::parse(text).unwrap();
        assert_eq!(o.session_name, "late");
        assert_eq!(o.media[0].formats, ["0"]);
        assert_eq!(o.media[0].direction, None);
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let cases: &[(&str, usize)] = &[
            ("hello world", 1),
            ("v=1\r\n", 1),
            ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nnot a line\r\n", 4),
            ("v=0\r\no=- 1\r\n", 2),
            ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n", 2),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 nowhere\r\n",
                4,
            ),
            ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio\r\n", 4),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n",
                4,
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP\r\n",
                4,
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n\
                 m=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
                6,
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n\
                 m=audio 1 RTP/AVP 0\r\na=rtpmap:300 PCMU/8000\r\n",
                6,
            ),
            ("v=0\r\nv=0\r\n", 2),
        ];
        for (text, line) in cases {
            match SessionDescription::parse(text) {
                Err(SdpError::Invalid { line: l, .. }) => assert_eq!(l, *line, "{text:?}"),
                other => panic!("{text:?}: expected Invalid at line {line}, got {other:?}"),
            }
        }
        assert_eq!(SessionDescription::parse(""), Err(SdpError::Empty));
        assert_eq!(SessionDescription::parse("\r\n\r\n"), Err(SdpError::Empty));
        assert_eq!(
            SessionDescription::parse("v=0\r\ns=-\r\n"),
            Err(SdpError::Missing("o="))
        );
        assert_eq!(
            SessionDescription::parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n"),
            Err(SdpError::Missing("s="))
        );
    }

    #[test]
    fn error_message_names_line_and_truncates_long_input() {
        let long = format!("v=0\r\n{}\r\n", "é".repeat(500));
        let err = SessionDescription::parse(&long).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("SDP line 2: expected"), "{msg}");
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and some mutations of a
        // valid offer must parse or fail cleanly.
        let base = sdp(&[
            "v=0",
            "o=Zoiper 1700000000 1 IN IP4 198.51.100.7",
            "s=Z",
            "c=IN IP4 198.51.100.7",
            "m=audio 52000 RTP/AVP 96 0 8 97",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:97 telephone-event/8000",
            "a=ptime:20",
        ]);
        for end in 0..=base.len() {
            if let Some(prefix) = base.get(..end)
                && let Ok(o) = SessionDescription::parse(prefix)
            {
                let _ = answer(&o, &local());
            }
        }
        let mut seed = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % bytes.len();
                bytes[i] = b" =:/0123456789a\r\n"[(seed >> 8) as usize % 17];
            }
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Ok(o) = SessionDescription::parse(text)
            {
                let _ = answer(&o, &local());
                let _ = accept_answer(&o, &local());
            }
        }
    }

    #[test]
    fn answer_round_trips_through_parse() {
        let (neg, text) = answer(&softphone_offer(), &local()).unwrap();
        let back = SessionDescription::parse(&text).unwrap();
        assert_eq!(back.origin.session_id, "4242");
        assert_eq!(back.origin.session_version, "7");
        assert_eq!(back.connection, Some(local().address));
        let m = &back.media[0];
        assert_eq!(m.port, 20000);
        assert_eq!(m.formats, ["0", "97"]);
        assert_eq!(m.ptime, Some(20));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert_eq!(m.fmtp(97).unwrap().parameters, "0-16");
        // The caller, reading our answer, agrees on codec and event PT.
        let theirs = accept_answer(&back, &local()).unwrap();
        assert_eq!(theirs.codec, neg.codec);
        assert_eq!(theirs.payload_type, neg.payload_type);
        assert_eq!(theirs.telephone_event, neg.telephone_event);
        assert_eq!(theirs.remote_rtp, Some("192.0.2.10:20000".parse().unwrap()));
    }

    #[test]
    fn offer_lists_all_codecs_and_telephone_event() {
        let text = offer(&local());
        assert_eq!(
            text,
            "v=0\r\n\
             o=- 4242 7 IN IP4 192.0.2.10\r\n\
             s=voxmail\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 20000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        // Offering to ourselves yields our first preference.
        let parsed = SessionDescription::parse(&text).unwrap();
        let (neg, _) = answer(&parsed, &local()).unwrap();
        assert_eq!(
            (neg.codec, neg.telephone_event),
            (AudioCodec::Pcmu, Some(101))
        );
    }

    #[test]
    fn user_agent_cannot_inject_lines() {
        let mut l = local();
        l.user_agent = "evil\r\na=sendonly".into();
        let text = offer(&l);
        assert_eq!(text.matches("\r\n").count(), 12, "{text}");
        assert!(!text.contains("\r\na=sendonly"), "{text}");
        l.user_agent = String::new();
        assert!(offer(&l).contains("\r\ns=-\r\n"));
    }

    #[test]
    fn accept_answer_cases() {
        let ans = |lines: &[&str]| accept_answer(&parse(lines), &local());
        let head = [
            "v=0",
            "o=- 9 9 IN IP4 198.51.100.7",
            "s=-",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
        ];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            head.iter().copied().chain(extra.iter().copied()).collect()
        };

        let neg = ans(&with(&[
            "m=audio 6000 RTP/AVP 8 0 101",
            "a=rtpmap:101 telephone-event/8000",
            "a=recvonly",
        ]))
        .unwrap();
        assert_eq!(neg.codec, AudioCodec::Pcma);
        assert_eq!(neg.telephone_event, Some(101));
        assert_eq!(neg.remote_direction, Direction::RecvOnly);
        assert_eq!(neg.local_direction, Direction::SendOnly);
        assert_eq!(neg.remote_rtp, Some("198.51.100.7:6000".parse().unwrap()));

        assert_eq!(
            ans(&with(&["m=audio 0 RTP/AVP 0"])).unwrap_err(),
            NegotiationError::Rejected
        );
        assert_eq!(
            ans(&with(&["m=audio 6000 RTP/AVP 18"])).unwrap_err(),
            NegotiationError::NoCommonCodec
        );
        assert_eq!(
            ans(&with(&["m=video 6000 RTP/AVP 96"])).unwrap_err(),
            NegotiationError::NoAudio
        );
        assert_eq!(ans(&with(&[])).unwrap_err(), NegotiationError::NoAudio);
    }
}
