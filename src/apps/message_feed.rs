//! Playing a stored message from its file while the caller listens, so a
//! listener costs a small ring of samples rather than the whole message
//! (a minute is 960 KB as samples, ten minutes 9.6 MB).
//!
//! One reader thread keeps every playing message's feed topped up: every
//! [`ROUND`] it reads into each feed that has room for a piece, and drops
//! feeds whose listener moved on. Polling, rather than a task woken per
//! piece, means the media threads never wake anyone when they take samples
//! (a profile of 500 listeners with a task per feed showed a fifth of
//! voxmail's CPU in those wake-ups), and the reader's own clock serves all
//! listeners at once, as the media engine's does.

use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::{blocking, blocking_failed};
use crate::media::feed::{AudioFeed, FeedWriter};
use crate::store::{Folder, MailboxId, MessageAudio, MessageId, Store, StoreError};

/// The least the reader reads at once: a quarter second.
const PIECE: usize = 2000;
/// Samples held ahead of the one playing: 1.5 s of slack for a slow disk,
/// 24 KiB per listener.
const AHEAD: usize = 12_000;
/// How often the reader tops the feeds up.
const ROUND: Duration = Duration::from_millis(100);

/// Opens message `id` for playing; `None` when it holds no audio. The first
/// piece is read before this returns, so playing starts without a gap.
pub(crate) async fn message_feed(
    store: Store,
    mailbox: MailboxId,
    folder: Folder,
    id: MessageId,
) -> Result<Option<AudioFeed>, StoreError> {
    let (audio, first) = blocking(move || {
        let mut audio = store.open_message_audio(&mailbox, folder, &id)?;
        let mut first = Vec::with_capacity(PIECE);
        audio.read(PIECE, &mut first)?;
        Ok((audio, first))
    })
    .await?;
    if first.is_empty() {
        return Ok(None);
    }
    let (mut writer, feed) = AudioFeed::channel(AHEAD);
    writer.write(&first);
    reader()
        .send(Reading { audio, writer })
        .map_err(|_| blocking_failed("the message reader thread is not running"))?;
    Ok(Some(feed))
}

/// A message being played: where its next samples come from and go.
struct Reading {
    audio: MessageAudio,
    writer: FeedWriter,
}

impl Reading {
    /// Reads while the feed has room for a piece; false once it is
    /// finished (the message ended or failed, or nobody listens any more).
    /// `scratch` is the reader's one buffer, reused for every feed.
    fn top_up(&mut self, scratch: &mut Vec<i16>) -> bool {
        loop {
            if self.writer.is_abandoned() {
                return false;
            }
            let room = self.writer.room();
            if room < PIECE {
                return true;
            }
            scratch.clear();
            match self.audio.read(room, scratch) {
                Ok(0) => return false,
                Ok(_) => {
                    self.writer.write(scratch);
                }
                Err(e) => {
                    // What was read is played; the message ends early.
                    tracing::warn!(error = %e, "a message stopped being readable while it played");
                    return false;
                }
            }
        }
    }
}

fn reader() -> &'static Sender<Reading> {
    static READER: OnceLock<Sender<Reading>> = OnceLock::new();
    READER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("message-reader".into())
            .spawn(move || {
                crate::server::priority::reset_thread();
                read_messages(rx);
            });
        if let Err(e) = started {
            // Sends fail (the receiver is gone) and callers report it.
            tracing::error!(error = %e, "the message reader thread could not start");
        }
        tx
    })
}

fn read_messages(new: Receiver<Reading>) {
    let mut playing: Vec<Reading> = Vec::new();
    let mut scratch = Vec::with_capacity(AHEAD);
    let mut next_round = Instant::now() + ROUND;
    loop {
        match new.recv_timeout(next_round.saturating_duration_since(Instant::now())) {
            Ok(mut reading) => {
                if reading.top_up(&mut scratch) {
                    playing.push(reading);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Checked after each new message too, so a steady stream of them
        // cannot hold the round back.
        if Instant::now() >= next_round {
            playing.retain_mut(|r| r.top_up(&mut scratch));
            next_round = Instant::now() + ROUND;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::feed::Fill;

    #[tokio::test]
    async fn a_message_arrives_whole_and_in_order() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let body: Vec<i16> = (0..8000 * 7 + 99).map(|i| (i % 3000) as i16).collect();
        let id = store.deposit_for_test("1001", &body);
        let mb = MailboxId::try_from("1001").unwrap();
        let feed = message_feed(store, mb, Folder::Inbox, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(feed.collect().await, body);
    }

    #[tokio::test]
    async fn reading_stays_a_few_pieces_ahead_and_stops_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let body = vec![5i16; 8000 * 60];
        let id = store.deposit_for_test("1001", &body);
        let mb = MailboxId::try_from("1001").unwrap();
        let mut feed = message_feed(store, mb, Folder::Inbox, id)
            .await
            .unwrap()
            .unwrap();
        // Let the reader fill the feed, then take everything ready without
        // waiting: what the ring holds, no more.
        tokio::time::sleep(ROUND * 3).await;
        let mut ready = Vec::new();
        let fill = feed.fill(&mut ready, body.len());
        assert_eq!(fill, Fill::Starved);
        assert_eq!(ready.len(), AHEAD);
        drop(feed);
    }

    #[tokio::test]
    async fn an_empty_or_missing_message_is_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let id = store.deposit_for_test("1001", &[1; 100]);
        let mb = MailboxId::try_from("1001").unwrap();
        assert!(matches!(
            message_feed(store.clone(), mb.clone(), Folder::Old, id.clone()).await,
            Err(StoreError::MessageNotFound { .. })
        ));
        let path = store.message_audio_path(&mb, Folder::Inbox, &id).unwrap();
        std::fs::write(&path, crate::audio::wav::wav_bytes(&[], 8000).unwrap()).unwrap();
        assert!(
            message_feed(store, mb, Folder::Inbox, id)
                .await
                .unwrap()
                .is_none()
        );
    }
}
