//! Voicemail deposit: greeting, beep, record, save.
//!
//! Like Asterisk's `VoiceMail()`: the box's recorded unavailable greeting if
//! there is one, else a generated "the person at extension … is not
//! available" in the box's language; `#` during the greeting skips to the
//! beep; the recording ends on `#`, hang-up, the maximum length or a long
//! silence; messages shorter than the minimum are discarded.

use std::sync::Arc;

use crate::call::CallApi;
use crate::media::session::{RecordOptions, StopReason};
use crate::prompts::Pcm;
use crate::server::AppContext;
use crate::store::{GreetingKind, MailboxId, NewMessage};

pub async fn run<C: CallApi>(call: &mut C, ctx: Arc<AppContext>, mailbox: &str) {
    let Some(mb) = ctx.config.mailbox(mailbox) else {
        tracing::warn!(mailbox, "mailbox disappeared");
        return;
    };
    let lang = ctx.config.mailbox_language(mb).to_string();
    let Ok(box_id) = MailboxId::try_from(mailbox) else {
        tracing::error!(mailbox, "invalid mailbox id");
        return;
    };
    let greeting = greeting(&ctx, &box_id, &lang);
    if call.play_interruptible(greeting, "#").await.is_err() {
        return;
    }
    if call.play(vec![ctx.beep.clone()]).await.is_err() {
        return;
    }
    let new = NewMessage {
        mailbox: box_id.clone(),
        caller_number: call.info().caller_number.clone(),
        caller_name: call.info().caller_name.clone(),
        called_number: call.info().called_number.clone(),
        call_id: call.info().call_id.clone(),
        codec: call.info().codec.clone(),
        started_at: jiff::Timestamp::now(),
    };
    let store = ctx.store.clone();
    let writer = match tokio::task::spawn_blocking(move || store.begin_message(new)).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot start a recording");
            call.hangup();
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "recording task failed");
            call.hangup();
            return;
        }
    };
    let vm = &ctx.config.voicemail;
    let options = RecordOptions {
        max_samples: vm.max_message_seconds as u64 * 8000,
        silence_timeout_samples: vm.silence_timeout_seconds as u64 * 8000,
        silence_threshold: vm.silence_threshold,
        stop_digits: "#".into(),
    };
    let Some(recorded) = call.record(writer, options).await else {
        return;
    };
    let min_samples = (vm.min_message_seconds * 8000.0) as u64;
    let reason = recorded.reason;
    let writer = recorded.writer;
    match tokio::task::spawn_blocking(move || writer.finish(min_samples)).await {
        Ok(Ok(Some(meta))) => tracing::info!(
            mailbox = %meta.mailbox, id = %meta.id, seconds = meta.duration_seconds, ?reason, "message saved"
        ),
        Ok(Ok(None)) => tracing::info!(?reason, "message too short, discarded"),
        Ok(Err(e)) => tracing::error!(error = %e, "saving the message failed"),
        Err(e) => tracing::error!(error = %e, "saving task failed"),
    }
    if call.is_hung_up() {
        return;
    }
    if reason != StopReason::WriteError
        && let Some(bye) = ctx.prompts.get(&lang, "vm-goodbye")
    {
        let _ = call.play(vec![bye]).await;
    }
    call.hangup();
}

/// The box's recorded unavailable greeting, else the generated one.
fn greeting(ctx: &AppContext, mailbox: &MailboxId, lang: &str) -> Vec<Pcm> {
    match ctx.store.load_greeting(mailbox, GreetingKind::Unavailable) {
        Ok(Some(pcm)) if !pcm.is_empty() => vec![Pcm::from(pcm)],
        Ok(_) => ctx.prompts.unavailable_greeting(lang, mailbox.as_str()),
        Err(e) => {
            tracing::warn!(error = %e, "greeting unreadable; using the default");
            ctx.prompts.unavailable_greeting(lang, mailbox.as_str())
        }
    }
}
