//! tokio transports (in progress)
