//! Telling the outside world about messages: the [`EventBus`] that the
//! server publishes on, and the [`Notifier`] that turns its events into
//! webhooks and emails in the background (never on a call's path).

pub mod email;
pub mod events;
pub mod webhook;

use std::sync::Arc;

use tokio::sync::{Semaphore, broadcast};

pub use events::{Event, EventBus, EventKind};
pub use webhook::RetryPolicy;

use crate::config::{Config, MailboxConfig};
use crate::store::{Folder, MailboxDirectory, MailboxId, MessageId, MessageMeta, Store};

/// Deliveries (webhooks and emails) in flight at once; the rest wait.
const MAX_IN_FLIGHT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("[smtp]: {0}")]
    Smtp(#[from] email::EmailError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Webhooks and email for every event on the bus.
pub struct Notifier {
    config: Arc<Config>,
    /// The boxes in force (API-created ones included); config's otherwise.
    mailboxes: Option<Arc<MailboxDirectory>>,
    store: Store,
    events: EventBus,
    retry: RetryPolicy,
    http: reqwest::Client,
    mailer: Option<email::Mailer>,
}

impl Notifier {
    /// Prepares the HTTP client and, when `[smtp]` is set, the SMTP
    /// transport. Nothing is sent until [`Notifier::spawn`].
    pub fn new(
        config: Arc<Config>,
        store: Store,
        events: EventBus,
    ) -> Result<Notifier, NotifyError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("voxmail/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mailer = config.smtp.as_ref().map(email::mailer).transpose()?;
        for mb in &config.mailboxes {
            if mb.email.is_some() && config.smtp.is_none() {
                tracing::warn!(mailbox = %mb.number, "mailbox has an email address but there is no [smtp] section; no email will be sent");
            }
        }
        Ok(Notifier {
            config,
            mailboxes: None,
            store,
            events,
            retry: RetryPolicy::default(),
            http,
            mailer,
        })
    }

    /// Takes each box's email settings from `mailboxes` as they are when
    /// a message arrives, so boxes created or changed through the API count.
    pub fn with_mailboxes(mut self, mailboxes: Arc<MailboxDirectory>) -> Notifier {
        self.mailboxes = Some(mailboxes);
        self
    }

    /// Replaces the retry policy (webhooks and email).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Notifier {
        self.retry = retry;
        self
    }

    /// Subscribes to the bus now (so every event published after this call
    /// is handled) and handles events in a background task until aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let rx = self.events.subscribe();
        tokio::spawn(Arc::new(self).run(rx))
    }

    async fn run(self: Arc<Self>, mut rx: broadcast::Receiver<Event>) {
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            match rx.recv().await {
                Ok(event) => self.handle(event, &permits),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "notifier fell behind; events not notified");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn handle(self: &Arc<Self>, event: Event, permits: &Arc<Semaphore>) {
        if !self.config.webhooks.is_empty() {
            let body = match serde_json::to_vec(&event) {
                Ok(b) => bytes::Bytes::from(b),
                Err(e) => {
                    tracing::error!(error = %e, "event not serializable");
                    return;
                }
            };
            for (i, _) in self.config.webhooks.iter().enumerate() {
                let this = self.clone();
                let body = body.clone();
                let permits = permits.clone();
                let name = event.event.name();
                tokio::spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    let hook = &this.config.webhooks[i];
                    match webhook::deliver(&this.http, hook, name, body, &this.retry).await {
                        Ok(tries) => {
                            tracing::debug!(url = %hook.url, event = name, tries, "webhook delivered")
                        }
                        Err(e) => tracing::warn!(event = name, error = %e, "webhook not delivered"),
                    }
                });
            }
        }
        if event.event.is_created()
            && self.mailer.is_some()
            && let Some(mailbox) = self
                .mailboxes
                .as_ref()
                .map_or_else(|| self.config.clone(), |d| d.config())
                .mailbox(&event.mailbox)
                .cloned()
            && mailbox.email.is_some()
        {
            let this = self.clone();
            let permits = permits.clone();
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                this.email(&mailbox, &event.message).await;
            });
        }
    }

    /// Sends the email for a new message, retrying per the policy, then
    /// deletes the message if the box says so.
    async fn email(&self, mailbox: &MailboxConfig, meta: &MessageMeta) {
        let (Some(mailer), Some(smtp), Some(to)) =
            (&self.mailer, &self.config.smtp, &mailbox.email)
        else {
            return;
        };
        let wav = if mailbox.attach_audio {
            match self.read_audio(mailbox, meta).await {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!(mailbox = %meta.mailbox, id = %meta.id, error = %e, "message audio unreadable; emailing without it");
                    None
                }
            }
        } else {
            None
        };
        let message = match email::build_message(smtp, mailbox, to, meta, wav) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(mailbox = %meta.mailbox, id = %meta.id, error = %e, "email not built");
                return;
            }
        };
        let attempts = self.retry.attempts.max(1);
        let mut sent = false;
        for attempt in 0..attempts {
            tokio::time::sleep(self.retry.delay_before(attempt)).await;
            match email::send(mailer, message.clone()).await {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(mailbox = %meta.mailbox, id = %meta.id, attempt = attempt + 1, error = %e, "email not sent")
                }
            }
        }
        if !sent {
            return;
        }
        tracing::info!(mailbox = %meta.mailbox, id = %meta.id, to = %to, "voicemail emailed");
        if mailbox.delete_after_email {
            self.delete_after_email(meta).await;
        }
    }

    /// The message's audio in the box's `attach_format` (email.rs).
    async fn read_audio(
        &self,
        mailbox: &MailboxConfig,
        meta: &MessageMeta,
    ) -> Result<email::AudioAttachment, String> {
        let store = self.store.clone();
        let meta = meta.clone();
        let format = mailbox.attach_format;
        crate::io_pool::run(move || {
            let mailbox = MailboxId::try_from(meta.mailbox.as_str()).map_err(|e| e.to_string())?;
            let id = MessageId::try_from(meta.id.as_str()).map_err(|e| e.to_string())?;
            let (folder, _) =
                find_audio(&store, &mailbox, meta.folder, &id).ok_or("message gone")?;
            email::read_attachment(&store, &mailbox, folder, &id, format)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn delete_after_email(&self, meta: &MessageMeta) {
        let store = self.store.clone();
        let m = meta.clone();
        let deleted = crate::io_pool::run(move || -> Result<Option<MessageMeta>, String> {
            let mailbox = MailboxId::try_from(m.mailbox.as_str()).map_err(|e| e.to_string())?;
            let id = MessageId::try_from(m.id.as_str()).map_err(|e| e.to_string())?;
            // It may have been moved (heard) meanwhile: delete it wherever.
            let Some((folder, _)) = find_audio(&store, &mailbox, m.folder, &id) else {
                return Ok(None);
            };
            let current = store
                .list_messages(&mailbox, folder)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|x| x.id == m.id);
            store
                .delete_message(&mailbox, folder, &id)
                .map_err(|e| e.to_string())?;
            Ok(Some(current.unwrap_or(m)))
        })
        .await;
        match deleted {
            Ok(Ok(Some(gone))) => {
                tracing::info!(mailbox = %gone.mailbox, id = %gone.id, "deleted after email");
                self.events.message_deleted(&gone);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(id = %meta.id, error = %e, "not deleted after email"),
            Err(e) => tracing::warn!(id = %meta.id, error = %e, "not deleted after email"),
        }
    }
}

/// The folder and audio path of a message, looking in `hint` first.
fn find_audio(
    store: &Store,
    mailbox: &MailboxId,
    hint: Folder,
    id: &MessageId,
) -> Option<(Folder, std::path::PathBuf)> {
    std::iter::once(hint)
        .chain(Folder::ALL.into_iter().filter(|f| *f != hint))
        .find_map(|f| {
            store
                .message_audio_path(mailbox, f, id)
                .ok()
                .map(|p| (f, p))
        })
}
