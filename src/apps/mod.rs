//! Applications: async code over [`crate::call::CallApi`] that decides what a
//! caller hears. A call is routed by the dial plan; its nodes reach the apps
//! here (deposit, retrieval, transfer) through [`ServerApps`].

pub mod deposit;
mod keys;
mod message_feed;
pub mod pin;
pub mod record_message;
pub mod retrieval;

use std::sync::Arc;

use crate::call::{Call, CallApi};
use crate::dialplan::{
    self, AppResult, Apps, DialPlan, MainTarget, RecordTarget, RouteMatch, RunOptions,
    TransferFailed, TransferTarget, VmResult, VoicemailTarget,
};
use crate::prompts::Pcm;
use crate::server::AppContext;
use crate::store::StoreError;

/// What an incoming call was routed to.
#[derive(Debug, Clone)]
pub struct Route {
    /// The plan the call started on: a reload does not change it mid-call.
    pub plan: Arc<DialPlan>,
    pub entry: RouteMatch,
    /// Who called, for `*98` (the caller's own box).
    pub caller_box: Option<String>,
    /// The caller is that box's owner: its phone registered with digest
    /// auth, or a call from a `[login] trusted_networks` network.
    pub trusted: bool,
}

/// Run the routed dial plan to its end.
pub async fn run(route: Route, mut call: Call, ctx: Arc<AppContext>) {
    let language = ctx.config.prompts.default_language.clone();
    let mut apps = ServerApps {
        ctx: ctx.clone(),
        caller_box: route.caller_box.clone(),
        trusted: route.trusted,
    };
    let options = RunOptions {
        language,
        ..RunOptions::default()
    };
    let outcome = dialplan::run(&route.plan, route.entry, &mut call, &mut apps, &options).await;
    tracing::info!(end = ?outcome.end, trail = ?outcome.trail, "dial plan finished");
}

/// The dial plan's view of the server's applications.
pub struct ServerApps {
    ctx: Arc<AppContext>,
    caller_box: Option<String>,
    trusted: bool,
}

impl Apps for ServerApps {
    async fn voicemail<C: CallApi>(&mut self, call: &mut C, target: &VoicemailTarget) -> VmResult {
        let ctx = &self.ctx;
        let (metrics, calls) = (ctx.metrics.clone(), ctx.calls.clone());
        // The boxes as they are now: one created through the API a moment
        // ago takes messages.
        let config = ctx.mailboxes.config();
        let dctx = deposit::DepositContext::new(
            &config,
            ctx.store.clone(),
            ctx.prompts.clone(),
            ctx.beep.clone(),
            ctx.security.clone(),
        )
        .with_events(ctx.events.clone())
        .with_on_saved(move |meta| {
            metrics.message_recorded();
            // Listed under its call for GET /api/v1/calls/{call_id}.
            calls.message_stored(meta);
        });
        deposit::run(call, &dctx, target).await
    }

    async fn voicemail_main<C: CallApi>(&mut self, call: &mut C, target: &MainTarget) -> AppResult {
        let access = match &target.mailbox {
            Some(mailbox) => retrieval::Access::Any {
                mailbox: mailbox.clone(),
            },
            None => {
                // The PIN is skipped only for a trusted caller (the box's
                // registered phone, or a trusted network naming the box by
                // caller id), and only if the box says so (ask_password = false).
                let skip = self.trusted
                    && self
                        .caller_box
                        .as_deref()
                        .and_then(|b| self.ctx.mailboxes.get(b))
                        .is_some_and(|m| !m.ask_password);
                retrieval::Access::Own {
                    mailbox: self.caller_box.clone(),
                    trusted: skip,
                }
            }
        };
        let ctx = &self.ctx;
        let config = ctx.mailboxes.config();
        let rctx = retrieval::RetrievalContext::new(
            &config,
            ctx.store.clone(),
            ctx.prompts.clone(),
            ctx.beep.clone(),
            ctx.security.clone(),
        )
        .with_language(target.language.clone())
        .with_events(ctx.events.clone());
        let outcome = retrieval::run(call, &rctx, access).await;
        tracing::info!(?outcome, "voicemail menu finished");
        if call.is_hung_up() {
            AppResult::HungUp
        } else {
            AppResult::Done
        }
    }

    async fn record_message<C: CallApi>(
        &mut self,
        call: &mut C,
        target: &RecordTarget,
    ) -> AppResult {
        let ctx = &self.ctx;
        let rctx = record_message::RecordMessageContext::new(
            &ctx.config,
            ctx.store.clone(),
            ctx.prompts.clone(),
            ctx.beep.clone(),
        );
        record_message::run(call, &rctx, target).await
    }

    async fn transfer<C: CallApi>(
        &mut self,
        call: &mut C,
        target: &TransferTarget,
    ) -> Result<(), TransferFailed> {
        // After answer a 302 is no longer possible: both modes REFER here.
        let uri = if target.target.contains(':') {
            target.target.clone()
        } else {
            format!("sip:{}", target.target)
        };
        call.transfer(&uri)
            .await
            .map_err(|e| TransferFailed(e.to_string()))
    }

    fn prompt(&self, lang: &str, name: &str) -> Option<Pcm> {
        self.ctx.prompts.get(lang, name)
    }

    fn audio_message(&self, name: &str) -> Option<Pcm> {
        // Small files, read when a node plays them; most names are not
        // audio messages and cost one stat.
        if !self.ctx.store.audio_message_exists(name) {
            return None;
        }
        match self.ctx.store.load_audio_message(name) {
            Ok(Some(pcm)) => Some(Pcm::from(pcm)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(name, error = %e, "audio message unreadable");
                None
            }
        }
    }
}

/// Runs store work (files, fsyncs) on the file I/O threads, off the async
/// workers; see [`crate::io_pool`] for why not `spawn_blocking`.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    crate::io_pool::run(f)
        .await
        .unwrap_or_else(|e| Err(blocking_failed(e)))
}

/// Runs work that hashes a PIN: it waits tens of milliseconds for the
/// Argon2 threads, so it takes a thread of the PIN-check pool rather than
/// one of the file I/O threads that deposits wait for.
pub(crate) async fn pin_work<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    crate::io_pool::run_pin_check(f)
        .await
        .unwrap_or_else(|e| Err(blocking_failed(e)))
}

fn blocking_failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: Default::default(),
        source: std::io::Error::other(format!("blocking task failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::api::metrics::Metrics;
    use crate::call::fake::{FakeCall, Input};
    use crate::config::Config;
    use crate::dialplan::DialPlanHandle;
    use crate::dialplan::check::{Source, check_sources};
    use crate::notify::EventBus;
    use crate::prompts::PromptCache;
    use crate::server::calls::CallRegistry;
    use crate::store::{MailboxDirectory, SecurityStore, Store};

    const CONFIG: &str = r#"
[[mailbox]]
number = "1001"
pin = "1234"

[[mailbox]]
number = "1002"
pin = "5678"
language = "fr"
"#;

    /// `*99<box>` behind a switch to Spanish.
    const PLAN: &str = r#"
[[route]]
match = "*99{box}"
node = "spanish"

[node.spanish]
kind = "language"
language = "es"
next = "any-mailbox"

[node.any-mailbox]
kind = "voicemail_main"
mailbox = "{box}"
"#;

    /// `name` in `lang`, as a call without the catalogue logs it.
    fn heard(prompts: &PromptCache, lang: &str, name: &str) -> String {
        format!("audio:{}", prompts.get(lang, name).unwrap().len())
    }

    /// Dials `dialed` through [`PLAN`] with the server's apps.
    async fn dial(dialed: &str, script: Vec<Input>) -> (Vec<String>, PromptCache) {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(Config::parse(CONFIG, "test.toml").unwrap());
        let store = Store::open(dir.path()).unwrap();
        let prompts =
            PromptCache::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap();
        let security = SecurityStore::open(dir.path())
            .unwrap()
            .with_hash_params(argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).unwrap());
        let ctx = Arc::new(AppContext {
            mailboxes: Arc::new(MailboxDirectory::load(config.clone(), store.clone()).unwrap()),
            config,
            store,
            prompts: prompts.clone(),
            beep: Pcm::from(crate::media::tone::beep()),
            security,
            events: EventBus::new(),
            metrics: Arc::new(Metrics::new()),
            dialplan: Arc::new(DialPlanHandle::default()),
            calls: Arc::new(CallRegistry::default()),
        });
        let sources = [Source {
            file: "test.toml".into(),
            text: PLAN.into(),
        }];
        let plan = check_sources(&sources, &|l, n| prompts.contains(l, n), &|_| false).unwrap();
        let entry = plan.route(dialed).unwrap();
        let mut apps = ServerApps {
            ctx,
            caller_box: None,
            trusted: false,
        };
        let mut call = FakeCall::new("5555", dialed, script);
        dialplan::run(&plan, entry, &mut call, &mut apps, &RunOptions::default()).await;
        (call.played(), prompts)
    }

    #[tokio::test]
    async fn voicemail_main_speaks_the_plan_language_then_the_box_language() {
        // 1002 is French: Spanish (the plan's) until its PIN, then French.
        let script = vec![Input::Digits("5678#".into()), Input::Silence];
        let (played, p) = dial("*991002", script.clone()).await;
        assert_ne!(
            heard(&p, "es", "vm-password"),
            heard(&p, "en", "vm-password")
        );
        assert_eq!(played[0], heard(&p, "es", "vm-password"));
        assert!(
            played.contains(&heard(&p, "fr", "vm-no-messages")),
            "{played:?}"
        );

        // 1001 sets no language: Spanish all along.
        let script = vec![Input::Digits("1234#".into()), Input::Silence];
        let (played, p) = dial("*991001", script).await;
        assert_eq!(played[0], heard(&p, "es", "vm-password"));
        assert!(
            played.contains(&heard(&p, "es", "vm-no-messages")),
            "{played:?}"
        );
    }
}
