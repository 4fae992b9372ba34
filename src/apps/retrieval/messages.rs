//! The main menu and the message menu: folders, playback, delete, save,
//! forward, envelope.

use crate::apps::message_feed::message_feed;
use crate::call::CallApi;
use crate::media::feed::PlayItem;
use crate::prompts::{MessageAge, Pcm, say};
use crate::store::{Folder, MailboxId, MessageId, MessageMeta, StoreError, limit_reached};

use super::{LoggedIn, Session, Step, Stop, blocking};
use crate::apps::keys::ALL_KEYS;

/// A folder as the caller browses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ViewKind {
    /// New messages, then old ones ("1 listen" hears everything unheard
    /// first, then carries on into the old messages).
    New,
    Old,
    Saved,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub id: MessageId,
    pub meta: MessageMeta,
    /// Where the message is now (a heard new message moves to old).
    pub folder: Folder,
    /// Marked with 7; removed when the caller leaves the folder.
    pub deleted: bool,
}

#[derive(Debug)]
pub(super) struct View {
    pub kind: ViewKind,
    pub entries: Vec<Entry>,
    /// The message last played, if any.
    pub current: Option<usize>,
}

impl View {
    fn count(&self, folder: Folder) -> u32 {
        self.entries.iter().filter(|e| e.folder == folder).count() as u32
    }
}

impl<C: CallApi> Session<'_, '_, C> {
    fn box_id(&self) -> MailboxId {
        self.logged_in().id.clone()
    }

    /// Lists a folder (or two, for [`ViewKind::New`]).
    async fn open_view(&mut self, kind: ViewKind) -> Step<()> {
        let folders: &'static [Folder] = match kind {
            ViewKind::New => &[Folder::Inbox, Folder::Old],
            ViewKind::Old => &[Folder::Old],
            ViewKind::Saved => &[Folder::Saved],
        };
        let store = self.ctx.store.clone();
        let id = self.box_id();
        let listed = blocking(move || {
            let mut out = Vec::new();
            for &f in folders {
                out.extend(store.list_messages(&id, f)?.into_iter().map(|m| (f, m)));
            }
            Ok(out)
        })
        .await;
        let listed = match listed {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(mailbox = %self.box_id(), error = %e, "cannot list messages");
                return Err(Stop::Failed);
            }
        };
        let mut entries: Vec<Entry> = listed
            .into_iter()
            .filter_map(|(folder, meta)| {
                let id = MessageId::try_from(meta.id.as_str()).ok()?;
                Some(Entry {
                    id,
                    meta,
                    folder,
                    deleted: false,
                })
            })
            .collect();
        // Urgent messages first in each folder, as Asterisk plays its
        // Urgent folder first; otherwise oldest first (a stable sort).
        entries.sort_by_key(|e| (folders.iter().position(|&f| f == e.folder), !e.meta.urgent));
        self.view = Some(View {
            kind,
            entries,
            current: None,
        });
        Ok(())
    }

    fn view(&self) -> &View {
        self.view.as_ref().expect("a folder is open in the menus")
    }

    fn view_mut(&mut self) -> &mut View {
        self.view.as_mut().expect("a folder is open in the menus")
    }

    /// Applies the deletions marked in the open folder and closes it.
    pub(super) async fn leave_view(&mut self) {
        let Some(view) = self.view.take() else {
            return;
        };
        let Some(mb) = &self.mailbox else {
            return;
        };
        let doomed: Vec<Entry> = view.entries.into_iter().filter(|e| e.deleted).collect();
        if doomed.is_empty() {
            return;
        }
        let store = self.ctx.store.clone();
        let id = mb.id.clone();
        let gone = blocking(move || {
            let mut gone = Vec::new();
            for e in doomed {
                match store.delete_message(&id, e.folder, &e.id) {
                    Ok(()) => {
                        tracing::info!(mailbox = %id, folder = %e.folder, id = %e.id, "message deleted by phone");
                        gone.push(e.meta);
                    }
                    Err(StoreError::MessageNotFound { .. }) => {}
                    Err(err) => tracing::error!(mailbox = %id, folder = %e.folder, id = %e.id, error = %err, "deleting a message failed"),
                }
            }
            Ok(gone)
        })
        .await
        .unwrap_or_default();
        if let Some(events) = &self.ctx.events {
            for meta in &gone {
                events.message_deleted(meta);
            }
        }
    }

    /// After login: "mailbox full" when the box has reached its
    /// `max_messages` (as Asterisk warns), the temporary-greeting reminder,
    /// the counts, then the command loop until `#`, a hang-up or too many
    /// timeouts.
    pub(super) async fn main_menu(&mut self) -> Step<std::convert::Infallible> {
        self.open_view(ViewKind::New).await?;
        let (new, old) = {
            let v = self.view();
            (v.count(Folder::Inbox), v.count(Folder::Old))
        };
        let max = self
            .ctx
            .config
            .mailbox(self.box_id().as_str())
            .and_then(|m| m.max_messages);
        // The open view is inbox + old: what the limit counts.
        let mut intro = if limit_reached((new + old) as usize, max) {
            tracing::info!(mailbox = %self.box_id(), messages = new + old, max, "owner warned: mailbox full");
            self.prompt(&["vm-your-mailbox-full"])
        } else {
            Vec::new()
        };
        intro.extend(self.temp_greeting_reminder().await);
        intro.extend(self.ctx.prompts.you_have(&self.lang, new, old));
        self.say(intro).await?;

        let mut failures = 0;
        let mut help = false;
        loop {
            let items = self.menu_prompt(help);
            help = false;
            let key = self.ask(items).await?;
            let handled = match key {
                Some(k) => self.command(k, &mut help).await?,
                None => false,
            };
            if handled {
                failures = 0;
                continue;
            }
            if key.is_some() {
                self.say_names(&["vm-invalid"]).await?;
            }
            failures += 1;
            if failures >= self.ctx.options.max_retries {
                return Err(Stop::NoInput);
            }
        }
    }

    /// The caller's own box, then the shared boxes it is a member of.
    fn shared_ring(&self) -> Vec<LoggedIn> {
        let home = self
            .home
            .clone()
            .unwrap_or_else(|| self.logged_in().clone());
        let mut ring = vec![home.clone()];
        for m in &self.ctx.config.mailboxes {
            if m.shared
                && m.number != home.id.as_str()
                && m.admits(home.id.as_str())
                && let Ok(id) = MailboxId::try_from(m.number.as_str())
            {
                ring.push(LoggedIn {
                    id,
                    config_pin: m.pin.clone(),
                });
            }
        }
        ring
    }

    /// On to the next box of [`Session::shared_ring`] (deletions marked in
    /// the open folder happen first), said by its number and its counts.
    /// A shared box keeps one read state by phone: a message heard here is
    /// heard for every member.
    async fn next_mailbox(&mut self) -> Step<()> {
        let ring = self.shared_ring();
        let at = ring
            .iter()
            .position(|b| b.id == self.logged_in().id)
            .unwrap_or(0);
        let next = ring[(at + 1) % ring.len()].clone();
        self.leave_view().await;
        if self.home.is_none() {
            self.home = self.mailbox.clone();
        }
        if self.home.as_ref().is_some_and(|h| h.id == next.id) {
            self.home = None;
        }
        tracing::info!(mailbox = %next.id, "moved on to another mailbox by phone");
        let id = next.id.clone();
        self.mailbox = Some(next);
        self.open_view(ViewKind::New).await?;
        let (new, old) = {
            let v = self.view();
            (v.count(Folder::Inbox), v.count(Folder::Old))
        };
        let mut items = self.ctx.prompts.digits(&self.lang, id.as_str());
        items.extend(self.ctx.prompts.you_have(&self.lang, new, old));
        self.say(items).await
    }

    /// The main menu with no message selected; the message options (only
    /// those that apply) once one is; both for help.
    fn menu_prompt(&self, help: bool) -> Vec<Pcm> {
        let view = self.view();
        let mut names = Vec::new();
        if help || view.current.is_none() {
            names.push("vm-main-menu");
        }
        if let Some(i) = view.current {
            names.push("vm-opt-envelope");
            if i > 0 {
                names.push("vm-opt-prev");
            }
            names.push("vm-opt-repeat");
            if i + 1 < view.entries.len() {
                names.push("vm-opt-next");
            }
            names.push(if view.entries[i].deleted {
                "vm-opt-undelete"
            } else {
                "vm-opt-delete"
            });
            names.push("vm-opt-forward");
            names.push("vm-opt-save");
            names.push("vm-opt-help-exit");
        }
        self.prompt(&names)
    }

    /// One key of the main/message menu; `false` if it means nothing here.
    async fn command(&mut self, key: char, help: &mut bool) -> Step<bool> {
        // "1" lists the unheard messages again from disk, so a message left
        // while this caller was in the menus is heard too (unless deletions
        // are pending in the current list: those apply on leaving it).
        if key == '1'
            && self.view().kind == ViewKind::New
            && !self.view().entries.iter().any(|e| e.deleted)
        {
            self.open_view(ViewKind::New).await?;
        }
        let current = self.view().current;
        let len = self.view().entries.len();
        match (key, current) {
            ('1', _) => {
                if len == 0 {
                    self.say_names(&["vm-no-messages"]).await?;
                } else {
                    self.play_message(0).await?;
                }
            }
            ('2', _) => self.change_folder().await?,
            // A shared box's greetings and PIN are not its members' to change.
            ('0', _) if self.home.is_some() => return Ok(false),
            ('0', _) => self.mailbox_options().await?,
            ('*', _) => *help = true,
            ('#', _) => return Err(Stop::Exit),
            ('3', None) if self.shared_ring().len() > 1 => self.next_mailbox().await?,
            (_, None) => return Ok(false),
            ('3', Some(i)) => self.envelope(i).await?,
            ('4', Some(0)) => self.say_names(&["vm-first"]).await?,
            ('4', Some(i)) => self.play_message(i - 1).await?,
            ('5', Some(i)) => self.play_message(i).await?,
            ('6', Some(i)) if i + 1 < len => self.play_message(i + 1).await?,
            ('6', Some(_)) => self.say_names(&["vm-no-more"]).await?,
            ('7', Some(i)) => {
                let e = &mut self.view_mut().entries[i];
                e.deleted = !e.deleted;
                let deleted = e.deleted;
                tracing::debug!(id = %e.id, deleted, "delete toggled");
                self.say_names(&[if deleted {
                    "vm-deleted"
                } else {
                    "vm-undeleted"
                }])
                .await?;
                if deleted {
                    self.next_after_command(i).await?;
                }
            }
            ('8', Some(i)) => self.forward(i).await?,
            ('9', Some(i)) => {
                if self.save(i).await? {
                    self.next_after_command(i).await?;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Plays message `index` of the open folder ("message N", then the
    /// audio); a key during it stops it and is the next command, except
    /// `#`, which only skips to the end. Unreadable messages are skipped.
    async fn play_message(&mut self, index: usize) -> Step<()> {
        let audio = loop {
            let Some(e) = self.view().entries.get(index) else {
                // Everything from here on was unreadable.
                let view = self.view_mut();
                view.current = view.entries.len().checked_sub(1);
                return self.say_names(&["vm-no-more"]).await;
            };
            let (folder, msg) = (e.folder, e.id.clone());
            let (store, id) = (self.ctx.store.clone(), self.box_id());
            match message_feed(store, id, folder, msg.clone()).await {
                Ok(Some(feed)) => break feed,
                Ok(None) => {
                    tracing::warn!(mailbox = %self.box_id(), %folder, id = %msg, "empty message skipped")
                }
                Err(e) => {
                    tracing::warn!(mailbox = %self.box_id(), %folder, id = %msg, error = %e, "unreadable message skipped")
                }
            }
            // The next message (if any) now sits at `index`.
            let view = self.view_mut();
            view.entries.remove(index);
            if let Some(c) = view.current
                && c > index
            {
                view.current = Some(c - 1);
            }
        };
        self.view_mut().current = Some(index);
        let mut items = if self.view().entries[index].meta.urgent {
            self.prompt(&["vm-urgent", "vm-message"])
        } else {
            self.prompt(&["vm-message"])
        };
        items.extend(self.ctx.prompts.number(&self.lang, index as u32 + 1));
        if self.ctx.config.voicemail.envelope {
            items.extend(self.prompt(&self.envelope_names(index)));
        }
        let mut items: Vec<PlayItem> = items.into_iter().map(PlayItem::from).collect();
        items.push(PlayItem::Feed(audio));
        self.pending = None;
        let played = self.call.play_items_interruptible(items, ALL_KEYS).await;
        // Heard (even in part, as in Asterisk): a new message becomes old.
        self.mark_heard(index).await;
        match played? {
            Some('#') | None => {}
            Some(k) => self.pending = Some(k),
        }
        Ok(())
    }

    async fn mark_heard(&mut self, index: usize) {
        let e = &self.view().entries[index];
        if e.folder != Folder::Inbox {
            return;
        }
        let (store, id, msg) = (self.ctx.store.clone(), self.box_id(), e.id.clone());
        match blocking(move || store.move_message(&id, Folder::Inbox, Folder::Old, &msg)).await {
            Ok(meta) => {
                if let Some(events) = &self.ctx.events {
                    events.message_updated(&meta, Some(Folder::Inbox));
                }
                let e = &mut self.view_mut().entries[index];
                e.folder = Folder::Old;
                e.meta = meta;
            }
            Err(e) => {
                tracing::warn!(mailbox = %self.box_id(), error = %e, "could not move a heard message to old")
            }
        }
    }

    /// After 7 (marked deleted) or 9 (saved), with `[voicemail]
    /// next_after_command`: on to the next message, or "no more messages"
    /// after the last one, like Asterisk's `nextaftercmd`. A key pressed
    /// over "deleted"/"saved" is the caller's next command instead.
    async fn next_after_command(&mut self, index: usize) -> Step<()> {
        if !self.ctx.config.voicemail.next_after_command || self.pending.is_some() {
            return Ok(());
        }
        if index + 1 < self.view().entries.len() {
            self.play_message(index + 1).await
        } else {
            self.say_names(&["vm-no-more"]).await
        }
    }

    /// 9: to the saved folder at once (and no longer marked deleted);
    /// `false` if the move failed (the caller heard why).
    async fn save(&mut self, index: usize) -> Step<bool> {
        let e = &self.view().entries[index];
        let from = e.folder;
        if from != Folder::Saved {
            let (store, id, msg) = (self.ctx.store.clone(), self.box_id(), e.id.clone());
            match blocking(move || store.move_message(&id, from, Folder::Saved, &msg)).await {
                Ok(meta) => {
                    if let Some(events) = &self.ctx.events {
                        events.message_updated(&meta, Some(from));
                    }
                    let e = &mut self.view_mut().entries[index];
                    e.folder = Folder::Saved;
                    e.meta = meta;
                }
                Err(err) => {
                    tracing::error!(mailbox = %self.box_id(), error = %err, "saving a message failed");
                    self.say_names(&["vm-error"]).await?;
                    return Ok(false);
                }
            }
        }
        self.view_mut().entries[index].deleted = false;
        self.say_names(&["vm-saved"]).await?;
        Ok(true)
    }

    /// 3: when it came (in the logged-in owner's time zone), from whom, how
    /// long.
    async fn envelope(&mut self, index: usize) -> Step<()> {
        let names = self.envelope_names(index);
        self.say_names(&names).await
    }

    /// When message `index` came, from whom, how long, as prompt names.
    fn envelope_names(&self, index: usize) -> Vec<&'static str> {
        let meta = &self.view().entries[index].meta;
        let received = meta.received_at.to_zoned(self.tz.clone()).datetime();
        say::envelope_names(
            &self.lang,
            received,
            &meta.caller_number,
            meta.duration_seconds,
        )
    }

    /// 2: pick a folder (# or * cancels); leaving applies deletions.
    async fn change_folder(&mut self) -> Step<()> {
        let kind = match self.menu(&["vm-choose-folder"], "123#*").await? {
            '1' => ViewKind::New,
            '2' => ViewKind::Old,
            '3' => ViewKind::Saved,
            _ => return Ok(()),
        };
        self.leave_view().await;
        self.open_view(kind).await?;
        let view = self.view();
        let (new, old, n) = (
            view.count(Folder::Inbox),
            view.count(Folder::Old),
            view.entries.len() as u32,
        );
        let mut items = Vec::new();
        match kind {
            ViewKind::New => {
                items.extend(self.prompt(&["vm-folder-new"]));
                items.extend(self.ctx.prompts.you_have(&self.lang, new, old));
            }
            ViewKind::Old | ViewKind::Saved => {
                let (name, age) = if kind == ViewKind::Old {
                    ("vm-folder-old", Some(MessageAge::Old))
                } else {
                    ("vm-folder-saved", None)
                };
                items.extend(self.prompt(&[name]));
                if n == 0 {
                    items.extend(self.prompt(&["vm-no-messages"]));
                } else {
                    items.extend(self.prompt(&["vm-youhave"]));
                    items.extend(self.ctx.prompts.message_count(&self.lang, n, age));
                }
            }
        }
        self.say(items).await
    }

    /// 8: the target box (+ #, * cancels), then 1 with a recorded
    /// introduction in front, 2 as is, * cancel.
    async fn forward(&mut self, index: usize) -> Step<()> {
        let config = self.ctx.config;
        let mut failures = 0;
        let (target, max) = loop {
            match self.read_entry(&["vm-forward-enter"]).await? {
                Some(s) if s.starts_with('*') => return Ok(()),
                Some(s) => {
                    if let Some(m) = config.mailbox(&s)
                        && let Ok(id) = MailboxId::try_from(s.as_str())
                    {
                        break (id, m.max_messages);
                    }
                    self.say_names(&["vm-invalid-mailbox"]).await?;
                }
                None => {}
            }
            failures += 1;
            if failures >= self.ctx.options.max_retries {
                return Err(Stop::NoInput);
            }
        };
        // A full box is said at once, before an introduction is recorded
        // for nothing (the copy checks again).
        let (store, to) = (self.ctx.store.clone(), target.clone());
        if let Err(e @ StoreError::MailboxFull { .. }) =
            blocking(move || store.check_room(&to, max)).await
        {
            return self.forward_refused(&target, e).await;
        }
        let intro = match self.menu(&["vm-forward-options"], "12*").await? {
            '1' => {
                let max = self.ctx.options.intro_max_seconds;
                match self.record_scratch(&["vm-rec-intro"], max).await? {
                    Some(rec) => Some(rec),
                    None => return self.say_names(&["vm-error"]).await,
                }
            }
            '2' => None,
            _ => return Ok(()),
        };
        let e = &self.view().entries[index];
        let (store, from, folder, msg, to) = (
            self.ctx.store.clone(),
            self.box_id(),
            e.folder,
            e.id.clone(),
            target.clone(),
        );
        let at = self.ctx.now();
        let copied = blocking(move || {
            let intro_samples = intro.as_ref().map(|r| r.samples()).unwrap_or(&[]);
            store.copy_message(&from, folder, &msg, &to, max, intro_samples, at)
        })
        .await;
        match copied {
            Ok(meta) => {
                tracing::info!(from = %self.box_id(), to = %target, id = %meta.id, "message forwarded");
                if let Some(events) = &self.ctx.events {
                    events.message_created(&meta);
                }
                self.say_names(&["vm-forwarded"]).await
            }
            Err(e @ StoreError::MailboxFull { .. }) => self.forward_refused(&target, e).await,
            Err(e) => {
                tracing::error!(from = %self.box_id(), to = %target, error = %e, "forwarding failed");
                self.say_names(&["vm-error"]).await
            }
        }
    }

    /// The target box is full: nothing is copied; "mailbox full", and the
    /// caller goes on in the message menu.
    async fn forward_refused(&mut self, target: &MailboxId, e: StoreError) -> Step<()> {
        tracing::info!(from = %self.box_id(), to = %target, error = %e, "not forwarded: mailbox full");
        self.say_names(&["vm-mailbox-full"]).await
    }
}
