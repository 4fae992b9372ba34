//! Dial plans: what each call hears, described in `dialplans/*.toml`.
//!
//! A plan is routes (a dialed number, prefix or pattern → a node) and named
//! nodes (`play`, `menu`, `voicemail`, `voicemail_main`, `record_message`,
//! `schedule`, `language`, `goto`, `transfer`, `hangup`). [`check`] reads
//! and validates a directory of them as a whole; [`interpret::run`] walks a
//! call through the nodes; [`DialPlanHandle`] holds the running plan and
//! swaps it atomically on reload, so calls in progress finish on the plan
//! they started with.
//!
//! ```toml
//! [[route]]
//! match = "*99{box}"          # exact ("+3225550100"), or a pattern
//! node = "login"              # prefix = "+32" for prefixes
//!
//! [node.login]
//! kind = "voicemail_main"
//! mailbox = "{box}"           # captures and {dialed} {caller} {diverted}
//! ```

pub use crate::audio;
pub mod check;
pub mod divert;
pub mod interpret;
pub mod model;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::prompts::PromptCache;

pub use audio::{AudioError, load_audio};
pub use check::{DialPlanError, ErrorKind, check, check_with, format_errors};
pub use divert::{Diversion, DivertReason, diverted_target};
pub use interpret::{
    AppResult, Apps, Clock, End, MainTarget, Outcome, RecordTarget, RunOptions, TransferFailed,
    TransferTarget, VmResult, VoicemailTarget, run,
};
pub use model::{DialPlan, Node, NodeKind, Route, RouteMatch, TransferMode};

/// Called with the result of each reload the watcher makes.
pub type OnReload = Box<dyn Fn(&Result<(), Vec<DialPlanError>>) + Send>;

/// Whether an audio message of this name exists now (it may be recorded
/// while the server runs, so it is asked at each check).
pub type AudioMessageExists = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The running plan, replaced whole on reload.
#[derive(Debug, Default)]
pub struct DialPlanHandle {
    plan: RwLock<Arc<DialPlan>>,
}

impl DialPlanHandle {
    pub fn new(plan: DialPlan) -> DialPlanHandle {
        DialPlanHandle {
            plan: RwLock::new(Arc::new(plan)),
        }
    }

    /// The plan now; a call keeps this `Arc` until it ends.
    pub fn current(&self) -> Arc<DialPlan> {
        self.plan.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a plan (already checked).
    pub fn replace(&self, plan: DialPlan) {
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plan);
    }

    /// Checks `dir` again and installs the result; on errors the running
    /// plan stays and the errors come back.
    pub fn reload(
        &self,
        dir: &Path,
        prompts: &PromptCache,
        audio_messages: &dyn Fn(&str) -> bool,
    ) -> Result<(), Vec<DialPlanError>> {
        let plan = check(dir, prompts, audio_messages)?;
        self.replace(plan);
        Ok(())
    }
}

/// Stops watching when dropped.
pub struct DialPlanWatcher {
    _watcher: ::notify::RecommendedWatcher,
}

/// How long file events must stay quiet before a reload: editors write a
/// file in several steps.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);

/// Reloads the plan when a `*.toml` file in `dir` changes (debounced by
/// [`RELOAD_DEBOUNCE`]), logging the outcome; a plan that fails the check
/// is refused and the running one stays. `on_reload` (if any) sees each
/// result, e.g. for metrics or tests.
pub fn watch(
    dir: &Path,
    handle: Arc<DialPlanHandle>,
    prompts: PromptCache,
    audio_messages: AudioMessageExists,
    on_reload: Option<OnReload>,
) -> ::notify::Result<DialPlanWatcher> {
    use ::notify::Watcher as _;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher =
        ::notify::recommended_watcher(move |res: ::notify::Result<::notify::Event>| {
            let relevant = match &res {
                Ok(ev) => {
                    !ev.kind.is_access()
                        && ev.paths.iter().any(|p| {
                            p.extension().is_some_and(|e| e == "toml")
                                && p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| !n.starts_with('.'))
                        })
                }
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        })?;
    watcher.watch(dir, ::notify::RecursiveMode::NonRecursive)?;
    let dir: PathBuf = dir.to_path_buf();
    std::thread::Builder::new()
        .name("dialplan-watch".into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while rx.recv().is_ok() {
                while rx.recv_timeout(RELOAD_DEBOUNCE).is_ok() {}
                let result = handle.reload(&dir, &prompts, &*audio_messages);
                match &result {
                    Ok(()) => {
                        let plan = handle.current();
                        tracing::info!(
                            dir = %dir.display(),
                            routes = plan.routes.len(),
                            nodes = plan.nodes.len(),
                            "dial plan reloaded"
                        );
                    }
                    Err(errors) => {
                        for e in errors {
                            tracing::warn!("{e}");
                        }
                        tracing::warn!(
                            dir = %dir.display(),
                            errors = errors.len(),
                            "dial plan reload refused; the running plan stays"
                        );
                    }
                }
                if let Some(f) = &on_reload {
                    f(&result);
                }
            }
        })
        .map_err(::notify::Error::io)?;
    Ok(DialPlanWatcher { _watcher: watcher })
}

#[cfg(test)]
mod tests;
