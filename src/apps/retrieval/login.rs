//! Login: which box, and its PIN.
//!
//! Like Asterisk's `vm_authenticate`: box number (unless known) and PIN,
//! each ended by `#`; a wrong one is "login incorrect" and both are asked
//! again, up to `max_login_attempts`. An unknown box number is not
//! revealed: its PIN is asked and refused like a wrong one, after the same
//! Argon2 work. Wrong PINs also count in the security store across calls,
//! which locks the box after repeated failures.

use crate::call::CallApi;
use crate::config::MailboxConfig;
use crate::store::MailboxId;
use crate::store::security::PinCheck;

use super::{Access, LoggedIn, Session, Step, Stop, blocking, pin_work};

impl<C: CallApi> Session<'_, '_, C> {
    pub(super) async fn login(&mut self, access: &Access) -> Step<()> {
        let config = self.ctx.config;
        let known = |n: &str| config.mailbox(n).filter(|_| MailboxId::try_from(n).is_ok());
        let (fixed, trusted) = match access {
            Access::Own {
                mailbox: Some(m),
                trusted,
            } if known(m).is_some() => (Some(m.clone()), *trusted),
            Access::Own { .. } => (None, false),
            Access::Any { mailbox } => (Some(mailbox.clone()), false),
        };
        if trusted && let Some(number) = &fixed {
            let mb = known(number).expect("checked above");
            tracing::info!(mailbox = %number, "trusted caller: no PIN asked");
            self.enter(number, mb);
            return Ok(());
        }

        let max = self.ctx.options.max_login_attempts.max(1);
        let mut attempts = 0;
        loop {
            let number = match &fixed {
                Some(n) => Some(n.clone()),
                None => self.read_entry(&["vm-login"]).await?,
            };
            let mb = number.as_deref().and_then(known);
            // The language only follows a typed box after its PIN: before,
            // it would tell a guesser which numbers are boxes.
            if let (Some(_), Some(number)) = (mb, &number) {
                let id = MailboxId::try_from(number.as_str()).expect("checked by known()");
                let security = self.ctx.security.clone();
                let now = self.ctx.now();
                match blocking(move || security.locked_until(&id, now)).await {
                    Ok(Some(until)) => {
                        tracing::warn!(mailbox = %number, %until, "login refused: mailbox locked after repeated wrong PINs");
                        self.announce(&["vm-locked"]).await?;
                        return Err(Stop::Locked(number.clone(), until));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(mailbox = %number, error = %e, "security state unreadable");
                        return Err(Stop::Failed);
                    }
                }
            }
            let pin = match number {
                // A box number was typed (or is known): ask the PIN.
                Some(_) => self.read_entry(&["vm-password"]).await?,
                None => None,
            };
            match (mb, number.as_deref(), pin) {
                (Some(mb), Some(number), Some(pin)) => {
                    let id = MailboxId::try_from(number).expect("checked by known()");
                    let security = self.ctx.security.clone();
                    let config_pin = mb.pin.clone();
                    let now = self.ctx.now();
                    let checked =
                        pin_work(move || security.check_pin(&id, &config_pin, &pin, now)).await;
                    match checked {
                        Ok(PinCheck::Accepted) => {
                            tracing::info!(mailbox = %number, "voicemail login");
                            self.enter(number, mb);
                            return Ok(());
                        }
                        Ok(PinCheck::Rejected {
                            failures,
                            locked_until,
                        }) => {
                            tracing::warn!(mailbox = %number, failures, caller = %self.call.info().caller_number, "wrong voicemail PIN");
                            if let Some(until) = locked_until {
                                tracing::warn!(mailbox = %number, %until, failures, "mailbox locked after repeated wrong PINs");
                                self.announce(&["vm-incorrect", "vm-locked"]).await?;
                                return Err(Stop::Locked(number.to_owned(), until));
                            }
                        }
                        Ok(PinCheck::Locked { until }) => {
                            tracing::warn!(mailbox = %number, %until, "login refused: mailbox locked");
                            self.announce(&["vm-locked"]).await?;
                            return Err(Stop::Locked(number.to_owned(), until));
                        }
                        Err(e) => {
                            tracing::error!(mailbox = %number, error = %e, "PIN check failed");
                            return Err(Stop::Failed);
                        }
                    }
                }
                (None, Some(number), Some(pin)) => {
                    // Same work as a real check, so timing tells nothing.
                    let security = self.ctx.security.clone();
                    let _ = pin_work(move || {
                        security.dummy_check(&pin);
                        Ok(())
                    })
                    .await;
                    tracing::warn!(mailbox = %number.chars().take(40).collect::<String>(), caller = %self.call.info().caller_number, "voicemail login to an unknown mailbox");
                }
                // Silence instead of a box number or PIN.
                _ => {}
            }
            attempts += 1;
            self.announce(&["vm-incorrect"]).await?;
            if attempts >= max {
                return Err(Stop::LoginFailed(fixed.or(number)));
            }
        }
    }

    /// Login errors are heard whole (no barge-in, as in Asterisk), and
    /// nothing typed ahead carries over into the next PIN.
    async fn announce(&mut self, names: &[&str]) -> Step<()> {
        self.pending = None;
        let items = self.prompt(names);
        self.call.play(items).await?;
        Ok(())
    }

    /// Logged in: from now on the box's own language (the call's if it
    /// sets none, as for a deposit) and the box's time zone.
    fn enter(&mut self, number: &str, mb: &MailboxConfig) {
        if let Some(lang) = &mb.language {
            self.lang = lang.clone();
        }
        self.tz = mb.time_zone();
        self.mailbox = Some(LoggedIn {
            id: MailboxId::try_from(number).expect("validated by the caller"),
            config_pin: mb.pin.clone(),
        });
    }
}
