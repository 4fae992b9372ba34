//! SIP signalling: the one module that knows the SIP stack.
//!
//! Messages are parsed by rsipstack's maintained `sip` codec (an
//! rsip-compatible fork); transactions and dialogs for the UAS role live in
//! our sans-IO [`endpoint::Endpoint`]; [`transport`] moves bytes over UDP and
//! TCP. Everything above this module sees only [`SipEvent`]s, [`CallHandle`]s
//! and our own [`SipRequest`].

pub mod endpoint;
pub mod frame;
pub mod message;
pub mod mwi;
pub mod registrar;
pub mod timers;
pub mod transport;

pub use endpoint::{
    CallHandle, EndReason, Endpoint, EndpointConfig, Peer, RequestId, SipEvent, Transmit,
    TransportKind,
};
pub use message::SipRequest;
