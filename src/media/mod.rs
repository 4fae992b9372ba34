//! The media path: sans-IO cores (RTP header, jitter buffer, G.711, DTMF,
//! tones) and the engine that paces many sessions from one clock.

pub mod dtmf;
pub mod engine;
pub mod feed;
pub mod g711;
pub mod inband;
pub mod jitter;
pub mod ports;
pub mod rtp;
pub mod session;
pub mod tone;
pub mod udp;
