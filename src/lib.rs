//! voxmail: an embedded SIP/RTP media server with a voicemail engine.
//!
//! Layers (see ARCHITECTURE.md): `sip` (signalling: a sans-IO UAS core plus
//! a thin tokio transport), `sdp` (offer/answer), `media` (RTP, jitter
//! buffer, codecs, DTMF, tones, the pacing engine), `call` (the narrow
//! interface apps use), `apps` (voicemail deposit), `store` (everything
//! under the data directory), `prompts`, `config`, and `server`, which wires
//! them together.

// The OpenAPI document is one large `serde_json::json!`, whose expansion
// recurses once per token.
#![recursion_limit = "256"]

pub mod api;
pub mod apps;
pub mod audio;
pub mod call;
pub mod config;
pub mod dialplan;
pub mod io_pool;
pub mod media;
pub mod notify;
pub mod prompts;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod store;
pub mod thread_nice;
