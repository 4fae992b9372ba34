//! Mailbox options (0): greetings, recorded name, temporary greeting, PIN.

use jiff::{SignedDuration, Timestamp};

use crate::call::CallApi;
use crate::media::session::RecordOptions;
use crate::prompts::{Pcm, say};
use crate::store::security::TempGreeting;
use crate::store::{GreetingKind, ScratchRecording};

use super::{Session, Step, Stop, blocking, pin_work};

impl<C: CallApi> Session<'_, '_, C> {
    /// Loops until `*`: 1 unavailable, 2 busy, 3 name, 4 temporary
    /// greeting, 5 PIN.
    pub(super) async fn mailbox_options(&mut self) -> Step<()> {
        loop {
            // Reminded first, like Asterisk, while a temporary greeting is on.
            let mut reminder = Vec::new();
            if self.active_temp_greeting().await.is_some() {
                reminder.extend(self.prompt(&["vm-temp-active"]));
            }
            let key = self
                .menu_with(reminder, &["vm-options-menu"], "12345*")
                .await?;
            match key {
                '1' => {
                    self.record_greeting(GreetingKind::Unavailable).await?;
                }
                '2' => {
                    self.record_greeting(GreetingKind::Busy).await?;
                }
                '3' => {
                    self.record_greeting(GreetingKind::Name).await?;
                }
                '4' => self.temp_greeting().await?,
                '5' => self.change_pin().await?,
                _ => return Ok(()),
            }
        }
    }

    /// The temporary greeting if one is set and in force (an expired one is
    /// removed on the way).
    pub(super) async fn active_temp_greeting(&mut self) -> Option<TempGreeting> {
        let (security, store, id, now) = (
            self.ctx.security.clone(),
            self.ctx.store.clone(),
            self.logged_in().id.clone(),
            self.ctx.now(),
        );
        match blocking(move || security.active_temp_greeting(&store, &id, now)).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(mailbox = %self.logged_in().id, error = %e, "temporary greeting state unreadable");
                None
            }
        }
    }

    /// "Your temporary greeting is active [until …]", or nothing.
    pub(super) async fn temp_greeting_reminder(&mut self) -> Vec<Pcm> {
        let Some(t) = self.active_temp_greeting().await else {
            return Vec::new();
        };
        let mut names = vec!["vm-temp-active"];
        if let Some(expires) = t.expires {
            names.extend(say::until_names(&self.lang, self.last_day(expires)));
        }
        self.prompt(&names)
    }

    /// The last day (in the box's zone) on which something ending at
    /// `expires` is still in force.
    fn last_day(&self, expires: Timestamp) -> jiff::civil::Date {
        expires
            .checked_sub(SignedDuration::from_nanos(1))
            .unwrap_or(expires)
            .to_zoned(self.tz.clone())
            .date()
    }

    /// Prompt, beep, record until `#` (or silence, or `max_seconds`) into a
    /// scratch file. `None` if the store failed (logged).
    pub(super) async fn record_scratch(
        &mut self,
        names: &[&str],
        max_seconds: u32,
    ) -> Step<Option<ScratchRecording>> {
        self.pending = None;
        let mut items = self.prompt(names);
        items.push(self.ctx.beep.clone());
        self.call.play(items).await?;
        let (store, id) = (self.ctx.store.clone(), self.logged_in().id.clone());
        let writer = match blocking(move || store.begin_scratch(&id)).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(mailbox = %self.logged_in().id, error = %e, "cannot start a recording");
                return Ok(None);
            }
        };
        let vm = &self.ctx.config.voicemail;
        let options = RecordOptions {
            max_samples: u64::from(max_seconds) * 8000,
            silence_timeout_samples: u64::from(vm.silence_timeout_seconds) * 8000,
            silence_threshold: vm.silence_threshold,
            stop_digits: "#".into(),
        };
        let Some(recorded) = self.call.record(writer, options).await else {
            return Err(Stop::HungUp);
        };
        let writer = recorded.writer;
        let finished = blocking(move || writer.finish_scratch()).await;
        if self.call.is_hung_up() {
            // Dropping the recording deletes it: nothing half-done is kept.
            return Err(Stop::HungUp);
        }
        match finished {
            Ok(rec) => Ok(Some(rec)),
            Err(e) => {
                tracing::error!(mailbox = %self.logged_in().id, error = %e, "recording failed");
                Ok(None)
            }
        }
    }

    /// Records a greeting (or the name) with review: 1 accept, 2 listen,
    /// 3 re-record. `true` once one is saved.
    async fn record_greeting(&mut self, kind: GreetingKind) -> Step<bool> {
        let prompt = match kind {
            GreetingKind::Unavailable => "vm-rec-unavailable",
            GreetingKind::Busy => "vm-rec-busy",
            GreetingKind::Temporary => "vm-rec-temp",
            GreetingKind::Name => "vm-rec-name",
        };
        let min_samples = (self.ctx.config.voicemail.min_message_seconds * 8000.0) as usize;
        let max_seconds = self.ctx.options.greeting_max_seconds;
        let mut short = 0;
        'record: loop {
            let Some(rec) = self.record_scratch(&[prompt], max_seconds).await? else {
                self.say_names(&["vm-error"]).await?;
                return Ok(false);
            };
            if rec.samples().is_empty() || rec.samples().len() < min_samples {
                drop(rec);
                self.say_names(&["vm-too-short"]).await?;
                short += 1;
                if short >= self.ctx.options.max_retries {
                    return Ok(false);
                }
                continue 'record;
            }
            loop {
                match self.menu(&["vm-review"], "123").await? {
                    '1' => {
                        let id = self.logged_in().id.clone();
                        let installed = blocking(move || rec.install_greeting(kind)).await;
                        return match installed {
                            Ok(()) => {
                                tracing::info!(mailbox = %id, greeting = kind.file_stem(), "greeting recorded by phone");
                                if kind == GreetingKind::Temporary {
                                    // A new temporary greeting starts without
                                    // the old one's end date (the caller
                                    // may set one next).
                                    self.set_temp_expiry(None).await?;
                                }
                                self.say_names(&["vm-recording-saved"]).await?;
                                Ok(true)
                            }
                            Err(e) => {
                                tracing::error!(mailbox = %id, error = %e, "saving a greeting failed");
                                self.say_names(&["vm-error"]).await?;
                                Ok(false)
                            }
                        };
                    }
                    '2' => {
                        let audio = Pcm::from(rec.samples());
                        self.say(vec![audio]).await?;
                    }
                    _ => continue 'record,
                }
            }
        }
    }

    /// 4: record one if none is set; else 1 re-record, 2 remove, * back.
    /// A new one is asked how long it should last.
    async fn temp_greeting(&mut self) -> Step<()> {
        if self.active_temp_greeting().await.is_some() {
            match self.menu(&["vm-tempgreeting-menu"], "12*").await? {
                '1' => {}
                '2' => {
                    let (store, security, id) = (
                        self.ctx.store.clone(),
                        self.ctx.security.clone(),
                        self.logged_in().id.clone(),
                    );
                    let removed = blocking(move || {
                        store.delete_greeting(&id, GreetingKind::Temporary)?;
                        security.set_temp_greeting_expiry(&id, None)
                    })
                    .await;
                    return match removed {
                        Ok(()) => {
                            tracing::info!(mailbox = %self.logged_in().id, "temporary greeting removed by phone");
                            self.say_names(&["vm-tempgreeting-removed"]).await
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "removing the temporary greeting failed");
                            self.say_names(&["vm-error"]).await
                        }
                    };
                }
                _ => return Ok(()),
            }
        }
        if !self.record_greeting(GreetingKind::Temporary).await? {
            return Ok(());
        }
        if self.menu(&["vm-temp-expiry-menu"], "12").await? == '1' {
            return Ok(());
        }
        let max_days = self.ctx.options.max_temp_greeting_days;
        let mut failures = 0;
        let days = loop {
            if let Some(entry) = self.read_entry(&["vm-temp-days"]).await? {
                match entry.parse::<u32>() {
                    Ok(d) if (1..=max_days).contains(&d) => break d,
                    _ => self.say_names(&["vm-invalid"]).await?,
                }
            }
            failures += 1;
            if failures >= self.ctx.options.max_retries {
                return Err(Stop::NoInput);
            }
        };
        // Active today and the next days-1 days: it ends at the start of
        // day `today + days` in the box's zone.
        let now = self.ctx.now().to_zoned(self.tz.clone());
        let expires = now
            .date()
            .checked_add(jiff::Span::new().days(i64::from(days)))
            .and_then(|d| d.to_zoned(self.tz.clone()))
            .map(|z| z.timestamp());
        let Ok(expires) = expires else {
            return self.say_names(&["vm-error"]).await;
        };
        self.set_temp_expiry(Some(expires)).await?;
        tracing::info!(mailbox = %self.logged_in().id, %expires, "temporary greeting set to expire");
        let names = say::until_names(&self.lang, self.last_day(expires));
        self.say_names(&names).await
    }

    async fn set_temp_expiry(&mut self, expires: Option<Timestamp>) -> Step<()> {
        let (security, id) = (self.ctx.security.clone(), self.logged_in().id.clone());
        match blocking(move || security.set_temp_greeting_expiry(&id, expires)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "cannot store the temporary greeting's end");
                Err(Stop::Failed)
            }
        }
    }

    /// 5: new PIN twice; digits only, the length rules, not the box number.
    /// Back to the options after `max_retries` failed tries.
    async fn change_pin(&mut self) -> Step<()> {
        let mut failures = 0;
        while failures < self.ctx.options.max_retries {
            failures += 1;
            let Some(first) = self.read_entry(&["vm-newpassword"]).await? else {
                continue;
            };
            let id = self.logged_in().id.clone();
            if let Err(why) = self.ctx.options.pin_rules.check(&first, id.as_str()) {
                tracing::info!(mailbox = %id, %why, "new PIN refused");
                self.say_names(&["vm-password-invalid"]).await?;
                continue;
            }
            let second = self.read_entry(&["vm-reenterpassword"]).await?;
            if second.as_deref() != Some(first.as_str()) {
                self.say_names(&["vm-password-mismatch"]).await?;
                continue;
            }
            let (security, config_pin) = (
                self.ctx.security.clone(),
                self.logged_in().config_pin.clone(),
            );
            let bx = id.clone();
            match pin_work(move || security.set_pin(&bx, &config_pin, &first)).await {
                Ok(()) => {
                    tracing::info!(mailbox = %id, "PIN changed by phone");
                    return self.say_names(&["vm-password-changed"]).await;
                }
                Err(e) => {
                    tracing::error!(mailbox = %id, error = %e, "storing the new PIN failed");
                    return self.say_names(&["vm-error"]).await;
                }
            }
        }
        Ok(())
    }
}
