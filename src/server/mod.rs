//! The runtime: wires config, store, prompts, the media engine, the SIP
//! transport and the signalling loop together, and runs until stopped.

pub mod calls;
pub mod presence;
pub mod priority;
mod signalling;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::api::{self, ApiState, Metrics};
use crate::config::Config;
use crate::dialplan::{self, DialPlanHandle};
use crate::media::engine::MediaEngine;
use crate::media::ports::PortPool;
use crate::media::tone;
use crate::notify::{EventBus, Notifier};
use crate::prompts::{Pcm, PromptCache};
use crate::sip::transport::SipTransport;
use crate::store::security::LockoutPolicy;
use crate::store::{MailboxDirectory, MailboxId, SecurityStore, Store};

/// What every call's application needs, shared.
pub struct AppContext {
    /// config.toml as loaded; per-box settings come from `mailboxes`.
    pub config: Arc<Config>,
    /// The boxes in force (config.toml overlaid by the store's files).
    pub mailboxes: Arc<MailboxDirectory>,
    pub store: Store,
    pub prompts: PromptCache,
    pub beep: Pcm,
    pub security: SecurityStore,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub dialplan: Arc<DialPlanHandle>,
    /// Calls seen, for the per-call statistics API.
    pub calls: Arc<calls::CallRegistry>,
}

/// Where the dial plans are: `dialplans/` in the working directory, else the
/// one shipped beside the sources.
pub fn dialplan_dir() -> std::path::PathBuf {
    let local = std::path::PathBuf::from("dialplans");
    if local.is_dir() {
        local
    } else {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans"))
    }
}

/// Where the prompts are, as configured or shipped.
pub fn prompts_dir(config: &Config) -> std::path::PathBuf {
    if config.prompts.dir.is_dir() {
        config.prompts.dir.clone()
    } else {
        crate::prompts::default_dir()
    }
}

/// The runtime the server runs on: a worker per core and tokio's pool for
/// blocking work outside calls (API, PIN checks; calls' store work has
/// [`crate::io_pool`]). With real-time media on, the signalling thread and
/// the workers (SIP, applications) run at nice [`priority::CONTROL_NICE`]
/// and the blocking pool at the default; see [`priority`].
pub fn runtime(raise: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if raise {
        priority::raise_control_thread();
        builder
            .on_thread_start(priority::reset_thread)
            .on_thread_park(priority::raise_worker_once);
    }
    builder.build()
}

/// Start everything; returns when a shutdown signal arrives.
pub async fn run(config: Config, http_listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let store = Store::open(&config.storage.data_dir).with_context(|| {
        format!(
            "opening the data directory {}",
            config.storage.data_dir.display()
        )
    })?;
    let min_samples = (config.voicemail.min_message_seconds * 8000.0) as u64;
    match store.recover_spool(min_samples) {
        Ok(recovered) => {
            for m in recovered {
                tracing::warn!(mailbox = %m.mailbox, id = %m.id, seconds = m.duration_seconds, "recovered a message interrupted by a crash");
            }
        }
        Err(e) => tracing::error!(error = %e, "spool recovery failed"),
    }
    let config = Arc::new(config);
    // A bad mailbox.toml stops the start, like a bad config.toml: each
    // error names its file and line.
    let mailboxes = Arc::new(
        MailboxDirectory::load(config.clone(), store.clone())
            .map_err(|e| anyhow::anyhow!("invalid mailbox settings:\n{e}"))?,
    );
    // New messages are kept in each box's `format` as of now (weak: the
    // directory holds the store).
    let formats = Arc::downgrade(&mailboxes);
    store.set_storage_formats(Arc::new(move |id: &MailboxId| {
        formats
            .upgrade()
            .and_then(|d| d.get(id.as_str()))
            .map(|m| m.storage_format)
            .unwrap_or_default()
    }));
    for mb in &mailboxes.config().mailboxes {
        let id = MailboxId::try_from(mb.number.as_str())
            .with_context(|| format!("mailbox number {}", mb.number))?;
        store.ensure_mailbox(&id)?;
    }
    let prompts_dir = prompts_dir(&config);
    let prompts = PromptCache::load(&prompts_dir)
        .with_context(|| format!("loading prompts from {}", prompts_dir.display()))?;
    let plan_dir = dialplan_dir();
    let audio_store = store.clone();
    let audio_exists: dialplan::AudioMessageExists =
        Arc::new(move |name: &str| audio_store.audio_message_exists(name));
    let plan = dialplan::check(&plan_dir, &prompts, &*audio_exists).map_err(|errors| {
        anyhow::anyhow!("invalid dial plan:\n{}", dialplan::format_errors(&errors))
    })?;
    let plan = Arc::new(DialPlanHandle::new(plan));
    let security = SecurityStore::for_store(&store)
        .context("opening the PIN store")?
        .with_policy(LockoutPolicy {
            max_failures: config.login.lockout_failures,
            lockout: jiff::SignedDuration::from_mins(i64::from(config.login.lockout_minutes)),
        });
    let events = EventBus::new();
    let shared = mailboxes.clone();
    events.set_shared_boxes(Arc::new(move |b: &str| {
        shared.config().mailbox(b).is_some_and(|m| m.shared)
    }));
    let metrics = Arc::new(Metrics::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    let engine = MediaEngine::start(workers, config.rtp.realtime_priority).with_media_timeout(
        std::time::Duration::from_secs(u64::from(config.rtp.timeout_seconds)),
    );
    let ports = PortPool::new(config.rtp.port_min, config.rtp.port_max);
    let call_registry = Arc::new(calls::CallRegistry::default());

    let api_state = ApiState::new(
        config.clone(),
        store.clone(),
        events.clone(),
        metrics.clone(),
    )
    .context("starting the HTTP API")?
    .with_security(security.clone())
    .with_calls(call_registry.clone())
    .with_mailboxes(mailboxes.clone());
    let http_addr = http_listen.unwrap_or(config.http.listen);
    let http = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("binding HTTP on {http_addr}"))?;
    let http_addr = http.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = api::serve(http, api_state).await {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    });
    let _notifier = Notifier::new(config.clone(), store.clone(), events.clone())
        .context("starting notifications")?
        .with_mailboxes(mailboxes.clone())
        .spawn();
    // Dial plans reload on change and on SIGHUP; calls keep the plan they started with.
    let _watcher = match dialplan::watch(
        &plan_dir,
        plan.clone(),
        prompts.clone(),
        audio_exists.clone(),
        None,
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "not watching the dial plans for changes");
            None
        }
    };
    spawn_sighup_reload(
        plan.clone(),
        plan_dir.clone(),
        prompts.clone(),
        audio_exists.clone(),
    );

    let (inbound_tx, inbound_rx) = mpsc::channel(8192);
    let transport = SipTransport::bind(config.sip.listen, config.sip.public_address, inbound_tx)
        .await
        .with_context(|| format!("binding SIP on {}", config.sip.listen))?;
    let listening = transport.local_addr();
    // One line on stdout that scripts and tests wait for.
    println!(
        "listening sip={} transports=udp,tcp http={} rtp={}-{} data={}",
        listening,
        http_addr,
        config.rtp.port_min,
        config.rtp.port_max,
        config.storage.data_dir.display()
    );
    tracing::info!(sip = %listening, prompts = %prompts_dir.display(), media_workers = workers, "voxmail started");

    let ctx = Arc::new(AppContext {
        config,
        mailboxes,
        store,
        prompts,
        beep: Pcm::from(tone::beep()),
        security,
        events,
        metrics,
        dialplan: plan,
        calls: call_registry,
    });
    spawn_rtp_metrics(engine.clone(), ctx.metrics.clone());
    spawn_call_sweep(ctx.calls.clone(), ctx.metrics.clone());
    let signalling = signalling::Signalling::new(ctx, transport, engine, ports);
    tokio::select! {
        r = signalling.run(inbound_rx) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

/// Once a second, the call registry refreshes live statistics, counts new
/// DTMF digits into `/metrics` and forgets calls ended long ago.
fn spawn_call_sweep(registry: Arc<calls::CallRegistry>, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            registry.sweep(std::time::Instant::now(), &metrics);
        }
    });
}

/// Once a second, the media workers' packet counters go to `/metrics`.
fn spawn_rtp_metrics(engine: MediaEngine, metrics: Arc<Metrics>) {
    use std::sync::atomic::Ordering::Relaxed;
    tokio::spawn(async move {
        let (mut seen_in, mut seen_out, mut seen_lost) = (0u64, 0u64, 0u64);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let stats = engine.stats();
            let (pin, pout, lost) = (
                stats.packets_in.load(Relaxed),
                stats.packets_out.load(Relaxed),
                stats.lost.load(Relaxed),
            );
            metrics.rtp_packets(api::RtpDirection::In, pin.saturating_sub(seen_in));
            metrics.rtp_packets(api::RtpDirection::Out, pout.saturating_sub(seen_out));
            metrics.rtp_lost(lost.saturating_sub(seen_lost));
            metrics.set_media_late_ticks(stats.late_ticks.load(Relaxed));
            metrics.set_playback_underruns(stats.underruns.load(Relaxed));
            (seen_in, seen_out, seen_lost) = (pin, pout, lost);
        }
    });
}

/// SIGHUP re-reads the dial plans; a plan that fails its check is refused
/// and the running one stays.
fn spawn_sighup_reload(
    handle: Arc<DialPlanHandle>,
    dir: std::path::PathBuf,
    prompts: PromptCache,
    audio_exists: dialplan::AudioMessageExists,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let (handle, dir, prompts, exists) = (
                handle.clone(),
                dir.clone(),
                prompts.clone(),
                audio_exists.clone(),
            );
            let result =
                tokio::task::spawn_blocking(move || handle.reload(&dir, &prompts, &*exists)).await;
            match result {
                Ok(Ok(())) => tracing::info!("dial plans reloaded (SIGHUP)"),
                Ok(Err(errors)) => tracing::error!(
                    "dial plan reload refused, keeping the running plan:\n{}",
                    dialplan::format_errors(&errors)
                ),
                Err(e) => tracing::error!(error = %e, "dial plan reload failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
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
