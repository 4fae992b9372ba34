//! A scripted call for testing apps without a network: it "presses" keys
//! from a script and keeps a log of everything the app played and recorded.

use std::collections::VecDeque;
use std::time::Duration;

use super::{CallApi, CallInfo, HungUp, Recorded, TransferError};
use crate::media::feed::PlayItem;
use crate::media::session::{RecordOptions, StopReason};
use crate::prompts::{Pcm, PromptCache};
use crate::sip::CallHandle;
use crate::store::MessageWriter;

/// What the caller does next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Keys pressed (each one answers a prompt or a wait, or barges in).
    Digits(String),
    /// The caller stays silent: the next wait for a digit times out.
    Silence,
    /// The caller speaks for this many seconds into the next recording.
    Speak(f64),
    /// The caller hangs up.
    Hangup,
    /// Something happens behind the call's back at this point of the
    /// script (runs hook `n` given with [`FakeCall::with_hook`]).
    Hook(usize),
}

/// One thing the app did.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Prompts played, by catalogue name (or `audio:<samples>` for
    /// audio not in the catalogue). `interrupted_by` for barge-in.
    Played {
        names: Vec<String>,
        interrupted_by: Option<char>,
    },
    Recorded {
        samples: u64,
        reason: StopReason,
    },
    Transferred(String),
    HungUp,
}

pub struct FakeCall {
    info: CallInfo,
    script: VecDeque<Input>,
    prompts: Option<PromptCache>,
    pub log: Vec<Action>,
    hung_up: bool,
    hooks: Vec<Box<dyn FnMut() + Send>>,
}

impl FakeCall {
    pub fn new(caller: &str, called: &str, script: Vec<Input>) -> FakeCall {
        FakeCall {
            info: CallInfo {
                handle: CallHandle(1),
                call_id: "fake-call".into(),
                caller_number: caller.into(),
                caller_name: None,
                called_number: called.into(),
                codec: "PCMU".into(),
            },
            script: script.into(),
            prompts: None,
            log: Vec::new(),
            hung_up: false,
            hooks: Vec::new(),
        }
    }

    /// Register a hook for [`Input::Hook`] (numbered in registration order).
    pub fn with_hook(mut self, hook: impl FnMut() + Send + 'static) -> FakeCall {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Run the hooks the script has reached.
    fn run_hooks(&mut self) {
        while let Some(Input::Hook(n)) = self.script.front() {
            let n = *n;
            self.script.pop_front();
            if let Some(h) = self.hooks.get_mut(n) {
                h();
            }
        }
    }

    /// Name played audio after the catalogue it came from.
    pub fn with_prompts(mut self, prompts: PromptCache) -> FakeCall {
        self.prompts = Some(prompts);
        self
    }

    /// Every prompt name played, flattened, in order.
    pub fn played(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Played { names, .. } => Some(names.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn name(&self, pcm: &Pcm) -> String {
        self.prompts
            .as_ref()
            .and_then(|p| p.name_of(pcm))
            .unwrap_or_else(|| format!("audio:{}", pcm.len()))
    }

    /// The caller's side of a played prompt: a key that barges in, or a
    /// hang-up during it.
    fn play_names(&mut self, names: Vec<String>, interrupt: &str) -> Result<Option<char>, HungUp> {
        self.run_hooks();
        if self.hung_up {
            return Err(HungUp);
        }
        let barge = match self.script.front() {
            Some(Input::Digits(d)) if d.chars().next().is_some_and(|c| interrupt.contains(c)) => {
                self.take_digit()
            }
            Some(Input::Hangup) => {
                self.script.pop_front();
                self.log.push(Action::Played {
                    names,
                    interrupted_by: None,
                });
                return Err(self.end_of_script());
            }
            _ => None,
        };
        self.log.push(Action::Played {
            names,
            interrupted_by: barge,
        });
        Ok(barge)
    }

    fn end_of_script(&mut self) -> HungUp {
        self.hung_up = true;
        HungUp
    }

    /// Take the next digit, if the script's next input is digits.
    fn take_digit(&mut self) -> Option<char> {
        let Some(Input::Digits(d)) = self.script.front_mut() else {
            return None;
        };
        let c = d.remove(0);
        if d.is_empty() {
            self.script.pop_front();
        }
        Some(c)
    }
}

impl CallApi for FakeCall {
    fn info(&self) -> &CallInfo {
        &self.info
    }

    fn is_hung_up(&self) -> bool {
        self.hung_up
    }

    async fn play(&mut self, items: Vec<Pcm>) -> Result<(), HungUp> {
        self.run_hooks();
        if self.hung_up {
            return Err(HungUp);
        }
        let names = items.iter().map(|p| self.name(p)).collect();
        self.log.push(Action::Played {
            names,
            interrupted_by: None,
        });
        if self.script.front() == Some(&Input::Hangup) {
            self.script.pop_front();
            return Err(self.end_of_script());
        }
        Ok(())
    }

    async fn play_interruptible(
        &mut self,
        items: Vec<Pcm>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp> {
        let names = items.iter().map(|p| self.name(p)).collect();
        self.play_names(names, interrupt)
    }

    /// A streamed feed is read to its end (it stands for the whole audio
    /// the caller would hear) and named by its length.
    async fn play_items_interruptible(
        &mut self,
        items: Vec<PlayItem>,
        interrupt: &str,
    ) -> Result<Option<char>, HungUp> {
        let mut names = Vec::new();
        for item in items {
            names.push(match item {
                PlayItem::Clip(pcm) => self.name(&pcm),
                PlayItem::Feed(feed) => format!("audio:{}", feed.collect().await.len()),
            });
        }
        self.play_names(names, interrupt)
    }

    async fn collect_digit(&mut self, _timeout: Duration) -> Result<Option<char>, HungUp> {
        self.run_hooks();
        if self.hung_up {
            return Err(HungUp);
        }
        match self.script.front() {
            Some(Input::Digits(_)) => Ok(self.take_digit()),
            Some(Input::Silence) => {
                self.script.pop_front();
                Ok(None)
            }
            // (Hooks ahead were run above; one here would be a bug in this fake.)
            Some(Input::Speak(_) | Input::Hook(_)) => {
                self.script.pop_front();
                Ok(None)
            }
            Some(Input::Hangup) | None => {
                self.script.pop_front();
                Err(self.end_of_script())
            }
        }
    }

    async fn record(
        &mut self,
        mut writer: MessageWriter,
        options: RecordOptions,
    ) -> Option<Recorded> {
        self.run_hooks();
        let mut samples = 0u64;
        let mut reason = StopReason::Silence;
        // Speech (a loud tone), then whatever ends the recording.
        while let Some(input) = self.script.pop_front() {
            match input {
                Input::Speak(seconds) => {
                    let n = (seconds * 8000.0) as u64;
                    let n = n.min(options.max_samples.saturating_sub(samples));
                    let tone: Vec<i16> = (0..n)
                        .map(|i| if (i / 10) % 2 == 0 { 6000 } else { -6000 })
                        .collect();
                    if writer.write(&tone).is_err() {
                        reason = StopReason::WriteError;
                        break;
                    }
                    samples += n;
                    if samples >= options.max_samples {
                        reason = StopReason::MaxLength;
                        break;
                    }
                }
                Input::Digits(mut d) => {
                    let c = d.remove(0);
                    if !d.is_empty() {
                        self.script.push_front(Input::Digits(d));
                    }
                    if options.stop_digits.contains(c) {
                        reason = StopReason::Digit(c);
                        break;
                    }
                }
                Input::Silence => {
                    reason = StopReason::Silence;
                    break;
                }
                Input::Hangup => {
                    self.hung_up = true;
                    reason = StopReason::Stopped;
                    break;
                }
                Input::Hook(n) => {
                    if let Some(h) = self.hooks.get_mut(n) {
                        h();
                    }
                }
            }
        }
        self.log.push(Action::Recorded { samples, reason });
        Some(Recorded { writer, reason })
    }

    async fn transfer(&mut self, target: &str) -> Result<(), TransferError> {
        if self.hung_up {
            return Err(TransferError::HungUp);
        }
        self.log.push(Action::Transferred(target.to_string()));
        self.hung_up = true;
        Ok(())
    }

    fn hangup(&mut self) {
        if !self.hung_up {
            self.hung_up = true;
            self.log.push(Action::HungUp);
        }
    }
}
