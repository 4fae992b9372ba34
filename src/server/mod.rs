//! The runtime: wires config, store, prompts, the media engine, the SIP
//! transport and the signalling loop together, and runs until stopped.

mod signalling;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::media::engine::MediaEngine;
use crate::media::ports::PortPool;
use crate::media::tone;
use crate::prompts::{Pcm, PromptCache};
use crate::sip::transport::SipTransport;
use crate::store::{MailboxId, Store};

/// What every call's application needs, shared.
pub struct AppContext {
    pub config: Config,
    pub store: Store,
    pub prompts: PromptCache,
    pub beep: Pcm,
}

/// Where the server ended up listening.
#[derive(Debug, Clone)]
pub struct Listening {
    pub sip: SocketAddr,
}

/// Start everything; returns when a shutdown signal arrives.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.storage.data_dir)
        .with_context(|| format!("opening the data directory {}", config.storage.data_dir.display()))?;
    let min_samples = (config.voicemail.min_message_seconds * 8000.0) as u64;
    match store.recover_spool(min_samples) {
        Ok(recovered) => {
            for m in recovered {
                tracing::warn!(mailbox = %m.mailbox, id = %m.id, seconds = m.duration_seconds, "recovered a message interrupted by a crash");
            }
        }
        Err(e) => tracing::error!(error = %e, "spool recovery failed"),
    }
    for mb in &config.mailboxes {
        let id = MailboxId::try_from(mb.number.as_str())
            .with_context(|| format!("mailbox number {}", mb.number))?;
        store.ensure_mailbox(&id)?;
    }
    let prompts_dir = if config.prompts.dir.is_dir() {
        config.prompts.dir.clone()
    } else {
        crate::prompts::default_dir()
    };
    let prompts = PromptCache::load(&prompts_dir)
        .with_context(|| format!("loading prompts from {}", prompts_dir.display()))?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4);
    let engine = MediaEngine::start(workers);
    let ports = PortPool::new(config.rtp.port_min, config.rtp.port_max);

    let (inbound_tx, inbound_rx) = mpsc::channel(8192);
    let transport = SipTransport::bind(config.sip.listen, config.sip.public_address, inbound_tx)
        .await
        .with_context(|| format!("binding SIP on {}", config.sip.listen))?;
    let listening = transport.local_addr();
    // One line on stdout that scripts and tests wait for.
    println!(
        "listening sip={} transports=udp,tcp rtp={}-{} data={}",
        listening,
        config.rtp.port_min,
        config.rtp.port_max,
        config.storage.data_dir.display()
    );
    tracing::info!(sip = %listening, prompts = %prompts_dir.display(), media_workers = workers, "voxmail started");

    let ctx = Arc::new(AppContext {
        config,
        store,
        prompts,
        beep: Pcm::from(tone::beep()),
    });
    let signalling = signalling::Signalling::new(ctx, transport, engine, ports);
    tokio::select! {
        r = signalling.run(inbound_rx) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
